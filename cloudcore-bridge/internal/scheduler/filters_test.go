package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/skyedge/skyedge/protocol/spec"
)

func TestFilters(t *testing.T) {
	munich := at(48.14, 11.58)
	sel := func(reqs ...spec.Requirement) reqOpt {
		return placement(func(p *spec.Placement) { p.NodeSelector = &spec.NodeSelector{MatchExpressions: reqs} })
	}
	src := func(node string) reqOpt {
		return placement(func(p *spec.Placement) { p.DataSource = &spec.DataSource{Node: node} })
	}
	bound := func(d time.Duration) reqOpt {
		return placement(func(p *spec.Placement) { p.MaxLatency = spec.Duration(d) })
	}
	zoneSites := []Site{edge("a1", labels("zone", "a")), edge("b1", labels("zone", "b")), edge("c1", labels("zone", "c")), edge("n1")}
	clouds := []Site{cloud("aws-de", "aws", "eu-central-1", "DE"), cloud("gcp-fr", "gcp", "europe-west9", "FR"), cloud("aws-us", "aws", "us-east-1", "US"), edge("e1")}

	tests := []struct {
		name       string
		filter     Filter
		sites      []Site
		placements []Placement
		req        Request
		kept       []string
		removed    map[string]string // ID -> prefix of "summary: reason"
	}{
		{
			name: "link: only online nodes", filter: LinkFilter{},
			sites: []Site{edge("e1"), edge("e2", disconnected(t0.Add(-time.Minute))), edge("e3", lost()), cloud("c1", "aws", "r", "DE")},
			req:   request("w"),
			kept:  []string{"c1", "e1"},
			removed: map[string]string{
				"e2": "node disconnected: node is disconnected since 2025-06-01T11:59:00Z; new work goes only to online nodes",
				"e3": "node lost: node is lost; new work goes only to online nodes",
			},
		},
		{
			name: "tier: edge", filter: TierFilter{}, sites: clouds,
			req:  request("w", placement(func(p *spec.Placement) { p.Tier = spec.TierEdge })),
			kept: []string{"e1"},
			removed: map[string]string{
				"aws-de": "wrong tier: cloud site; workload wants tier edge", "aws-us": "wrong tier", "gcp-fr": "wrong tier",
			},
		},
		{
			name: "tier: cloud", filter: TierFilter{}, sites: clouds,
			req:     request("w", placement(func(p *spec.Placement) { p.Tier = spec.TierCloud })),
			kept:    []string{"aws-de", "aws-us", "gcp-fr"},
			removed: map[string]string{"e1": "wrong tier: edge site; workload wants tier cloud"},
		},
		{
			name: "tier: any keeps all", filter: TierFilter{}, sites: clouds, req: request("w"),
			kept: []string{"aws-de", "aws-us", "e1", "gcp-fr"}, removed: map[string]string{},
		},
		{
			name: "node name: pinned", filter: NodeNameFilter{}, sites: zoneSites,
			req:  request("w", placement(func(p *spec.Placement) { p.NodeName = "b1" })),
			kept: []string{"b1"},
			removed: map[string]string{
				"a1": "not the named node: workload is pinned to b1", "c1": "not the named node", "n1": "not the named node",
			},
		},
		{
			name: "node name: unknown node", filter: NodeNameFilter{}, sites: zoneSites[:1],
			req:     request("w", placement(func(p *spec.Placement) { p.NodeName = "zz" })),
			removed: map[string]string{"a1": "not the named node: workload is pinned to zz"},
		},
		{
			name: "selector: match labels", filter: SelectorFilter{}, sites: zoneSites,
			req: request("w", placement(func(p *spec.Placement) {
				p.NodeSelector = &spec.NodeSelector{MatchLabels: map[string]string{"zone": "a"}}
			})),
			kept: []string{"a1"},
			removed: map[string]string{
				"b1": "selector mismatch: label zone=b, selector needs zone In [a]",
				"c1": "selector mismatch: label zone=c",
				"n1": "selector mismatch: label zone missing, selector needs zone In [a]",
			},
		},
		{
			name: "selector: NotIn keeps sites without the label", filter: SelectorFilter{}, sites: zoneSites,
			req:     request("w", sel(spec.Requirement{Key: "zone", Operator: spec.OpNotIn, Values: []string{"a", "b"}})),
			kept:    []string{"c1", "n1"},
			removed: map[string]string{"a1": "selector mismatch: label zone=a, selector needs zone NotIn [a b]", "b1": "selector mismatch"},
		},
		{
			name: "selector: Exists", filter: SelectorFilter{}, sites: zoneSites,
			req:     request("w", sel(spec.Requirement{Key: "zone", Operator: spec.OpExists})),
			kept:    []string{"a1", "b1", "c1"},
			removed: map[string]string{"n1": "selector mismatch: label zone missing, selector needs zone Exists"},
		},
		{
			name: "selector: DoesNotExist", filter: SelectorFilter{}, sites: zoneSites,
			req:     request("w", sel(spec.Requirement{Key: "zone", Operator: spec.OpDoesNotExist})),
			kept:    []string{"n1"},
			removed: map[string]string{"a1": "selector mismatch: label zone=a, selector needs zone DoesNotExist", "b1": "", "c1": ""},
		},
		{
			name: "selector: key no site has", filter: SelectorFilter{}, sites: zoneSites,
			req:     request("w", sel(spec.Requirement{Key: "gpu", Operator: spec.OpIn, Values: []string{"a100"}})),
			removed: map[string]string{"a1": "selector mismatch: label gpu missing", "b1": "", "c1": "", "n1": ""},
		},
		{
			name: "selector: value no site has", filter: SelectorFilter{}, sites: zoneSites,
			req:     request("w", sel(spec.Requirement{Key: "zone", Operator: spec.OpIn, Values: []string{"z"}})),
			removed: map[string]string{"a1": "selector mismatch: label zone=a", "b1": "", "c1": "", "n1": ""},
		},
		{
			name: "selector: first failing requirement is reported", filter: SelectorFilter{}, sites: zoneSites[:1],
			req: request("w", sel(spec.Requirement{Key: "zone", Operator: spec.OpExists},
				spec.Requirement{Key: "zone", Operator: spec.OpIn, Values: []string{"b"}})),
			removed: map[string]string{"a1": "selector mismatch: label zone=a, selector needs zone In [b]"},
		},
		{
			name: "provider", filter: ProviderFilter{}, sites: clouds,
			req:  request("w", placement(func(p *spec.Placement) { p.Providers = []string{"aws", "oracle"} })),
			kept: []string{"aws-de", "aws-us"},
			removed: map[string]string{
				"gcp-fr": "provider not allowed: provider gcp not in [aws oracle]",
				"e1":     "provider not allowed: site has no provider; workload allows only [aws oracle]",
			},
		},
		{
			name: "region", filter: RegionFilter{}, sites: clouds,
			req:  request("w", placement(func(p *spec.Placement) { p.Regions = []string{"europe-west9"} })),
			kept: []string{"gcp-fr"},
			removed: map[string]string{
				"aws-de": "region not allowed: region eu-central-1 not in [europe-west9]", "aws-us": "region not allowed",
				"e1": "region not allowed: site has no region",
			},
		},
		{
			name: "jurisdiction: country", filter: JurisdictionFilter{}, sites: clouds,
			req:  request("w", placement(func(p *spec.Placement) { p.Jurisdictions = []string{"DE"} })),
			kept: []string{"aws-de"},
			removed: map[string]string{
				"gcp-fr": "wrong jurisdiction: jurisdiction FR not in [DE]",
				"aws-us": "wrong jurisdiction: jurisdiction US not in [DE]",
				"e1":     "wrong jurisdiction: site declares no jurisdiction; workload data may stay only in [DE]",
			},
		},
		{
			name: "jurisdiction: zone", filter: JurisdictionFilter{}, sites: clouds,
			req:     request("w", placement(func(p *spec.Placement) { p.Jurisdictions = []string{"EU"} })),
			kept:    []string{"aws-de", "gcp-fr"},
			removed: map[string]string{"aws-us": "wrong jurisdiction: jurisdiction US not in [EU]", "e1": "wrong jurisdiction"},
		},
		{
			name: "capacity error cooldown", filter: CapacityErrorFilter{},
			sites: []Site{
				cloud("hot", "aws", "r1", "DE", func(s *Site) { s.CapacityErrorUntil = t0.Add(5 * time.Minute) }),
				cloud("expired", "aws", "r2", "DE", func(s *Site) { s.CapacityErrorUntil = t0.Add(-time.Second) }),
				cloud("ok", "aws", "r3", "DE"),
			},
			req:     request("w"),
			kept:    []string{"expired", "ok"},
			removed: map[string]string{"hot": "capacity error cooldown: region reported a capacity error; skipped until 2025-06-01T12:05:00Z"},
		},
		{
			name: "latency: estimate, measurement, local, unknown", filter: LatencyFilter{},
			sites: []Site{
				edge("src", munich),
				edge("augsburg", at(48.37, 10.90)),
				edge("lisbon", at(38.72, -9.14)),
				edge("lisbon-measured", at(38.72, -9.14), rtt("src", 6*time.Millisecond)),
				edge("based", at(48.37, 10.90), func(s *Site) { s.BaseRTT = 12 * time.Millisecond }),
				edge("nowhere"),
				cloud("table", "aws", "r", "DE", rtt("src", 9*time.Millisecond)),
			},
			req:  request("w", src("src"), bound(10*time.Millisecond)),
			kept: []string{"augsburg", "lisbon-measured", "src", "table"},
			removed: map[string]string{
				"lisbon":  "over latency bound: estimated RTT 19.",
				"based":   "over latency bound: estimated RTT 12.",
				"nowhere": "latency unknown: no measured RTT and no location to estimate one to src",
			},
		},
		{
			name: "latency: the data source's own measurement", filter: LatencyFilter{},
			sites: []Site{edge("src", munich, rtt("lisbon", 8*time.Millisecond)), edge("lisbon", at(38.72, -9.14)), edge("porto", at(41.15, -8.61))},
			req:   request("w", src("src"), bound(10*time.Millisecond)),
			kept:  []string{"lisbon", "src"},
			removed: map[string]string{
				"porto": "over latency bound: estimated RTT 17.3ms to src over the 10ms bound",
			},
		},
		{
			name: "latency: location data source", filter: LatencyFilter{},
			sites: []Site{edge("augsburg", at(48.37, 10.90)), edge("lisbon", at(38.72, -9.14))},
			req: request("w", bound(5*time.Millisecond), placement(func(p *spec.Placement) {
				p.DataSource = &spec.DataSource{Location: &spec.Location{Lat: 48.14, Lon: 11.58}}
			})),
			kept:    []string{"augsburg"},
			removed: map[string]string{"lisbon": "over latency bound: estimated RTT 19.2ms to (48.14, 11.58) over the 5ms bound"},
		},
		{
			name: "latency: unknown source node", filter: LatencyFilter{},
			sites:   []Site{edge("a", munich), cloud("c", "aws", "r", "DE", rtt("ghost", 3*time.Millisecond))},
			req:     request("w", src("ghost"), bound(5*time.Millisecond)),
			kept:    []string{"c"},
			removed: map[string]string{"a": "latency unknown: no measured RTT and no location to estimate one to ghost"},
		},
		{
			name: "latency: no bound keeps all", filter: LatencyFilter{},
			sites: []Site{edge("a"), edge("b")}, req: request("w", src("a")),
			kept: []string{"a", "b"}, removed: map[string]string{},
		},
		{
			name: "resources: names the exhausted dimension", filter: ResourcesFilter{},
			sites: []Site{
				edge("roomy"),
				edge("cpu-full", allocated(3800, 0)),
				edge("mem-full", allocated(0, 8*gi-128*mi)),
				edge("both-full", allocated(4000, 8*gi)),
				edge("exact", allocated(3500, 8*gi-256*mi)),
			},
			req:  request("w"),
			kept: []string{"exact", "roomy"},
			removed: map[string]string{
				"cpu-full":  "over CPU: needs 500m CPU, 200m free of 4",
				"mem-full":  "over memory: needs 256Mi memory, 128Mi free of 8Gi",
				"both-full": "over CPU: needs 500m CPU, 0 free of 4",
			},
		},
		{
			name: "spread: max skew over existing copies", filter: SpreadFilter{}, sites: zoneSites,
			placements: []Placement{{ID: "p1", Workload: "w", Site: "a1"}, {ID: "p2", Workload: "other", Site: "b1"}},
			req:        request("w", placement(func(p *spec.Placement) { p.Spread = &spec.Spread{TopologyKey: "zone", MaxSkew: 1} })),
			kept:       []string{"b1", "c1"},
			removed: map[string]string{
				"a1": "over max skew: zone=a would hold 2 replicas more than the least-used zone (maxSkew 1)",
				"n1": "missing spread label: site has no label zone to spread over",
			},
		},
		{
			name: "spread: skew within bound", filter: SpreadFilter{}, sites: zoneSites[:2],
			placements: []Placement{{ID: "p1", Workload: "w", Site: "a1"}},
			req:        request("w", placement(func(p *spec.Placement) { p.Spread = &spec.Spread{TopologyKey: "zone", MaxSkew: 2} })),
			kept:       []string{"a1", "b1"}, removed: map[string]string{},
		},
		{
			name: "spread: label no site has", filter: SpreadFilter{}, sites: zoneSites[:2],
			req:     request("w", placement(func(p *spec.Placement) { p.Spread = &spec.Spread{TopologyKey: "rack", MaxSkew: 1} })),
			removed: map[string]string{"a1": "missing spread label: site has no label rack", "b1": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := mustSnapshot(t, t0, tt.sites, tt.placements...)
			kept, removed := runFilter(tt.filter, snap, tt.req)
			if diff := cmp.Diff(tt.kept, kept, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s.Filter kept (-want +got):\n%s", tt.filter.Name(), diff)
			}
			if len(removed) != len(tt.removed) {
				t.Errorf("%s.Filter removed %v, want %d sites", tt.filter.Name(), removed, len(tt.removed))
			}
			for id, want := range tt.removed {
				if got, ok := removed[id]; !ok || !strings.HasPrefix(got, want) {
					t.Errorf("%s.Filter on %s = %q, want prefix %q", tt.filter.Name(), id, got, want)
				}
			}
		})
	}
}

// TestSpreadIgnoresDomainsWithoutEligibleSites checks that a zone whose
// sites were all removed by earlier filters does not hold the others back.
func TestSpreadIgnoresDomainsWithoutEligibleSites(t *testing.T) {
	snap := mustSnapshot(t, t0, []Site{
		edge("a1", labels("zone", "a")),
		edge("b1", labels("zone", "b")),
		edge("c1", labels("zone", "c"), allocated(4000, 0)),
	}, Placement{ID: "p1", Workload: "w", Site: "a1"}, Placement{ID: "p2", Workload: "w", Site: "b1"})
	req := request("w", placement(func(p *spec.Placement) {
		p.Replicas = 1
		p.Spread = &spec.Spread{TopologyKey: "zone", MaxSkew: 1}
	}))
	d := Place(snap, req)
	if got := d.Sites(); len(got) != 1 || got[0] != "a1" {
		t.Fatalf("Place() = %v (%s), want [a1]: zone c is full, so a and b may each take a second copy", got, d.Explanation.Summary())
	}
}
