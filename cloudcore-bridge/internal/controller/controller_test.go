package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/api"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logs"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/planner"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/protocol/spec"
)

func workloadDoc(name, placement, disconnect string) string {
	return `apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: ` + name + `}
spec:
  runtime: exec
  exec: {command: /bin/sleep, args: ["3600"]}
  resources: {cpu: 500m, memory: 256Mi}
  placement: ` + placement + `
  disconnect: ` + disconnect + `
`
}

func TestNodeNameLandsThere(t *testing.T) {
	f := newFixture(t, nil, edge("n1"), edge("n2"), edge("n3"))
	f.apply(t, workloadDoc("web", "{nodeName: n2}", "{}"))
	f.pass(t)
	if got := f.active("web"); !cmp.Equal(got, []string{"n2"}) {
		t.Fatalf("copies on %v, want [n2]", got)
	}
	if got := f.st.DesiredNames("n2"); !cmp.Equal(got, []string{"web"}) {
		t.Errorf("desired set of n2 = %v, want [web]", got)
	}
	if !cmp.Equal(f.sent.nodes, []string{"n2"}) {
		t.Errorf("sets sent to %v, want [n2]", f.sent.nodes)
	}
	cp := f.st.Copies("web")[0]
	if cp.AssignedGeneration != 1 || cp.Generation != 1 || cp.State != workloads.CopyPending {
		t.Errorf("copy %+v, want pending at generation 1", cp)
	}
	// The node runs what the spec says, with defaults filled.
	b := f.st.Diff("n2", 0, 1<<20)[0].GetAssignments()[0].GetSpecJson()
	var got spec.WorkloadSpec
	if err := json.Unmarshal(b, &got); err != nil || got.Placement.NodeName != "n2" || got.Disconnect.LostAfter.Std() != spec.DefaultLostAfter {
		t.Errorf("assignment spec %s (%v)", b, err)
	}
	if audit := f.c.Placements("web").Items; len(audit) != 1 || audit[0].Site != "n2" || audit[0].Action != "place" {
		t.Errorf("audit = %+v, want one place on n2", audit)
	}
	// Nothing changes on the next pass.
	f.pass(t)
	if len(f.st.Copies("web")) != 1 || len(f.c.Placements("").Items) != 1 {
		t.Errorf("second pass changed something: %+v", f.st.Copies("web"))
	}
	// Running, as its node says.
	f.report(t, "n2", "web", pb.WorkloadStatus_STATE_RUNNING)
	v, err := f.c.Get("web")
	if err != nil || v.Running != 1 || v.Wanted != 1 || v.Replicas[0].State != "running" || v.Replicas[0].Node != "n2" {
		t.Errorf("Get(web) = %+v, %v; want one running replica on n2", v, err)
	}
}

func TestSelectorPicksMatchingNodes(t *testing.T) {
	f := newFixture(t, nil, edge("t1", "fleet", "trucks"), edge("s1", "fleet", "sats"), edge("t2", "fleet", "trucks"))
	f.apply(t, workloadDoc("agg", "{replicas: 2, nodeSelector: {matchLabels: {fleet: trucks}}}", "{}"))
	f.pass(t)
	if got := f.active("agg"); !cmp.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("copies on %v, want [t1 t2]", got)
	}
	// A third replica has nowhere to go: a node runs one copy of a workload.
	f.apply(t, workloadDoc("agg", "{replicas: 3, nodeSelector: {matchLabels: {fleet: trucks}}}", "{}"))
	f.pass(t)
	v, _ := f.c.Get("agg")
	if len(f.active("agg")) != 2 || v.Unschedulable != "0/3 sites: 2 already runs a copy, 1 selector mismatch" {
		t.Errorf("copies on %v, unschedulable %q; want 2 copies and the reason", f.active("agg"), v.Unschedulable)
	}
}

func TestReplicasGoToDistinctNodes(t *testing.T) {
	// The latency objective alone would put every replica on the node
	// nearest the data source.
	f := newFixture(t, nil, edge("near", "skyedge.io/lat", "48.1", "skyedge.io/lon", "11.6"),
		edge("mid", "skyedge.io/lat", "50.1", "skyedge.io/lon", "8.7"), edge("far", "skyedge.io/lat", "40.4", "skyedge.io/lon", "-3.7"))
	f.apply(t, workloadDoc("cam", "{replicas: 2, objective: latency, dataSource: {location: {lat: 48.1, lon: 11.6}}}", "{}"))
	f.pass(t)
	if got := f.active("cam"); !cmp.Equal(got, []string{"mid", "near"}) {
		t.Errorf("replicas on %v, want the two nearest nodes [mid near]", got)
	}
}

func TestDisconnectedWithoutReplaceMovesNothing(t *testing.T) {
	f := newFixture(t, nil, edge("n1"), edge("n2"))
	f.apply(t, workloadDoc("web", "{nodeName: n1}", "{lostAfter: 10m}"))
	f.pass(t)
	f.report(t, "n1", "web", pb.WorkloadStatus_STATE_RUNNING)
	f.setOffline("n1")
	f.clk.Advance(9 * time.Minute)
	f.pass(t)
	if got, stop := f.active("web"), f.stopping("web"); !cmp.Equal(got, []string{"n1"}) || len(stop) != 0 {
		t.Errorf("after 9m offline: active %v stopping %v, want [n1] and none", got, stop)
	}
	if v, _ := f.c.Get("web"); v.Replicas[0].State != "unknown" {
		t.Errorf("state of a replica on an offline node = %q, want unknown", v.Replicas[0].State)
	}
}

func TestNodeLostIsReplaced(t *testing.T) {
	f := newFixture(t, nil, edge("n1", "role", "gw"), edge("n2", "role", "gw"))
	f.apply(t, workloadDoc("web", "{nodeSelector: {matchLabels: {role: gw}}}", "{lostAfter: 10m}"))
	f.pass(t)
	first := f.active("web")[0]
	other := map[string]string{"n1": "n2", "n2": "n1"}[first]
	f.setOffline(first)
	f.clk.Advance(11 * time.Minute)
	f.pass(t)
	if got := f.active("web"); !cmp.Equal(got, []string{other}) {
		t.Errorf("after lostAfter: active %v, want [%s]", got, other)
	}
	// The copy on the lost node is forgotten; its set drops the workload.
	if len(f.stopping("web")) != 0 || len(f.st.DesiredNames(first)) != 0 {
		t.Errorf("stopping %v, set of %s %v; want both empty", f.stopping("web"), first, f.st.DesiredNames(first))
	}
	audit := f.c.Placements("web").Items
	if len(audit) != 3 || audit[0].Action != "replace" || audit[0].Cause != "node-lost" || audit[1].Action != "stop" {
		t.Errorf("audit = %+v, want place, stop, replace", audit)
	}
}

func TestReplaceThenReturn(t *testing.T) {
	for _, tc := range []struct {
		policy   string
		survivor string // original or replacement
	}{
		{"keep-original", "original"},
		{"keep-replacement", "replacement"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			f := newFixture(t, nil, edge("n1", "role", "gw"), edge("n2", "role", "gw"))
			f.apply(t, workloadDoc("web", "{nodeName: n1, replicas: 1}", "{}"))
			f.pass(t)
			// Repin by selector so that a replacement has somewhere to go.
			f.apply(t, workloadDoc("web", "{nodeSelector: {matchLabels: {role: gw}}}",
				"{lostAfter: 1h, replace: true, reconcile: "+tc.policy+"}"))
			f.pass(t)
			if got := f.active("web"); !cmp.Equal(got, []string{"n1"}) {
				t.Fatalf("before the disconnect: %v, want [n1]", got)
			}
			f.report(t, "n1", "web", pb.WorkloadStatus_STATE_RUNNING)

			f.setOffline("n1")
			f.clk.Advance(time.Minute)
			f.pass(t)
			if got := f.active("web"); !cmp.Equal(got, []string{"n1", "n2"}) {
				t.Fatalf("with replace: true: active %v, want the original on n1 and a replacement on n2", got)
			}
			f.report(t, "n2", "web", pb.WorkloadStatus_STATE_RUNNING)

			f.clk.Advance(time.Minute)
			f.setOnline("n1")
			f.pass(t)
			winner, loser := "n1", "n2"
			if tc.survivor == "replacement" {
				winner, loser = "n2", "n1"
			}
			if got, stop := f.active("web"), f.stopping("web"); !cmp.Equal(got, []string{winner}) || !cmp.Equal(stop, []string{loser}) {
				t.Fatalf("after the return: active %v stopping %v, want [%s] and [%s]", got, stop, winner, loser)
			}
			// The stop reached the loser's desired set.
			if names := f.st.DesiredNames(loser); len(names) != 0 {
				t.Errorf("set of %s = %v, want web removed", loser, names)
			}
			if names := f.st.DesiredNames(winner); !cmp.Equal(names, []string{"web"}) {
				t.Errorf("set of %s = %v, want [web]", winner, names)
			}
			// The loser acknowledges and reports it stopped: the copy goes.
			f.ack(t, loser)
			f.pass(t)
			if len(f.stopping("web")) != 1 {
				t.Fatalf("stopping copy finished before the node confirmed it stopped")
			}
			f.report(t, loser, "web", pb.WorkloadStatus_STATE_STOPPED)
			f.pass(t)
			if len(f.stopping("web")) != 0 {
				t.Errorf("stopping copy kept after the node reported it stopped")
			}
			if _, ok := f.st.Status("web", loser); ok {
				t.Errorf("status of the stopped copy on %s kept", loser)
			}
		})
	}
}

func TestDeleteStopsEveryCopy(t *testing.T) {
	f := newFixture(t, nil, edge("n1"), edge("n2"), edge("n3"))
	f.apply(t, workloadDoc("web", "{replicas: 3}", "{}"))
	f.pass(t)
	if got := f.active("web"); len(got) != 3 {
		t.Fatalf("copies on %v, want 3", got)
	}
	if _, err := f.c.Delete("web"); err != nil {
		t.Fatal(err)
	}
	f.pass(t)
	if len(f.active("web")) != 0 || len(f.stopping("web")) != 3 {
		t.Fatalf("after delete: active %v stopping %v, want all stopping", f.active("web"), f.stopping("web"))
	}
	v, err := f.c.Get("web")
	if err != nil || !v.Deleting || v.Running != 0 || v.Replicas[0].Desired != "stop" {
		t.Errorf("Get during the delete = %+v, %v", v, err)
	}
	for _, n := range []string{"n1", "n2"} {
		f.ack(t, n)
		f.report(t, n, "web", pb.WorkloadStatus_STATE_STOPPED)
	}
	// n3 is lost meanwhile: its copy counts as gone after lostAfter.
	f.setOffline("n3")
	f.clk.Advance(spec.DefaultLostAfter)
	f.pass(t)
	if _, ok := f.st.Workload("web"); ok || len(f.st.Copies("web")) != 0 {
		t.Errorf("workload kept after every copy stopped: %+v", f.st.Copies("web"))
	}
	if _, err := f.c.Get("web"); err == nil {
		t.Error("Get of a deleted workload succeeded")
	}
}

func TestSpecChangeOnAPinnedNode(t *testing.T) {
	f := newFixture(t, nil, edge("n1"))
	f.apply(t, workloadDoc("web", "{nodeName: n1}", "{}"))
	f.pass(t)
	f.ack(t, "n1")
	f.report(t, "n1", "web", pb.WorkloadStatus_STATE_RUNNING)
	old := f.st.Copies("web")[0]

	doc := strings.Replace(workloadDoc("web", "{nodeName: n1}", "{}"), `"3600"`, `"7200"`, 1)
	f.apply(t, doc)
	f.pass(t)
	copies := f.st.Copies("web")
	if len(copies) != 2 {
		t.Fatalf("copies %+v, want the old one stopping and a new one", copies)
	}
	diff := f.st.Diff("n1", 1, 1<<20)
	if len(diff) != 1 || len(diff[0].GetAssignments()) != 1 || !strings.Contains(string(diff[0].GetAssignments()[0].GetSpecJson()), "7200") {
		t.Fatalf("n1 is sent %v, want the new spec", diff)
	}
	// Once n1 holds the new assignment, the old copy is done.
	f.ack(t, "n1")
	f.pass(t)
	copies = f.st.Copies("web")
	if len(copies) != 1 || copies[0].ID == old.ID || copies[0].Stopping {
		t.Errorf("copies %+v, want the new one only", copies)
	}
}

func TestCloudRegionCopies(t *testing.T) {
	f := newFixture(t, loadCatalog(t), edge("e1"))
	f.apply(t, workloadDoc("batch", "{tier: cloud}", "{}"))
	f.pass(t)
	cp := f.st.Copies("batch")
	if len(cp) != 1 || cp[0].Site != "aws-eu-central-1" || cp[0].Node != "" || !strings.Contains(cp[0].Reason, "no online agent") {
		t.Fatalf("copies %+v, want one in the cheapest region waiting for an agent", cp)
	}
	// Agents appear; the least loaded one takes each copy.
	for _, n := range []string{"gw1", "gw2"} {
		f.fleet.put(edge(n, planner.LabelSite, "aws-eu-central-1"))
	}
	f.fleet.put(edge("gg1", planner.LabelSite, "gcp-europe-west3"))
	f.pass(t)
	if got := f.active("batch"); !cmp.Equal(got, []string{"gw1"}) || !cmp.Equal(f.st.DesiredNames("gw1"), []string{"batch"}) {
		t.Fatalf("batch on %v, gw1's set %v; want gw1", got, f.st.DesiredNames("gw1"))
	}
	if v, _ := f.c.Get("batch"); v.Replicas[0].Reason != "" || v.Replicas[0].Site != "aws-eu-central-1" || v.CostPerHour <= 0 {
		t.Errorf("replica %+v, cost %v", v.Replicas[0], v.CostPerHour)
	}
	f.apply(t, workloadDoc("etl", "{tier: cloud}", "{}"))
	f.pass(t)
	if got := f.active("etl"); !cmp.Equal(got, []string{"gw2"}) {
		t.Errorf("second workload on %v, want the less loaded gw2", got)
	}

	// The region cannot start batch: it fails over to the next region.
	gen, _, _ := f.st.Desired("gw1")
	out, err := f.st.ApplyStatus("gw1", "ob", 1, &pb.WorkloadStatus{Name: "batch", Generation: gen,
		State: pb.WorkloadStatus_STATE_FAILED, LastError: "RunTask: insufficient capacity"}, f.clk.Now())
	if err != nil || !out.CapacityError || out.Site != "aws-eu-central-1" {
		t.Fatalf("ApplyStatus = %+v, %v; want a capacity error of aws-eu-central-1", out, err)
	}
	f.c.CapacityError(out.Site)
	f.pass(t)
	if got, stop := f.active("batch"), f.stopping("batch"); !cmp.Equal(got, []string{"gg1"}) || !cmp.Equal(stop, []string{"gw1"}) {
		t.Errorf("after the capacity error: batch on %v, stopping on %v; want gg1 and gw1", got, stop)
	}
	audit := f.c.Placements("batch").Items
	if len(audit) < 2 || audit[0].Cause != "capacity-error" || audit[0].Site != "gcp-europe-west3" || audit[0].Jurisdiction != "DE" {
		t.Errorf("audit = %+v, want the failover to gcp-europe-west3 first", audit)
	}
}

func TestExplainAndPlan(t *testing.T) {
	f := newFixture(t, nil, edge("n1", "zone", "a"), edge("n2", "zone", "b"))
	f.apply(t, workloadDoc("web", "{nodeSelector: {matchLabels: {zone: b}}}", "{}"))
	f.pass(t)
	plan, err := f.c.Explain("web")
	if err != nil || len(plan.Chosen) != 1 || plan.Chosen[0].Site != "n2" || len(plan.Candidates) != 2 {
		t.Errorf("Explain(web) = %+v, %v; want n2 chosen among 2 candidates", plan, err)
	}
	if _, err := f.c.Explain("nope"); err == nil {
		t.Error("Explain(nope) succeeded")
	}
	w, _ := spec.ParseWorkload([]byte(workloadDoc("other", "{nodeSelector: {matchLabels: {zone: a}}}", "{}")))
	plan, err = f.c.Plan(w)
	if err != nil || len(plan.Chosen) != 1 || plan.Chosen[0].Site != "n1" {
		t.Errorf("Plan(other) = %+v, %v; want n1", plan, err)
	}
	if _, ok := f.st.Workload("other"); ok {
		t.Error("Plan applied the workload")
	}
	sites := f.c.Sites().Items
	if len(sites) != 2 || sites[1].ID != "n2" || sites[1].Replicas != 1 {
		t.Errorf("Sites = %+v, want n2 with one replica", sites)
	}
}

func TestSilenceCountsFromTheBridgeStart(t *testing.T) {
	f := newFixture(t, nil, edge("n1", "role", "gw"), edge("n2", "role", "gw"))
	f.apply(t, workloadDoc("web", "{nodeName: n1}", "{lostAfter: 10m}"))
	f.pass(t)
	// The bridge restarts a day later; n1 was last seen before it went down.
	f.clk.Advance(24 * time.Hour)
	n1, _ := f.fleet.Get("n1")
	n1.Online, n1.OfflineReason = false, "bridge_restart"
	f.fleet.put(n1)
	c, err := New(Config{Store: f.st, Nodes: f.fleet, Sender: f.sent, Clock: f.clk})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	f.apply(t, workloadDoc("web", "{nodeSelector: {matchLabels: {role: gw}}}", "{lostAfter: 10m}"))
	f.pass(t)
	if got, stop := f.active("web"), f.stopping("web"); !cmp.Equal(got, []string{"n1"}) || len(stop) != 0 {
		t.Fatalf("right after the restart: active %v stopping %v, want n1 kept", got, stop)
	}
	f.clk.Advance(10 * time.Minute)
	f.pass(t)
	if got := f.active("web"); !cmp.Equal(got, []string{"n2"}) {
		t.Errorf("10m after the restart: active %v, want the replacement on n2", got)
	}
}

func TestActionsOfAWorkloadChangedDuringThePassAreSkipped(t *testing.T) {
	f := newFixture(t, nil, edge("n1"), edge("n2"))
	f.apply(t, workloadDoc("web", "{nodeName: n1}", "{}"))
	f.pass(t)
	// A pass reads the fleet and decides: the spec changed, so replace.
	f.apply(t, strings.Replace(workloadDoc("web", "{nodeName: n1}", "{}"), `"3600"`, `"60"`, 1))
	copies := f.st.Copies("")
	fl, err := f.c.snapshot(copies)
	if err != nil {
		t.Fatal(err)
	}
	ws := f.st.Workloads()
	reqs, current := f.c.requests(ws, copies)
	actions, err := f.c.profile.Reconcile(fl.snap, reqs, current)
	if err != nil || len(actions) != 2 {
		t.Fatalf("Reconcile = %v, %v; want a place and a stop", actions, err)
	}
	// Meanwhile the workload is deleted: the pass must not act on it.
	if _, err := f.c.Delete("web"); err != nil {
		t.Fatal(err)
	}
	p := newPass(f.c, fl, ws, reqs, actions)
	if _, err := f.st.Update(p.run); err != nil {
		t.Fatal(err)
	}
	if !p.skipped["web"] || len(f.st.Copies("web")) != 1 || f.st.Copies("web")[0].Stopping {
		t.Errorf("copies %+v after a pass on a stale read, want the one copy untouched", f.st.Copies("web"))
	}
	// The next pass works on what is: the delete.
	f.pass(t)
	if got := f.stopping("web"); !cmp.Equal(got, []string{"n1"}) {
		t.Errorf("stopping %v, want [n1]", got)
	}
}

func TestRunPassesOnTriggerAndStops(t *testing.T) {
	f := newFixture(t, nil, edge("n1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()
	f.apply(t, workloadDoc("web", "{}", "{}")) // triggers a pass
	deadline := time.Now().Add(10 * time.Second)
	for len(f.active("web")) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.active("web"); !cmp.Equal(got, []string{"n1"}) {
		t.Errorf("after the trigger: copies on %v, want [n1]", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

// fetcher answers logs requests from a map of node -> error.
type fetcher struct{ errs map[string]error }

func (l fetcher) Fetch(_ context.Context, node, workload string, tail int) (*pb.LogsResponse, error) {
	if err := l.errs[node]; err != nil {
		return nil, err
	}
	return &pb.LogsResponse{Workload: workload, Lines: []string{fmt.Sprintf("%s %d", node, tail)}}, nil
}

func TestLogs(t *testing.T) {
	f := newFixture(t, nil, edge("n1"), edge("n2"), edge("n3"))
	f.c.cfg.Logs = fetcher{errs: map[string]error{"n2": fmt.Errorf("logs: %w", logs.ErrOffline), "n3": logs.ErrTimeout}}
	f.apply(t, workloadDoc("web", "{replicas: 3}", "{}"))
	f.pass(t)
	ctx := context.Background()
	if _, err := f.c.Logs(ctx, "web", "", 10); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Logs with nothing running = %v, want ErrConflict", err)
	}
	f.report(t, "n1", "web", pb.WorkloadStatus_STATE_RUNNING)
	got, err := f.c.Logs(ctx, "web", "", 10)
	if err != nil || got.Node != "n1" || !cmp.Equal(got.Lines, []string{"n1 10"}) {
		t.Errorf("Logs of the running replica = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name, node string
		want       error
	}{
		{"web", "n2", api.ErrConflict},
		{"web", "n3", api.ErrTimeout},
		{"web", "n9", api.ErrNotFound},
		{"nope", "", api.ErrNotFound},
	} {
		if _, err := f.c.Logs(ctx, tc.name, tc.node, 0); !errors.Is(err, tc.want) {
			t.Errorf("Logs(%s, %s) = %v, want %v", tc.name, tc.node, err, tc.want)
		}
	}
}

func TestAgentsWithoutWorkloadSupportGetNothing(t *testing.T) {
	old := edge("old")
	old.Capability = protocol.CapWorkloads - 1
	current := edge("new")
	current.Capability = protocol.CapabilityVersion
	f := newFixture(t, nil, old, current)
	f.apply(t, workloadDoc("web", "{replicas: 2}", "{}"))
	f.pass(t)
	if got := f.active("web"); !cmp.Equal(got, []string{"new"}) {
		t.Errorf("copies on %v, want only on the node that speaks the workload protocol", got)
	}
}
