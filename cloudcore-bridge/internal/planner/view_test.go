package planner

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/protocol/spec"
)

// demoFleet is the quickstart's fleet (examples/quickstart/fleet.go), with
// the facts of a small board each.
func demoFleet() []registry.Node {
	return []registry.Node{
		node("truck-042", "role", "vehicle", "zone", "eu-central", LabelJurisdiction, "DE", LabelLat, "48.14", LabelLon, "11.58"),
		node("sat-7", "role", "satellite", "orbit", "leo", LabelJurisdiction, "EU"),
		node("factory-7", "role", "factory", "zone", "eu-central", LabelJurisdiction, "DE", LabelLat, "48.78", LabelLon, "9.18"),
	}
}

// skyResidency reads examples/workloads/sky-residency.yaml, changed by edit.
func skyResidency(t *testing.T, edit func(*spec.Workload)) scheduler.Request {
	t.Helper()
	w, err := spec.ParseWorkload(readExample(t, "workloads/sky-residency.yaml"))
	if err != nil {
		t.Fatalf("ParseWorkload(sky-residency.yaml) = %v", err)
	}
	if edit != nil {
		edit(w)
	}
	req, err := scheduler.NewRequest(w)
	if err != nil {
		t.Fatalf("NewRequest(sky-residency.yaml) = %v", err)
	}
	return req
}

// verdicts reduces candidates to "site verdict" lines in their order.
func verdicts(cs []apiv1.Candidate) []string {
	out := make([]string, len(cs))
	for k, c := range cs {
		v := c.Filter
		switch {
		case c.Chosen:
			v = "chosen"
		case c.Feasible:
			v = "feasible"
		}
		out[k] = c.Site + " " + v
	}
	return out
}

func TestPlanViewSkyResidency(t *testing.T) {
	snap, _ := mustSnapshot(t, Inputs{Nodes: demoFleet(), Catalog: loadCatalog(t)})
	req := skyResidency(t, nil)
	p := PlanView(req.Workload, scheduler.Place(snap, req), snap, t0)

	// 0.5 CPU × $0.0493 + 1 GiB × $0.0054 + 1 GiB egress × $0.087: the
	// cheapest German region, 10 ms from factory-7 by the catalog.
	wantChosen := []apiv1.PlannedReplica{{Slot: 0, Site: "azure-germanywestcentral", Kind: "cloud", Score: 99.99,
		CostPerHour: 0.5*0.0493 + 0.0054 + 0.087, RTTMillis: 10, RTTSource: "measured", Jurisdiction: "DE", Residency: "DE"}}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-6 })
	if diff := cmp.Diff(wantChosen, p.Chosen, approx); diff != "" {
		t.Errorf("PlanView(sky-residency).Chosen (-want +got):\n%s", diff)
	}
	if p.Workload != "sky-residency" || p.Wanted != 1 || !p.DecidedAt.Equal(t0) || p.Error != "" ||
		math.Abs(p.CostPerHour-wantChosen[0].CostPerHour) > 1e-6 {
		t.Errorf("PlanView(sky-residency) = %+v", p)
	}
	if want := "3/12 sites: 6 wrong jurisdiction, 3 wrong tier"; p.Summary != want {
		t.Errorf("Summary = %q, want %q", p.Summary, want)
	}
	want := []string{
		"azure-germanywestcentral chosen",
		"aws-eu-central-1 feasible", // $0.11839/h
		"gcp-europe-west3 feasible", // $0.15499/h
		"aws-eu-west-3 jurisdiction",
		"aws-us-east-1 jurisdiction",
		"azure-eastus jurisdiction",
		"azure-francecentral jurisdiction",
		"gcp-europe-west9 jurisdiction",
		"gcp-us-central1 jurisdiction",
		"factory-7 tier",
		"sat-7 tier",
		"truck-042 tier",
	}
	if diff := cmp.Diff(want, verdicts(p.Candidates)); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
	byID := map[string]apiv1.Candidate{}
	for _, c := range p.Candidates {
		byID[c.Site] = c
	}
	if c := byID["aws-us-east-1"]; c.Reason != "jurisdiction US not in [DE]" || c.Kind != "cloud" || c.Feasible {
		t.Errorf("candidate aws-us-east-1 = %+v", c)
	}
	if c := byID["truck-042"]; c.Kind != "edge" || c.CostPerHour != 0 || !strings.Contains(c.Reason, "edge") {
		t.Errorf("candidate truck-042 = %+v", c)
	}
	aws := byID["aws-eu-central-1"]
	if math.Abs(aws.CostPerHour-(0.5*0.04656+0.00511+0.09)) > 1e-6 || aws.Score <= 0 || aws.Score >= 100 || aws.Terms["cost"] == 0 {
		t.Errorf("candidate aws-eu-central-1 = %+v, want its price and a score between the others", aws)
	}
	if gcp := byID["gcp-europe-west3"]; gcp.Score >= aws.Score {
		t.Errorf("gcp-europe-west3 scores %v, aws-eu-central-1 %v; the dearer should score less", gcp.Score, aws.Score)
	}
}

func TestPlanViewEdgeAllowed(t *testing.T) {
	// Without "tier: cloud" the German edge nodes compete and cost
	// nothing; sat-7 is in jurisdiction EU, which [DE] does not allow,
	// and truck-042 is the busier of the two.
	nodes := demoFleet()
	copies := []scheduler.Placement{{ID: "c1", Workload: "other", Site: "truck-042", Resources: scheduler.Resources{MilliCPU: 1000, Memory: gi}}}
	snap, _ := mustSnapshot(t, Inputs{Nodes: nodes, Catalog: loadCatalog(t), Copies: copies})
	req := skyResidency(t, func(w *spec.Workload) {
		w.Spec.Placement.Tier = spec.TierAny
		w.Spec.Placement.Replicas = 2
	})
	p := PlanView(req.Workload, scheduler.Place(snap, req), snap, t0)
	if len(p.Chosen) != 2 || p.Chosen[0].Site != "factory-7" || p.Chosen[0].RTTMillis != 0 || p.Chosen[0].RTTSource != "local" || p.Chosen[0].CostPerHour != 0 ||
		p.Chosen[1].Slot != 1 || p.CostPerHour != 0 {
		t.Fatalf("PlanView(sky-residency on edge) chose %+v", p.Chosen)
	}
	var sat apiv1.Candidate
	for _, c := range p.Candidates {
		if c.Site == "sat-7" {
			sat = c
		}
	}
	if sat.Filter != "jurisdiction" || sat.Reason != "jurisdiction EU not in [DE]" {
		t.Errorf("candidate sat-7 = %+v, want refused for jurisdiction", sat)
	}
}

func TestPlanViewUnschedulable(t *testing.T) {
	// Every German region is cooling down after a capacity error, and
	// sat-7 is offline: nothing is left.
	until := t0.Add(5 * time.Minute)
	nodes := demoFleet()
	nodes[1] = offline(nodes[1], "will", t0.Add(-time.Minute))
	snap, _ := mustSnapshot(t, Inputs{Nodes: nodes, Catalog: loadCatalog(t), CapacityErrors: map[string]time.Time{
		"aws-eu-central-1": until, "gcp-europe-west3": until, "azure-germanywestcentral": until,
	}})
	req := skyResidency(t, nil)
	p := PlanView(req.Workload, scheduler.Place(snap, req), snap, t0)
	if len(p.Chosen) != 0 || p.CostPerHour != 0 {
		t.Errorf("Chosen = %+v, want none", p.Chosen)
	}
	if !strings.Contains(p.Error, "placed 0/1 replicas") || !strings.Contains(p.Error, "3 capacity error cooldown") {
		t.Errorf("Error = %q", p.Error)
	}
	got := verdicts(p.Candidates)
	want := []string{
		"aws-eu-central-1 capacity-error", "azure-germanywestcentral capacity-error", "gcp-europe-west3 capacity-error",
		"aws-eu-west-3 jurisdiction", "aws-us-east-1 jurisdiction", "azure-eastus jurisdiction",
		"azure-francecentral jurisdiction", "gcp-europe-west9 jurisdiction", "gcp-us-central1 jurisdiction",
		"factory-7 tier", "truck-042 tier", "sat-7 link",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
}

func TestExplainView(t *testing.T) {
	snap, _ := mustSnapshot(t, Inputs{Nodes: demoFleet(), Catalog: loadCatalog(t)})
	req := skyResidency(t, func(w *spec.Workload) { w.Spec.Placement.Replicas = 2 })
	// Slot 1 already runs on aws-eu-central-1; slot 0 needs a copy.
	current := []scheduler.Placement{{ID: "c1", Workload: req.Workload, Revision: req.Revision, Replica: 1,
		Site: "aws-eu-central-1", Resources: req.Resources}}
	other := scheduler.Request{Workload: "zz-other", Revision: "r", Placement: spec.Placement{Replicas: 1, Tier: spec.TierEdge}}
	actions, err := scheduler.Reconcile(snap, []scheduler.Request{req, other}, current)
	if err != nil {
		t.Fatal(err)
	}
	p := ExplainView(&req, actions, snap, t0)
	if len(p.Chosen) != 1 || p.Chosen[0].Slot != 0 || p.Chosen[0].Site != "azure-germanywestcentral" || p.Wanted != 2 || p.Error != "" {
		t.Errorf("ExplainView = %+v, want slot 0 on azure-germanywestcentral", p)
	}
	if len(p.Candidates) != snap.Len() || !p.Candidates[0].Chosen || p.Summary == "" {
		t.Errorf("ExplainView candidates = %v, summary %q", verdicts(p.Candidates), p.Summary)
	}

	// A slot with no site reports why.
	cold := map[string]time.Time{"aws-eu-central-1": t0.Add(time.Minute), "gcp-europe-west3": t0.Add(time.Minute),
		"azure-germanywestcentral": t0.Add(time.Minute)}
	snap, _ = mustSnapshot(t, Inputs{Nodes: demoFleet(), Catalog: loadCatalog(t), CapacityErrors: cold})
	if actions, err = scheduler.Reconcile(snap, []scheduler.Request{req}, nil); err != nil {
		t.Fatal(err)
	}
	p = ExplainView(&req, actions, snap, t0)
	if len(p.Chosen) != 0 || !strings.Contains(p.Error, "replica 0: ") || !strings.Contains(p.Error, "replica 1: ") ||
		!strings.Contains(p.Summary, "capacity error cooldown") {
		t.Errorf("ExplainView(unschedulable) = chosen %+v, error %q, summary %q", p.Chosen, p.Error, p.Summary)
	}
}

func TestSiteViews(t *testing.T) {
	nodes := append(demoFleet(), node("bad", LabelLat, "x", LabelLon, "2"),
		offline(node("gone", LabelJurisdiction, "FR"), "connection_lost", t0.Add(-time.Minute)))
	copies := []scheduler.Placement{
		{ID: "a", Workload: "w", Site: "truck-042", Resources: scheduler.Resources{MilliCPU: 100, Memory: mi}},
		{ID: "b", Workload: "w", Replica: 1, Site: "truck-042", Resources: scheduler.Resources{MilliCPU: 100, Memory: mi}},
		{ID: "c", Workload: "v", Site: "aws-eu-central-1", Resources: scheduler.Resources{MilliCPU: 500, Memory: gi}},
	}
	until := t0.Add(time.Minute)
	snap, _ := mustSnapshot(t, Inputs{Nodes: nodes, Catalog: loadCatalog(t), Copies: copies,
		CapacityErrors: map[string]time.Time{"aws-us-east-1": until, "aws-eu-west-3": t0.Add(-time.Minute)}})
	list := SiteViews(snap, copies)
	var ids []string
	by := map[string]apiv1.Site{}
	for _, s := range list.Items {
		ids = append(ids, s.ID)
		by[s.ID] = s
	}
	wantIDs := []string{"bad", "factory-7", "gone", "sat-7", "truck-042",
		"aws-eu-central-1", "aws-eu-west-3", "aws-us-east-1", "azure-eastus", "azure-francecentral",
		"azure-germanywestcentral", "gcp-europe-west3", "gcp-europe-west9", "gcp-us-central1"}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Errorf("SiteViews order (-want +got):\n%s", diff)
	}
	wantTruck := apiv1.Site{ID: "truck-042", Kind: "edge", Labels: nodes[0].Labels, Jurisdiction: "DE",
		Location: &spec.Location{Lat: 48.14, Lon: 11.58}, Link: "online", CapacityMilliCPU: 3600, CapacityMemory: 8*gi - 256*mi,
		AllocatedMilliCPU: 200, AllocatedMemory: 2 * mi, Replicas: 2}
	if diff := cmp.Diff(wantTruck, by["truck-042"]); diff != "" {
		t.Errorf("site truck-042 (-want +got):\n%s", diff)
	}
	if s := by["gone"]; s.Link != "disconnected" || s.Replicas != 0 {
		t.Errorf("site gone = %+v", s)
	}
	if s := by["bad"]; s.Location != nil || len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "skyedge.io/lat") {
		t.Errorf("site bad = %+v, want no location and the problem", s)
	}
	aws := by["aws-eu-central-1"]
	if aws.Kind != "cloud" || aws.Provider != "aws" || aws.Region != "eu-central-1" || aws.Replicas != 1 ||
		aws.AllocatedMilliCPU != 500 || aws.CPUHour != 0.04656 || aws.Link != "online" || aws.Location == nil {
		t.Errorf("site aws-eu-central-1 = %+v", aws)
	}
	if s := by["aws-us-east-1"]; !s.CapacityErrorUntil.Equal(until) {
		t.Errorf("aws-us-east-1 CapacityErrorUntil = %v, want %v", s.CapacityErrorUntil, until)
	}
	if s := by["aws-eu-west-3"]; !s.CapacityErrorUntil.IsZero() {
		t.Errorf("aws-eu-west-3 CapacityErrorUntil = %v, want zero once past", s.CapacityErrorUntil)
	}
}

func TestAuditRecord(t *testing.T) {
	req := &scheduler.Request{Workload: "w", Revision: "rev1", Placement: spec.Placement{Replicas: 2, Jurisdictions: []string{"EU"}}}
	place := scheduler.Action{Kind: scheduler.ActionPlace, Cause: scheduler.CauseNodeLost, Workload: "w", Replica: 1,
		Site: "aws-eu-central-1", Replaces: "old",
		Assignment: &scheduler.Assignment{Site: "aws-eu-central-1", Kind: scheduler.KindCloud, CostPerHour: 0.12,
			Residency: scheduler.Residency{Jurisdiction: "DE", AllowedBy: "EU"}}}
	got := AuditRecord(place, req, t0)
	want := apiv1.PlacementRecord{At: t0, Workload: "w", Revision: "rev1", Slot: 1, Site: "aws-eu-central-1", Kind: "cloud",
		Action: "replace", Cause: "node-lost", Jurisdiction: "DE", Allowed: []string{"EU"}, Rule: "DE in EU", CostPerHour: 0.12}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AuditRecord(replace) (-want +got):\n%s", diff)
	}
	place.Replaces = ""
	if got := AuditRecord(place, req, t0); got.Action != "place" {
		t.Errorf("AuditRecord(place).Action = %q, want place", got.Action)
	}
	stop := scheduler.Action{Kind: scheduler.ActionStop, Cause: scheduler.CauseDeleted, Workload: "gone", Site: "n1", Placement: "p9"}
	if got := AuditRecord(stop, nil, t0); got.Action != "stop" || got.Cause != "workload-deleted" || got.Site != "n1" || got.Revision != "" {
		t.Errorf("AuditRecord(stop) = %+v", got)
	}
	for _, tc := range []struct {
		r    scheduler.Residency
		want string
	}{
		{scheduler.Residency{Jurisdiction: "DE", AllowedBy: "DE"}, "DE"},
		{scheduler.Residency{Jurisdiction: "DE", AllowedBy: "EEA"}, "DE in EEA"},
		{scheduler.Residency{Jurisdiction: "US"}, "unrestricted"},
	} {
		if got := ResidencyRule(tc.r); got != tc.want {
			t.Errorf("ResidencyRule(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}
