package catalog

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/protocol/spec"
)

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExampleCatalog(t *testing.T) {
	c, err := LoadCatalog(readExample(t, "clouds.yaml"))
	if err != nil {
		t.Fatalf("LoadCatalog(clouds.yaml) = %v", err)
	}
	providers, juris := map[string]bool{}, map[string]bool{}
	for _, r := range c.Regions {
		providers[r.Provider], juris[r.Jurisdiction] = true, true
	}
	if len(c.Regions) < 6 || len(providers) < 3 || len(juris) < 3 {
		t.Errorf("clouds.yaml has %d regions, %d providers, %d jurisdictions; want at least 6, 3, 3", len(c.Regions), len(providers), len(juris))
	}
	sites := c.Sites()
	s := sites[0]
	if s.Kind != scheduler.KindCloud || s.ID != "aws-eu-central-1" || s.Labels["tier"] != "cloud" || s.Labels["jurisdiction"] != "DE" ||
		s.Capacity != (scheduler.Resources{MilliCPU: 1_000_000, Memory: 4 << 40}) || s.RTT["factory-7"] != 9*time.Millisecond ||
		s.Prices.CPUHour != 0.04656 || s.Location.Lat != 50.11 {
		t.Errorf("Sites()[0] = %+v", s)
	}
}

// TestSkyResidencyExample places examples/workloads/sky-residency.yaml on
// the example catalog plus the demo's edge nodes: it must land on the
// cheapest German region within 20 ms of factory-7, and say why the
// others were not chosen.
func TestSkyResidencyExample(t *testing.T) {
	c, err := LoadCatalog(readExample(t, "clouds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.ParseWorkload(readExample(t, "workloads/sky-residency.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := scheduler.NewRequest(w)
	if err != nil {
		t.Fatalf("NewRequest(sky-residency.yaml) = %v", err)
	}
	sites := append(c.Sites(),
		scheduler.Site{ID: "factory-7", Kind: scheduler.KindEdge, Jurisdiction: "DE", Location: &spec.Location{Lat: 48.78, Lon: 9.18},
			Capacity: scheduler.Resources{MilliCPU: 4000, Memory: 8 << 30}},
		scheduler.Site{ID: "truck-042", Kind: scheduler.KindEdge, Jurisdiction: "DE", Location: &spec.Location{Lat: 48.14, Lon: 11.58},
			Capacity: scheduler.Resources{MilliCPU: 2000, Memory: 4 << 30}},
	)
	snap, err := scheduler.NewSnapshot(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), sites, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := scheduler.Place(snap, req)
	if !d.Complete() {
		t.Fatalf("Place(sky-residency) = %v", d.Err())
	}

	// The expected site, worked out from the catalog by hand: German,
	// within 20 ms of factory-7, cheapest with egress.
	want, wantCost := "", math.Inf(1)
	for _, r := range c.Regions {
		cost := 0.5*r.Prices.CPUHour + 1*r.Prices.GBHour + 1*r.Prices.EgressGB
		if r.Jurisdiction == "DE" && r.RTT["factory-7"].Std() <= 20*time.Millisecond && cost < wantCost {
			want, wantCost = r.ID, cost
		}
	}
	a := d.Assignments[0]
	if a.Site != want || math.Abs(a.CostPerHour-wantCost) > 1e-9 {
		t.Errorf("Place(sky-residency) = %s at $%.5f/h, want %s at $%.5f/h\n%s", a.Site, a.CostPerHour, want, wantCost, d.Explanation)
	}
	if a.Residency.String() != "DE (allowed by placement.jurisdictions DE)" {
		t.Errorf("residency = %q", a.Residency)
	}
	if got, wantSum := d.Explanation.Summary(), "3/11 sites: 6 wrong jurisdiction, 2 wrong tier"; got != wantSum {
		t.Errorf("Summary() = %q, want %q", got, wantSum)
	}
	us, _ := d.Explanation.Site("aws-us-east-1")
	if us.Reason != "jurisdiction US not in [DE]" {
		t.Errorf("Site(aws-us-east-1) = %+v", us)
	}
}

func TestValidate(t *testing.T) {
	valid := func() *Catalog {
		return &Catalog{APIVersion: spec.APIVersion, Kind: KindCloudCatalog, Regions: []Region{{
			ID: "aws-eu-central-1", Provider: "aws", Region: "eu-central-1", Jurisdiction: "DE",
			Location: spec.Location{Lat: 50.11, Lon: 8.68}, Prices: Prices{CPUHour: 0.04, GBHour: 0.005, EgressGB: 0.09},
			Capacity: Capacity{CPU: "100", Memory: "1Ti"},
		}}}
	}
	tests := []struct {
		name   string
		mutate func(c *Catalog)
		want   string
	}{
		{"valid", func(*Catalog) {}, ""},
		{"api version", func(c *Catalog) { c.APIVersion = "v1" }, `apiVersion "v1": use skyedge.io/v1alpha1`},
		{"kind", func(c *Catalog) { c.Kind = "Catalog" }, `kind "Catalog": use CloudCatalog`},
		{"no regions", func(c *Catalog) { c.Regions = nil }, "regions: list at least one region"},
		{"id", func(c *Catalog) { c.Regions[0].ID = "AWS Frankfurt" }, `regions[0].id "AWS Frankfurt": use lower-case letters`},
		{"duplicate id", func(c *Catalog) { c.Regions = append(c.Regions, c.Regions[0]) }, `regions[1].id "aws-eu-central-1": listed twice`},
		{"provider", func(c *Catalog) { c.Regions[0].Provider = "" }, "regions[0].provider: required"},
		{"region", func(c *Catalog) { c.Regions[0].Region = "" }, "regions[0].region: required"},
		{"jurisdiction", func(c *Catalog) { c.Regions[0].Jurisdiction = "Germany" }, `regions[0].jurisdiction "Germany": use an ISO 3166-1 alpha-2`},
		{"location", func(c *Catalog) { c.Regions[0].Location.Lat = 95 }, `regions[0].location.lat "95": use a latitude from -90 to 90`},
		{"price", func(c *Catalog) { c.Regions[0].Prices.GBHour = -1 }, `regions[0].prices.gbHour "-1": use a price of 0 or more`},
		{"cpu", func(c *Catalog) { c.Regions[0].Capacity.CPU = "lots" }, `regions[0].capacity.cpu "lots": use a positive CPU quantity`},
		{"memory", func(c *Catalog) { c.Regions[0].Capacity.Memory = "1TB" }, `regions[0].capacity.memory "1TB": use a positive byte quantity`},
		{"base rtt", func(c *Catalog) { c.Regions[0].BaseRTT = spec.Duration(-time.Millisecond) }, `regions[0].baseRTT "-1ms"`},
		{"rtt key", func(c *Catalog) {
			c.Regions[0].RTT = map[string]spec.Duration{"Factory 7": spec.Duration(time.Millisecond)}
		}, `regions[0].rtt "Factory 7": key must be a node ID`},
		{"rtt value", func(c *Catalog) {
			c.Regions[0].RTT = map[string]spec.Duration{"factory-7": spec.Duration(-time.Millisecond)}
		}, `regions[0].rtt.factory-7 "-1ms"`},
		{"label", func(c *Catalog) { c.Regions[0].Labels = map[string]string{"bad key": "x"} }, `regions[0].labels "bad key": invalid key`},
		{"tier label", func(c *Catalog) { c.Regions[0].Labels = map[string]string{"tier": "edge"} }, `regions[0].labels.tier "edge": remove it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadCatalogErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"empty", "", "empty document"},
		{"unknown field", "apiVersion: skyedge.io/v1alpha1\nkind: CloudCatalog\nregion: []\n", "field region not found"},
		{"bad duration", "apiVersion: skyedge.io/v1alpha1\nkind: CloudCatalog\nregions: [{id: a, baseRTT: fast}]\n", `duration "fast"`},
		{"invalid", "apiVersion: skyedge.io/v1alpha1\nkind: CloudCatalog\nregions: [{id: a}]\n", "regions[0].provider: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCatalog([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("LoadCatalog() = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}
