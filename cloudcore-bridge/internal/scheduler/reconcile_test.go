package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/skyedge/skyedge/protocol/spec"
)

// brief renders actions compactly for comparison.
func brief(actions []Action) []string {
	var out []string
	for _, a := range actions {
		switch a.Kind {
		case ActionPlace:
			s := fmt.Sprintf("place %s[%d] on %s (%s)", a.Workload, a.Replica, a.Site, a.Cause)
			if a.Replaces != "" {
				s += " replaces " + a.Replaces
			}
			out = append(out, s)
		case ActionStop:
			out = append(out, fmt.Sprintf("stop %s (%s)", a.Placement, a.Cause))
		default:
			out = append(out, fmt.Sprintf("unschedulable %s[%d] (%s)", a.Workload, a.Replica, a.Cause))
		}
	}
	return out
}

func running(id, workload, site string, started time.Time) Placement {
	return Placement{ID: id, Workload: workload, Revision: "r1", Site: site, Resources: Resources{500, 256 * mi}, Started: started}
}

func replacing(p Placement, of string) Placement { p.Replaces = of; return p }

func policy(replace bool, reconcile spec.ReconcilePolicy) reqOpt {
	return func(r *Request) { r.Disconnect.Replace, r.Disconnect.Reconcile = replace, reconcile }
}

func TestReconcile(t *testing.T) {
	now := t0
	orig := running("p1", "w", "e1", now.Add(-2*time.Hour))
	repl := replacing(running("p2", "w", "e2", now.Add(-3*time.Minute)), "p1")
	edges := func(e1 ...siteOpt) []Site { return []Site{edge("e1", e1...), edge("e2"), edge("e3")} }
	cheapE2 := []Site{edge("e1", prices(1, 0, 0)), edge("e2"), edge("e3", prices(1, 0, 0))}
	dearE2 := []Site{edge("e1"), edge("e2", prices(1, 0, 0)), edge("e3", prices(1, 0, 0))}

	tests := []struct {
		name       string
		sites      []Site
		workloads  []Request
		placements []Placement
		want       []string
	}{
		{
			name:  "all well: nothing to do",
			sites: edges(), workloads: []Request{request("w")}, placements: []Placement{orig},
		},
		{
			name:  "disconnected under lostAfter, replace=false: nothing moves",
			sites: edges(disconnected(now.Add(-4 * time.Minute))), workloads: []Request{request("w", policy(false, spec.ReconcileBestScore))},
			placements: []Placement{orig},
		},
		{
			name:  "disconnected under lostAfter, replace=true: replacement, original kept",
			sites: edges(disconnected(now.Add(-time.Minute))), workloads: []Request{request("w", policy(true, spec.ReconcileBestScore))},
			placements: []Placement{orig},
			want:       []string{"place w[0] on e2 (node-disconnected) replaces p1"},
		},
		{
			name:  "disconnected with a replacement running: nothing more",
			sites: edges(disconnected(now.Add(-time.Minute))), workloads: []Request{request("w", policy(true, spec.ReconcileBestScore))},
			placements: []Placement{orig, repl},
		},
		{
			name:  "disconnected past lostAfter: lost, stopped and moved",
			sites: edges(disconnected(now.Add(-5 * time.Minute))), workloads: []Request{request("w")},
			placements: []Placement{orig},
			want:       []string{"stop p1 (node-lost)", "place w[0] on e2 (node-lost) replaces p1"},
		},
		{
			name:  "lost with a replacement already running: only the stop",
			sites: edges(disconnected(now.Add(-time.Hour))), workloads: []Request{request("w", policy(true, spec.ReconcileBestScore))},
			placements: []Placement{orig, repl},
			want:       []string{"stop p1 (node-lost)"},
		},
		{
			name:  "given up by the registry",
			sites: edges(lost()), workloads: []Request{request("w")}, placements: []Placement{orig},
			want: []string{"stop p1 (node-lost)", "place w[0] on e2 (node-lost) replaces p1"},
		},
		{
			name:  "site removed from the fleet",
			sites: []Site{edge("e2"), edge("e3")}, workloads: []Request{request("w")}, placements: []Placement{orig},
			want: []string{"stop p1 (node-lost)", "place w[0] on e2 (node-lost) replaces p1"},
		},
		{
			name:  "return, keep-original: the replacement stops",
			sites: edges(), workloads: []Request{request("w", policy(true, spec.ReconcileKeepOriginal))},
			placements: []Placement{orig, repl}, want: []string{"stop p2 (reconcile)"},
		},
		{
			name:  "return, keep-replacement: the original stops",
			sites: edges(), workloads: []Request{request("w", policy(true, spec.ReconcileKeepReplacement))},
			placements: []Placement{orig, repl}, want: []string{"stop p1 (reconcile)"},
		},
		{
			name:  "return, longest-running: the younger copy stops",
			sites: edges(), workloads: []Request{request("w", policy(true, spec.ReconcileLongestRunning))},
			placements: []Placement{orig, repl}, want: []string{"stop p2 (reconcile)"},
		},
		{
			name:  "return, longest-running after the original restarted",
			sites: edges(), workloads: []Request{request("w", policy(true, spec.ReconcileLongestRunning))},
			placements: []Placement{running("p1", "w", "e1", now.Add(-time.Minute)), repl}, want: []string{"stop p1 (reconcile)"},
		},
		{
			name:  "return, best-score keeps the cheaper site (replacement)",
			sites: cheapE2, workloads: []Request{request("w", policy(true, spec.ReconcileBestScore))},
			placements: []Placement{orig, repl}, want: []string{"stop p1 (reconcile)"},
		},
		{
			name:  "return, best-score keeps the cheaper site (original)",
			sites: dearE2, workloads: []Request{request("w", policy(true, spec.ReconcileBestScore))},
			placements: []Placement{orig, repl}, want: []string{"stop p2 (reconcile)"},
		},
		{
			name:  "spec changed: new revision placed, old stopped, resources reused",
			sites: []Site{edge("e1", capacity(500, gi))}, workloads: []Request{request("w", func(r *Request) { r.Revision = "r2" })},
			placements: []Placement{orig},
			want:       []string{"place w[0] on e1 (spec-changed) replaces p1", "stop p1 (spec-changed)"},
		},
		{
			name:  "spec changed but nowhere fits: the old copy keeps running",
			sites: edges(), workloads: []Request{request("w", resources(64000, gi), func(r *Request) { r.Revision = "r2" })},
			placements: []Placement{orig}, want: []string{"unschedulable w[0] (spec-changed)"},
		},
		{
			name:       "residency policy changed: the copy moves",
			sites:      []Site{edge("e1", jurisdiction("DE")), edge("e2", jurisdiction("FR"))},
			workloads:  []Request{request("w", placement(func(p *spec.Placement) { p.Jurisdictions = []string{"FR"} }))},
			placements: []Placement{orig},
			want:       []string{"place w[0] on e2 (policy-violated) replaces p1", "stop p1 (policy-violated)"},
		},
		{
			name:  "scaled down",
			sites: edges(), workloads: []Request{request("w")},
			placements: []Placement{orig, func() Placement { p := running("p9", "w", "e3", now); p.Replica = 1; return p }()},
			want:       []string{"stop p9 (scale-down)"},
		},
		{
			name:  "scaled up",
			sites: edges(allocated(500, 256*mi)), workloads: []Request{request("w", placement(func(p *spec.Placement) { p.Replicas = 2 }))},
			placements: []Placement{orig}, want: []string{"place w[1] on e2 (pending)"},
		},
		{
			name:  "workload deleted",
			sites: edges(), placements: []Placement{orig}, want: []string{"stop p1 (workload-deleted)"},
		},
		{
			name:  "pending without capacity, then capacity frees up",
			sites: []Site{edge("e1", allocated(4000, 0))}, workloads: []Request{request("w")},
			want: []string{"unschedulable w[0] (pending)"},
		},
		{
			name:  "capacity frees up for a pending workload",
			sites: []Site{edge("e1", allocated(3500, 0))}, workloads: []Request{request("w")},
			want: []string{"place w[0] on e1 (pending)"},
		},
		{
			name:  "higher priority first, preempting lower priority work",
			sites: []Site{edge("e1", capacity(1000, gi), allocated(1000, 512*mi))},
			workloads: []Request{
				request("batch", resources(1000, 512*mi)),
				request("alarm", resources(1000, 512*mi), placement(func(p *spec.Placement) { p.Priority, p.Preemption = 100, true })),
			},
			placements: []Placement{{ID: "b1", Workload: "batch", Revision: "r1", Site: "e1", Resources: Resources{1000, 512 * mi}}},
			want:       []string{"stop b1 (preempted)", "place alarm[0] on e1 (pending)", "unschedulable batch[0] (pending)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := mustSnapshot(t, now, tt.sites)
			actions, err := Reconcile(snap, tt.workloads, tt.placements)
			if err != nil {
				t.Fatalf("Reconcile() = %v", err)
			}
			if diff := cmp.Diff(tt.want, brief(actions), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Reconcile() mismatch (-want +got):\n%s\n%v", diff, actions)
			}
			for _, a := range actions {
				if a.Detail == "" {
					t.Errorf("action %v has no detail", a)
				}
				if (a.Kind == ActionPlace) != (a.Assignment != nil) {
					t.Errorf("action %v: assignment %v", a, a.Assignment)
				}
			}
		})
	}
}

// TestCapacityErrorFailover follows a pending copy in a cloud region that
// reports a capacity error: it fails over to the next best region, the
// failing region stays out until its cooldown ends, and the copy does not
// flap back when it does.
func TestCapacityErrorFailover(t *testing.T) {
	cheap := cloud("aws-cheap", "aws", "eu-central-1", "DE", prices(0.03, 0.003, 0.09))
	next := cloud("gcp-next", "gcp", "europe-west3", "DE", prices(0.05, 0.005, 0.09))
	dear := cloud("azure-dear", "azure", "germanywestcentral", "DE", prices(0.07, 0.007, 0.09))
	w := request("w", placement(func(p *spec.Placement) { p.Tier = spec.TierCloud }))

	// Before the error, the cheapest region wins.
	snap := mustSnapshot(t, t0, []Site{cheap, next, dear})
	if got := Place(snap, w).Sites(); got[0] != "aws-cheap" {
		t.Fatalf("Place() = %v, want aws-cheap", got)
	}

	// The region reports a capacity error for the pending copy.
	cheap.MarkCapacityError(t0, 10*time.Minute)
	pending := Placement{ID: "p1", Workload: "w", Revision: "r1", Site: "aws-cheap", Resources: w.Resources, State: StatePending}
	snap = mustSnapshot(t, t0.Add(time.Second), []Site{cheap, next, dear})
	actions, err := Reconcile(snap, []Request{w}, []Placement{pending})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"stop p1 (capacity-error)", "place w[0] on gcp-next (capacity-error) replaces p1"}
	if diff := cmp.Diff(want, brief(actions)); diff != "" {
		t.Fatalf("Reconcile(capacity error) mismatch (-want +got):\n%s", diff)
	}
	if e, _ := actions[1].Explanation.Site("aws-cheap"); e.Filter != "capacity-error" {
		t.Errorf("explanation of aws-cheap = %+v, want removed by capacity-error", e)
	}

	// During the cooldown new placements avoid the region too.
	snap = mustSnapshot(t, t0.Add(9*time.Minute), []Site{cheap, next, dear})
	if got := Place(snap, w).Sites(); got[0] != "gcp-next" {
		t.Errorf("Place(during cooldown) = %v, want gcp-next", got)
	}
	// A running copy in a cooling region is left alone.
	runningThere := pending
	runningThere.State, runningThere.Started = StateRunning, t0
	if actions, _ := Reconcile(snap, []Request{w}, []Placement{runningThere}); len(actions) != 0 {
		t.Errorf("Reconcile(running in cooling region) = %v, want nothing", brief(actions))
	}

	// After the expiry the region is eligible again, but the running
	// copy on gcp-next stays where it is.
	snap = mustSnapshot(t, t0.Add(11*time.Minute), []Site{cheap, next, dear})
	if got := Place(snap, w).Sites(); got[0] != "aws-cheap" {
		t.Errorf("Place(after cooldown) = %v, want aws-cheap", got)
	}
	moved := Placement{ID: "p2", Workload: "w", Revision: "r1", Site: "gcp-next", Resources: w.Resources, Started: t0.Add(time.Minute), Replaces: "p1"}
	if actions, _ := Reconcile(snap, []Request{w}, []Placement{moved}); len(actions) != 0 {
		t.Errorf("Reconcile(after cooldown) = %v, want nothing", brief(actions))
	}
}

func TestReconcileIsStableAndChecksInput(t *testing.T) {
	snap := mustSnapshot(t, t0, []Site{edge("e1"), edge("e2")})
	reqs := []Request{request("a"), request("b", placement(func(p *spec.Placement) { p.Replicas = 2 }))}
	first, err := Reconcile(snap, reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := Reconcile(snap, []Request{reqs[1], reqs[0]}, nil)
	if diff := cmp.Diff(brief(first), brief(second)); diff != "" {
		t.Errorf("Reconcile depends on workload order (-first +second):\n%s", diff)
	}
	if _, err := Reconcile(snap, []Request{request("a"), request("a")}, nil); err == nil || !strings.Contains(err.Error(), `workload "a" listed twice`) {
		t.Errorf("Reconcile(duplicate workload) = %v", err)
	}
	dup := running("p", "a", "e1", t0)
	if _, err := Reconcile(snap, reqs, []Placement{dup, dup}); err == nil || !strings.Contains(err.Error(), `placement "p": listed twice`) {
		t.Errorf("Reconcile(duplicate placement) = %v", err)
	}
}
