package scheduler

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/protocol/spec"
)

func TestPlaceUnschedulableSummary(t *testing.T) {
	snap := mustSnapshot(t, t0, []Site{
		edge("e1", jurisdiction("DE"), allocated(4000, 0)),
		edge("e2", jurisdiction("DE"), allocated(3900, 0)),
		edge("e3", jurisdiction("DE"), disconnected(t0.Add(-time.Minute))),
		cloud("us-1", "aws", "us-east-1", "US"),
		cloud("us-2", "gcp", "us-central1", "US"),
		cloud("ch-1", "azure", "switzerlandnorth", "CH"),
	})
	req := request("w", placement(func(p *spec.Placement) { p.Jurisdictions = []string{"EU"} }))
	d := Place(snap, req)
	if d.Complete() || len(d.Assignments) != 0 {
		t.Fatalf("Place() = %v, want no assignment", d.Sites())
	}
	want := "0/6 sites: 3 wrong jurisdiction, 2 over CPU, 1 node disconnected"
	if got := d.Explanation.Summary(); got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	err := d.Err()
	if !errors.Is(err, ErrUnschedulable) || !strings.Contains(err.Error(), "placed 0/1 replicas; "+want) {
		t.Errorf("Err() = %v, want ErrUnschedulable with the summary", err)
	}
	wantReasons := []ReasonCount{
		{Filter: "jurisdiction", Reason: "wrong jurisdiction", Count: 3},
		{Filter: "resources", Reason: "over CPU", Count: 2},
		{Filter: "link", Reason: "node disconnected", Count: 1},
	}
	if diff := cmp.Diff(wantReasons, d.Explanation.Reasons()); diff != "" {
		t.Errorf("Reasons() mismatch (-want +got):\n%s", diff)
	}
	e2, _ := d.Explanation.Site("e2")
	if e2.Feasible || e2.Filter != "resources" || e2.Reason != "needs 500m CPU, 100m free of 4" {
		t.Errorf("Site(e2) = %+v, want removed by resources with the free CPU", e2)
	}
}

func TestPlaceCheapestWithinResidencyAndLatency(t *testing.T) {
	snap := mustSnapshot(t, t0, []Site{
		edge("factory-7", at(48.78, 9.18), jurisdiction("DE"), allocated(4000, 0)),
		cloud("aws-fra", "aws", "eu-central-1", "DE", prices(0.0466, 0.0051, 0.09), rtt("factory-7", 9*time.Millisecond)),
		cloud("gcp-fra", "gcp", "europe-west3", "DE", prices(0.0574, 0.0064, 0.12), rtt("factory-7", 8*time.Millisecond)),
		cloud("gcp-ber", "gcp", "europe-west10", "DE", prices(0.03, 0.003, 0.12), rtt("factory-7", 31*time.Millisecond)),
		cloud("aws-par", "aws", "eu-west-3", "FR", prices(0.02, 0.002, 0.09), rtt("factory-7", 16*time.Millisecond)),
	})
	req := request("w", resources(1000, 2*gi), func(r *Request) { r.EgressBytesPerHour = gi }, placement(func(p *spec.Placement) {
		p.Jurisdictions = []string{"DE"}
		p.DataSource = &spec.DataSource{Node: "factory-7"}
		p.MaxLatency = spec.Duration(20 * time.Millisecond)
		p.Objective = spec.Objective{Goal: spec.GoalCost}
	}))
	d := Place(snap, req)
	if !d.Complete() {
		t.Fatalf("Place() unschedulable: %s", d.Explanation)
	}
	a := d.Assignments[0]
	wantCost := 0.0466 + 2*0.0051 + 0.09
	if a.Site != "aws-fra" || math.Abs(a.CostPerHour-wantCost) > 1e-9 {
		t.Errorf("Place() = %s at $%.4f/h, want aws-fra at $%.4f/h\n%s", a.Site, a.CostPerHour, wantCost, d.Explanation)
	}
	if a.Residency != (Residency{Jurisdiction: "DE", AllowedBy: "DE"}) || a.RTT != 9*time.Millisecond || a.RTTSource != RTTMeasured {
		t.Errorf("assignment = %+v, want residency DE allowed by DE, measured RTT 9ms", a)
	}
	if got, want := d.Explanation.Summary(), "2/5 sites: 1 over CPU, 1 over latency bound, 1 wrong jurisdiction"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	fra, _ := d.Explanation.Site("aws-fra")
	if !fra.Feasible || fra.Replicas != 1 || len(fra.Terms) != 2 || fra.Terms[0].Name != "cost" || fra.Terms[0].Score != 100 {
		t.Errorf("Site(aws-fra) = %+v, want feasible, 1 replica, cost 100 and balance", fra)
	}
	if s := fra.String(); !strings.HasPrefix(s, "aws-fra: score ") || !strings.Contains(s, "= cost 100×0.91 + balance 100×0.09") {
		t.Errorf("Site(aws-fra).String() = %q", s)
	}
	ber, _ := d.Explanation.Site("gcp-ber")
	if ber.Reason != "measured RTT 31.0ms to factory-7 over the 20ms bound" {
		t.Errorf("Site(gcp-ber).Reason = %q", ber.Reason)
	}
}

func TestPlaceAccountsEachReplica(t *testing.T) {
	// Room for two replicas on "a", one on "b", none on "c".
	snap := mustSnapshot(t, t0, []Site{
		edge("a", capacity(1000, 8*gi)),
		edge("b", capacity(1000, 8*gi), allocated(500, 0)),
		edge("c", capacity(1000, 8*gi), allocated(600, 0)),
	})
	req := request("w", placement(func(p *spec.Placement) { p.Replicas = 4 }))
	d := Place(snap, req)
	if diff := cmp.Diff([]string{"a", "b", "a"}, d.Sites()); diff != "" {
		t.Errorf("Place() sites mismatch (-want +got):\n%s", diff)
	}
	if d.Complete() || !strings.Contains(d.Err().Error(), "placed 3/4 replicas; 0/3 sites: 3 over CPU") {
		t.Errorf("Err() = %v, want 3 of 4 placed and every site over CPU", d.Err())
	}
	if a, _ := d.Explanation.Site("a"); a.Replicas != 2 {
		t.Errorf("Site(a).Replicas = %d, want 2", a.Replicas)
	}
	// Place is pure: the snapshot did not change.
	if s, _ := snap.Site("a"); s.Allocated != (Resources{}) {
		t.Errorf("snapshot site a allocated %v after Place, want untouched", s.Allocated)
	}
}

func TestPlaceSpread(t *testing.T) {
	var sites []Site
	for _, z := range []string{"a", "b", "c"} {
		for _, n := range []string{"1", "2"} {
			sites = append(sites, edge(z+n, labels("zone", z)))
		}
	}
	snap := mustSnapshot(t, t0, sites)
	req := request("w", placement(func(p *spec.Placement) {
		p.Replicas = 6
		p.Spread = &spec.Spread{TopologyKey: "zone", MaxSkew: 1}
	}))
	d := Place(snap, req)
	zones := map[string]int{}
	for _, s := range d.Sites() {
		zones[s[:1]]++
	}
	if diff := cmp.Diff(map[string]int{"a": 2, "b": 2, "c": 2}, zones); diff != "" {
		t.Errorf("replicas per zone mismatch (-want +got):\n%s", diff)
	}
}

func TestPlaceTiesGoToLowestID(t *testing.T) {
	snap := mustSnapshot(t, t0, []Site{edge("n3"), edge("n1"), edge("n2")})
	if got := Place(snap, request("w")).Sites(); len(got) != 1 || got[0] != "n1" {
		t.Errorf("Place() = %v, want [n1]", got)
	}
}

func TestPlaceNodeName(t *testing.T) {
	snap := mustSnapshot(t, t0, []Site{edge("truck-041"), edge("truck-042", jurisdiction("US")), edge("truck-043")})
	pinned := request("w", placement(func(p *spec.Placement) { p.NodeName = "truck-042" }))
	if got := Place(snap, pinned).Sites(); len(got) != 1 || got[0] != "truck-042" {
		t.Errorf("Place(pinned) = %v, want [truck-042]", got)
	}
	// Residency still applies to a manual placement.
	pinned.Placement.Jurisdictions = []string{"DE"}
	d := Place(snap, pinned)
	if d.Complete() || d.Explanation.Summary() != "0/3 sites: 2 not the named node, 1 wrong jurisdiction" {
		t.Errorf("Place(pinned outside jurisdiction) = %v, %q", d.Sites(), d.Explanation.Summary())
	}
}

func TestPlacePreemption(t *testing.T) {
	copies := []Placement{
		{ID: "low-old", Workload: "batch", Site: "full", Priority: 10, Resources: Resources{1000, gi}, Started: t0.Add(-time.Hour)},
		{ID: "low-new", Workload: "batch", Site: "full", Priority: 10, Resources: Resources{1000, gi}, Started: t0.Add(-time.Minute)},
		{ID: "mid", Workload: "web", Site: "full", Priority: 50, Resources: Resources{2000, gi}},
		{ID: "high", Workload: "safety", Site: "other", Priority: 1000, Resources: Resources{4000, gi}},
	}
	snap := mustSnapshot(t, t0, []Site{
		edge("full", allocated(4000, 3*gi)),
		edge("other", allocated(4000, gi)),
		cloud("c", "aws", "r", "US"),
	}, copies...)
	req := request("alarm", resources(1000, 512*mi), placement(func(p *spec.Placement) {
		p.Tier = spec.TierEdge
		p.Priority = 100
		p.Preemption = true
	}))
	d := Place(snap, req)
	if !d.Complete() || d.Sites()[0] != "full" {
		t.Fatalf("Place() = %v, want [full]: %s", d.Sites(), d.Explanation.Summary())
	}
	want := []Victim{{Placement: "low-new", Workload: "batch", Site: "full", Priority: 10}}
	if diff := cmp.Diff(want, d.Victims); diff != "" {
		t.Errorf("Victims mismatch (-want +got):\n%s", diff)
	}
	if got := d.Assignments[0].Victims; len(got) != 1 || got[0] != "low-new" {
		t.Errorf("Assignments[0].Victims = %v, want [low-new]", got)
	}
	if s, _ := d.Explanation.Site("full"); !s.Preempted {
		t.Errorf("Site(full) = %+v, want Preempted", s)
	}

	// Three replicas: the second evicts low-old, the third must evict mid.
	req.Placement.Replicas = 3
	d = Place(snap, req)
	var ids []string
	for _, v := range d.Victims {
		ids = append(ids, v.Placement)
	}
	if diff := cmp.Diff([]string{"low-new", "low-old", "mid"}, ids); diff != "" {
		t.Errorf("Victims of 3 replicas mismatch (-want +got):\n%s", diff)
	}

	// Without preemption, or against higher priorities, nothing moves.
	req.Placement.Replicas, req.Placement.Preemption = 1, false
	if d := Place(snap, req); d.Complete() || len(d.Victims) > 0 {
		t.Errorf("Place(no preemption) = %v victims %v, want unschedulable", d.Sites(), d.Victims)
	}
	req.Placement.Preemption, req.Placement.Priority = true, 5
	if d := Place(snap, req); d.Complete() {
		t.Errorf("Place(priority 5) = %v, want unschedulable: nothing ranks below 5", d.Sites())
	}
}

func TestPlaceZeroReplicas(t *testing.T) {
	d := Place(mustSnapshot(t, t0, []Site{edge("a")}), request("w", placement(func(p *spec.Placement) { p.Replicas = 0 })))
	if !d.Complete() || len(d.Assignments) != 0 || d.Err() != nil {
		t.Errorf("Place(0 replicas) = %+v, want complete and empty", d)
	}
}

// prefixFilter is a custom plugin: it removes sites whose ID starts with a
// prefix.
type prefixFilter struct{ prefix string }

func (f prefixFilter) Name() string { return "prefix" }
func (f prefixFilter) Filter(c *Cycle, sites []int32) []int32 {
	out := sites[:0]
	for _, i := range sites {
		if strings.HasPrefix(c.Site(i).ID, f.prefix) {
			c.Reject(i, Verdict{})
			continue
		}
		out = append(out, i)
	}
	return out
}
func (f prefixFilter) Summary(Verdict) string { return "reserved name" }
func (f prefixFilter) Reason(_ *Request, s *Site, _ Verdict) string {
	return s.ID + " starts with " + f.prefix
}

func TestCustomProfile(t *testing.T) {
	p := DefaultProfile()
	p.Filters = append([]Filter{prefixFilter{"a"}}, p.Filters...)
	snap := mustSnapshot(t, t0, []Site{edge("a1"), edge("a2"), edge("b1")})
	d := p.Place(snap, request("w"))
	if got := d.Sites(); len(got) != 1 || got[0] != "b1" {
		t.Errorf("Place() = %v, want [b1]", got)
	}
	if got := d.Explanation.Summary(); got != "1/3 sites: 2 reserved name" {
		t.Errorf("Summary() = %q", got)
	}
	if s, _ := d.Explanation.Site("a2"); s.Filter != "prefix" || s.Reason != "a2 starts with a" {
		t.Errorf("Site(a2) = %+v", s)
	}
}

func TestNewSnapshotErrors(t *testing.T) {
	tests := []struct {
		name       string
		sites      []Site
		placements []Placement
		want       string
	}{
		{"no id", []Site{{Kind: KindEdge}}, nil, "site without an ID"},
		{"no kind", []Site{{ID: "a"}}, nil, `site "a": kind kind(0): use KindEdge or KindCloud`},
		{"duplicate", []Site{edge("a"), edge("a")}, nil, `site "a": listed twice`},
		{"negative", []Site{edge("a", capacity(-1, 0))}, nil, `site "a": negative capacity`},
		{"location", []Site{edge("a", at(91, 0))}, nil, `site "a": location`},
		{"price", []Site{edge("a", prices(math.NaN(), 0, 0))}, nil, `site "a": prices`},
		{"base rtt", []Site{edge("a", func(s *Site) { s.BaseRTT = -time.Millisecond })}, nil, `site "a": negative base RTT`},
		{"placement id", []Site{edge("a")}, []Placement{{Workload: "w"}}, "needs an ID and a workload"},
		{"placement twice", []Site{edge("a")}, []Placement{{ID: "p", Workload: "w"}, {ID: "p", Workload: "w"}}, `placement "p": listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSnapshot(t0, tt.sites, tt.placements)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSnapshot() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestNewRequest(t *testing.T) {
	w, err := spec.ParseWorkload([]byte(`
apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: hello-exec}
spec:
  runtime: exec
  exec: {command: /bin/sh}
  resources: {cpu: 250m, memory: 64Mi, egressPerHour: 1Gi}
  placement: {replicas: 2, priority: 7}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRequest(w)
	if err != nil {
		t.Fatalf("NewRequest() = %v", err)
	}
	if r.Workload != "hello-exec" || r.Resources != (Resources{250, 64 * mi}) || r.EgressBytesPerHour != gi ||
		r.Replicas() != 2 || r.Placement.Priority != 7 || len(r.Revision) != 16 {
		t.Errorf("NewRequest() = %+v", r)
	}
	// Placement changes keep the revision; what the runner executes changes it.
	w.Spec.Placement.Replicas = 5
	if r2, _ := NewRequest(w); r2.Revision != r.Revision {
		t.Errorf("revision changed with replicas: %s -> %s", r.Revision, r2.Revision)
	}
	w.Spec.Exec.Args = []string{"-c", "true"}
	if r3, _ := NewRequest(w); r3.Revision == r.Revision {
		t.Errorf("revision %s unchanged after the command changed", r3.Revision)
	}
	w.Spec.Resources.Memory = "64MB"
	if _, err := NewRequest(w); !errors.Is(err, spec.ErrInvalid) {
		t.Errorf("NewRequest(invalid) = %v, want spec.ErrInvalid", err)
	}
}
