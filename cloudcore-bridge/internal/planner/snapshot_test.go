package planner

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler/catalog"
	"github.com/skyedge/skyedge/protocol/spec"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

// node is an online node with 4 cores and 8 GiB and labels kv.
func node(id string, kv ...string) registry.Node {
	n := registry.Node{ID: id, Online: true, FirstSeen: t0.Add(-time.Hour), LastSeen: t0,
		Facts: registry.Facts{CPUCores: 4, MemTotalKiB: 8 << 20}}
	if len(kv) > 0 {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
	return n
}

func offline(n registry.Node, reason string, since time.Time) registry.Node {
	n.Online, n.OfflineReason, n.LastSeen = false, reason, since
	return n
}

func loadCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.LoadCatalog(readExample(t, "clouds.yaml"))
	if err != nil {
		t.Fatalf("LoadCatalog(clouds.yaml) = %v", err)
	}
	return c
}

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSnapshot(t *testing.T, in Inputs) (*scheduler.Snapshot, RegionAgents) {
	t.Helper()
	if in.Now.IsZero() {
		in.Now = t0
	}
	snap, agents, err := Snapshot(in)
	if err != nil {
		t.Fatalf("Snapshot() = %v", err)
	}
	return snap, agents
}

func TestSnapshotEdgeSites(t *testing.T) {
	// 4 cores, 8 GiB: 400m reserved; 10 % of 8 GiB is over 256 MiB.
	full := scheduler.Resources{MilliCPU: 3600, Memory: 8*gi - 256*mi}
	tests := []struct {
		name string
		node registry.Node
		in   Inputs
		want scheduler.Site
		// problems are substrings of LabelProblems, in order.
		problems []string
	}{{
		name: "well-known labels",
		node: node("truck-042", "role", "vehicle", LabelLat, "48.14", LabelLon, "11.58", LabelJurisdiction, "DE",
			LabelProvider, "acme", LabelRegion, "bavaria"),
		want: scheduler.Site{ID: "truck-042", Kind: scheduler.KindEdge, Provider: "acme", Region: "bavaria", Jurisdiction: "DE",
			Location: &spec.Location{Lat: 48.14, Lon: 11.58}, Capacity: full},
	}, {
		name: "zone jurisdiction",
		node: node("sat-7", LabelJurisdiction, "EU"),
		want: scheduler.Site{ID: "sat-7", Kind: scheduler.KindEdge, Jurisdiction: "EU", Capacity: full},
	}, {
		name:     "latitude not a number",
		node:     node("n1", LabelLat, "north", LabelLon, "11.58", LabelJurisdiction, "DE"),
		want:     scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Jurisdiction: "DE", Capacity: full},
		problems: []string{`skyedge.io/lat="north": not a number`},
	}, {
		name:     "both out of range",
		node:     node("n1", LabelLat, "91", LabelLon, "-180.5"),
		want:     scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full},
		problems: []string{`skyedge.io/lat="91": out of -90..90`, `skyedge.io/lon="-180.5": out of -180..180`},
	}, {
		name:     "NaN",
		node:     node("n1", LabelLat, "NaN", LabelLon, "1"),
		want:     scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full},
		problems: []string{`skyedge.io/lat="NaN": not a number`},
	}, {
		name:     "longitude alone",
		node:     node("n1", LabelLon, "11.58"),
		want:     scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full},
		problems: []string{"skyedge.io/lon without skyedge.io/lat"},
	}, {
		name:     "bad jurisdiction",
		node:     node("n1", LabelJurisdiction, "Germany"),
		want:     scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full},
		problems: []string{`skyedge.io/jurisdiction="Germany": use an ISO 3166-1`},
	}, {
		name: "offline is disconnected since last seen",
		node: offline(node("n1"), "keepalive_timeout", t0.Add(-3*time.Minute)),
		want: scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full,
			Link: scheduler.LinkDisconnected, DisconnectedSince: t0.Add(-3 * time.Minute)},
	}, {
		name: "offline within the fleet limit",
		node: offline(node("n1"), "will", t0.Add(-3*time.Minute)),
		in:   Inputs{NodeLostAfter: time.Hour},
		want: scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full,
			Link: scheduler.LinkDisconnected, DisconnectedSince: t0.Add(-3 * time.Minute)},
	}, {
		name: "offline past the fleet limit is lost",
		node: offline(node("n1"), "will", t0.Add(-2*time.Hour)),
		in:   Inputs{NodeLostAfter: time.Hour},
		want: scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full,
			Link: scheduler.LinkLost, DisconnectedSince: t0.Add(-2 * time.Hour)},
	}, {
		name: "decommissioned is lost",
		node: offline(node("n1"), ReasonDecommissioned, t0.Add(-time.Second)),
		want: scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full, Link: scheduler.LinkLost},
	}, {
		name: "removed is lost",
		node: offline(node("n1"), ReasonRemoved, t0.Add(-time.Second)),
		want: scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full, Link: scheduler.LinkLost},
	}, {
		name: "edge prices",
		node: node("n1"),
		in:   Inputs{EdgePrices: scheduler.Prices{CPUHour: 0.01}},
		want: scheduler.Site{ID: "n1", Kind: scheduler.KindEdge, Capacity: full, Prices: scheduler.Prices{CPUHour: 0.01}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Nodes = []registry.Node{tc.node}
			snap, _ := mustSnapshot(t, in)
			if snap.Len() != 1 {
				t.Fatalf("Snapshot(%s) has %d sites, want 1", tc.node.ID, snap.Len())
			}
			got := snap.Sites()[0]
			tc.want.Labels = tc.node.Labels
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Snapshot(%s) site (-want +got):\n%s", tc.node.ID, diff)
			}
			problems := LabelProblems(tc.node.Labels)
			if len(problems) != len(tc.problems) {
				t.Fatalf("LabelProblems(%v) = %q, want %d like %q", tc.node.Labels, problems, len(tc.problems), tc.problems)
			}
			for k, p := range problems {
				if !strings.Contains(p, tc.problems[k]) {
					t.Errorf("LabelProblems(%v)[%d] = %q, want it to contain %q", tc.node.Labels, k, p, tc.problems[k])
				}
			}
		})
	}
}

func TestEdgeCapacity(t *testing.T) {
	tests := []struct {
		name  string
		facts registry.Facts
		want  scheduler.Resources
	}{
		{"small node: 10 % of memory", registry.Facts{CPUCores: 1, MemTotalKiB: 1 << 20},
			scheduler.Resources{MilliCPU: 900, Memory: gi - gi/10}},
		{"large node: memory reserve capped", registry.Facts{CPUCores: 16, MemTotalKiB: 64 << 20},
			scheduler.Resources{MilliCPU: 14400, Memory: 64*gi - 256*mi}},
		{"cap reached exactly", registry.Facts{CPUCores: 2, MemTotalKiB: 2560 << 10},
			scheduler.Resources{MilliCPU: 1800, Memory: 2560*mi - 256*mi}},
		{"odd sizes round the reserve down", registry.Facts{CPUCores: 3, MemTotalKiB: 1001},
			scheduler.Resources{MilliCPU: 2700, Memory: 1001*1024 - 1001*1024/10}},
	}
	for _, tc := range tests {
		if got := EdgeCapacity(tc.facts); got != tc.want {
			t.Errorf("%s: EdgeCapacity(%+v) = %+v, want %+v", tc.name, tc.facts, got, tc.want)
		}
	}
}

func TestSnapshotRegionsAndAgents(t *testing.T) {
	cat := loadCatalog(t)
	nodes := []registry.Node{
		node("truck-042", LabelJurisdiction, "DE"),
		node("runner-b", LabelSite, "aws-eu-central-1"),
		node("runner-a", LabelSite, "aws-eu-central-1"),
		offline(node("runner-c", LabelSite, "aws-eu-central-1"), "clean", t0.Add(-time.Minute)),
		node("runner-fr", LabelSite, "aws-eu-west-3"),
		node("runner-x", LabelSite, "nowhere-1"), // not in the catalog
		{ID: "fresh", Online: true},              // no hello yet
		node("gcp-europe-west3"),                 // collides with a region
	}
	copies := []scheduler.Placement{
		{ID: "p1", Workload: "w", Site: "truck-042", Resources: scheduler.Resources{MilliCPU: 500, Memory: 256 * mi}},
		{ID: "p2", Workload: "w", Replica: 1, Site: "truck-042", Resources: scheduler.Resources{MilliCPU: 250, Memory: 128 * mi}},
		{ID: "p3", Workload: "v", Site: "aws-eu-central-1", Resources: scheduler.Resources{MilliCPU: 2000, Memory: 4 * gi}},
		{ID: "p4", Workload: "v", Replica: 1, Site: "gone-node", Resources: scheduler.Resources{MilliCPU: 1000, Memory: gi}},
	}
	until := t0.Add(10 * time.Minute)
	snap, agents := mustSnapshot(t, Inputs{Nodes: nodes, Catalog: cat, Copies: copies,
		CapacityErrors: map[string]time.Time{"azure-eastus": until}})

	wantAgents := RegionAgents{"aws-eu-central-1": {"runner-a", "runner-b"}, "aws-eu-west-3": {"runner-fr"}}
	if diff := cmp.Diff(wantAgents, agents); diff != "" {
		t.Errorf("RegionAgents (-want +got):\n%s", diff)
	}
	var edges []string
	for _, s := range snap.Sites() {
		if s.Kind == scheduler.KindEdge {
			edges = append(edges, s.ID)
		}
	}
	if diff := cmp.Diff([]string{"truck-042"}, edges); diff != "" {
		t.Errorf("edge sites (-want +got):\n%s", diff)
	}
	if got, want := snap.Len(), 1+len(cat.Regions); got != want {
		t.Errorf("Snapshot has %d sites, want %d", got, want)
	}
	if s, _ := snap.Site("gcp-europe-west3"); s.Kind != scheduler.KindCloud {
		t.Errorf("site gcp-europe-west3 is %v, want the catalog region", s.Kind)
	}
	truck, _ := snap.Site("truck-042")
	if want := (scheduler.Resources{MilliCPU: 750, Memory: 384 * mi}); truck.Allocated != want {
		t.Errorf("truck-042 allocated %v, want %v", truck.Allocated, want)
	}
	aws, _ := snap.Site("aws-eu-central-1")
	if want := (scheduler.Resources{MilliCPU: 2000, Memory: 4 * gi}); aws.Allocated != want {
		t.Errorf("aws-eu-central-1 allocated %v, want %v", aws.Allocated, want)
	}
	if az, _ := snap.Site("azure-eastus"); !az.CapacityErrorUntil.Equal(until) {
		t.Errorf("azure-eastus CapacityErrorUntil = %v, want %v", az.CapacityErrorUntil, until)
	}
	if az, _ := snap.Site("azure-francecentral"); !az.CapacityErrorUntil.IsZero() {
		t.Errorf("azure-francecentral CapacityErrorUntil = %v, want zero", az.CapacityErrorUntil)
	}
	if got := len(snap.Placements()); got != len(copies) {
		t.Errorf("snapshot holds %d copies, want %d", got, len(copies))
	}
}

func TestSnapshotErrors(t *testing.T) {
	// No catalog, no nodes: an empty snapshot is fine.
	if snap, agents, err := Snapshot(Inputs{Now: t0}); err != nil || snap.Len() != 0 || len(agents) != 0 {
		t.Errorf("Snapshot(empty) = %v, %v, %v; want an empty snapshot", snap, agents, err)
	}
	dup := []scheduler.Placement{{ID: "p1", Workload: "w", Site: "n1"}, {ID: "p1", Workload: "w", Site: "n1"}}
	if _, _, err := Snapshot(Inputs{Now: t0, Nodes: []registry.Node{node("n1")}, Copies: dup}); err == nil ||
		!strings.Contains(err.Error(), `placement "p1": listed twice`) {
		t.Errorf("Snapshot(duplicate copies) = %v, want the duplicate named", err)
	}
	// One node listed twice is kept once.
	snap, _ := mustSnapshot(t, Inputs{Nodes: []registry.Node{node("n1"), node("n1")}})
	if snap.Len() != 1 {
		t.Errorf("Snapshot(n1 twice) has %d sites, want 1", snap.Len())
	}
}
