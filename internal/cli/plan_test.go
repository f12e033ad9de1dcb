package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// residencyPlan is the plan of examples/workloads/sky-residency.yaml on
// the example catalog and the demo's nodes, as the bridge serves it.
var residencyPlan = apiv1.Plan{
	Workload: "sky-residency", Wanted: 1, DecidedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
	Chosen: []apiv1.PlannedReplica{{Slot: 0, Site: "azure-germanywestcentral", Kind: "cloud", Score: 99.99, CostPerHour: 0.11705,
		RTTMillis: 10, RTTSource: "measured", Jurisdiction: "DE", Residency: "DE"}},
	Summary: "3/12 sites: 6 wrong jurisdiction, 3 wrong tier",
	Candidates: []apiv1.Candidate{
		{Site: "azure-germanywestcentral", Kind: "cloud", Feasible: true, Score: 99.99, Terms: map[string]float64{"cost": 100, "balance": 99.93},
			CostPerHour: 0.11705, Chosen: true},
		{Site: "aws-eu-central-1", Kind: "cloud", Feasible: true, Score: 96.79, Terms: map[string]float64{"cost": 96.47, "balance": 99.96},
			CostPerHour: 0.11839},
		{Site: "aws-us-east-1", Kind: "cloud", Filter: "jurisdiction", Reason: "jurisdiction US not in [DE]", CostPerHour: 0.114685},
		{Site: "truck-042", Kind: "edge", Filter: "tier", Reason: "edge node; placement.tier is cloud"},
	},
	CostPerHour: 0.11705,
}

func TestPlan(t *testing.T) {
	unplaced := residencyPlan
	unplaced.Chosen, unplaced.CostPerHour = nil, 0
	unplaced.Error = "workload sky-residency: unschedulable: placed 0/1 replicas; 0/12 sites: 9 wrong jurisdiction, 3 wrong tier"
	f, url := newFakeBridge(t, map[string]answer{
		"POST /api/v1/plan":                           {200, residencyPlan},
		"GET /api/v1/workloads/sky-residency/explain": {200, unplaced},
	})
	file := writeFile(t, "sky-residency.yaml", helloYAML)
	code, out, errs := run(t, "plan", "-f", file, "--server", url)
	if code != 0 {
		t.Fatalf("plan = %d: %s", code, errs)
	}
	if got := f.last(t); got.Method != "POST" || got.Path != "/api/v1/plan" || got.Body != helloYAML {
		t.Errorf("request = %+v", got)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"Workload sky-residency: 1/1 replicas placed, $0.11705/h"},
		{},
		{"SLOT", "CHOSEN SITE", "KIND", "SCORE", "COST/H", "RTT", "RESIDENCY", "PREEMPTS"},
		{"0", "azure-germanywestcentral", "cloud", "99.99", "10.0ms measured", "DE", "-"},
		{},
		{"SITE", "KIND", "VERDICT", "SCORE", "COST/H", "REASON"},
		{"azure-germanywestcentral", "chosen", "99.99", "balance 99.93, cost 100.00"},
		{"aws-eu-central-1", "feasible", "96.79", "$0.11839", "balance 99.96, cost 96.47"},
		{"aws-us-east-1", "cloud", "jurisdiction", " - ", "$0.11468", "jurisdiction US not in [DE]"},
		{"truck-042", "edge", "tier", "$0", "edge node; placement.tier is cloud"},
		{},
		{"3/12 sites: 6 wrong jurisdiction, 3 wrong tier"},
	}
	if len(lines) != len(want) {
		t.Fatalf("plan printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for k, w := range want {
		contains(t, "plan line", lines[k], w...)
	}

	code, out, _ = run(t, "plan", "-f", file, "-o", "json", "--server", url)
	var back apiv1.Plan
	if code != 0 || json.Unmarshal([]byte(out), &back) != nil || back.Chosen[0].Site != "azure-germanywestcentral" || len(back.Candidates) != 4 {
		t.Errorf("plan -o json = %d:\n%s", code, out)
	}

	// explain prints the same table; an unplaced workload is not an error.
	code, out, errs = run(t, "workloads", "explain", "sky-residency", "--server", url)
	if code != 0 {
		t.Fatalf("workloads explain = %d: %s", code, errs)
	}
	contains(t, "workloads explain", out, "0/1 replicas placed", "VERDICT", "error: workload sky-residency: unschedulable")
	if strings.Contains(out, "CHOSEN SITE") {
		t.Errorf("workloads explain shows a chosen table without a chosen site:\n%s", out)
	}
	if got := f.last(t); got.Method != "GET" || got.Path != "/api/v1/workloads/sky-residency/explain" {
		t.Errorf("request = %+v", got)
	}
}

func TestPlanIncompleteAndRejected(t *testing.T) {
	unplaced := residencyPlan
	unplaced.Chosen = nil
	unplaced.Error = "placed 0/1 replicas"
	_, url := newFakeBridge(t, map[string]answer{"POST /api/v1/plan": {200, unplaced}})
	file := writeFile(t, "w.yaml", helloYAML)
	code, out, errs := run(t, "plan", "-f", file, "--server", url)
	if code != 1 || !strings.Contains(out, "error: placed 0/1 replicas") || !strings.Contains(errs, "not every replica can be placed") {
		t.Errorf("plan (unplaceable) = %d, stdout %q, stderr %q; want 1 after the plan", code, out, errs)
	}

	_, url = newFakeBridge(t, map[string]answer{"POST /api/v1/plan": {400, apiv1.Error{Error: `spec.placement.jurisdictions "Germany": use DE`}}})
	code, out, errs = run(t, "plan", "-f", file, "--server", url)
	if code != 1 || out != "" || !strings.Contains(errs, "rejected by the bridge (400 Bad Request):\n  spec.placement.jurisdictions") {
		t.Errorf("plan (invalid) = %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := run(t, "plan", "--server", url); code != 2 || !strings.Contains(errs, "-f FILE is required") {
		t.Errorf("plan without -f = %d, %q", code, errs)
	}
}

func TestSites(t *testing.T) {
	until := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	list := apiv1.SiteList{Items: []apiv1.Site{
		{ID: "truck-042", Kind: "edge", Link: "online", Jurisdiction: "DE", Location: &spec.Location{Lat: 48.14, Lon: 11.58},
			CapacityMilliCPU: 3600, CapacityMemory: 8<<30 - 256<<20, AllocatedMilliCPU: 500, AllocatedMemory: 1 << 30, Replicas: 2},
		{ID: "bad", Kind: "edge", Link: "disconnected", CapacityMilliCPU: 900, CapacityMemory: 1 << 30,
			Problems: []string{`label skyedge.io/lat="x": not a number of decimal degrees; the node has no location`}},
		{ID: "aws-us-east-1", Kind: "cloud", Link: "online", Provider: "aws", Region: "us-east-1", Jurisdiction: "US",
			Location: &spec.Location{Lat: 39.04, Lon: -77.49}, CapacityMilliCPU: 2_000_000, CapacityMemory: 8 << 40,
			CPUHour: 0.04048, CapacityErrorUntil: until},
	}}
	f, url := newFakeBridge(t, map[string]answer{"GET /api/v1/sites": {200, list}})
	code, out, errs := run(t, "sites", "--server", url)
	if code != 0 {
		t.Fatalf("sites = %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("sites:\n%s", out)
	}
	contains(t, "sites header", lines[0], "SITE", "KIND", "LINK", "JURISDICTION", "CPU", "MEMORY", "REPLICAS", "NOTES")
	contains(t, "sites truck-042", lines[1], "truck-042", "edge", "online", "(48.14, 11.58)", "DE", "500m/3.6", "1Gi/7.75Gi", " 2 ")
	contains(t, "sites bad", lines[2], "bad", "disconnected", "skyedge.io/lat")
	contains(t, "sites aws-us-east-1", lines[3], "aws/us-east-1 (39.04, -77.49)", "0/2000", "0/8Ti", "$0.04048", "capacity error: avoided until "+until.UTC().Format(time.RFC3339))
	if got := f.last(t); got.Method != "GET" || got.Path != "/api/v1/sites" {
		t.Errorf("request = %+v", got)
	}
	if code, out, _ := run(t, "sites", "-o", "json", "--server", url); code != 0 || !strings.Contains(out, `"id": "truck-042"`) {
		t.Errorf("sites -o json = %d:\n%s", code, out)
	}
}

func TestLogs(t *testing.T) {
	f, url := newFakeBridge(t, map[string]answer{
		"GET /api/v1/workloads/hello/logs": {200, apiv1.Logs{Workload: "hello", Node: "truck-042",
			Lines: []string{"starting", "listening on :8080"}, Truncated: true}},
	})
	code, out, errs := run(t, "logs", "hello", "--node", "truck-042", "--tail", "2", "--server", url)
	if code != 0 || out != "starting\nlistening on :8080\n" || !strings.Contains(errs, "2 lines from truck-042") {
		t.Fatalf("logs = %d, stdout %q, stderr %q", code, out, errs)
	}
	if got := f.last(t); got.Path != "/api/v1/workloads/hello/logs" || got.Query != "node=truck-042&tail=2" {
		t.Errorf("request = %+v", got)
	}
	if code, _, _ := run(t, "logs", "--server", url, "hello"); code != 0 || f.last(t).Query != "" {
		t.Errorf("logs without flags = %d, query %q", code, f.last(t).Query)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"logs"}, 2, "logs NAME"},
		{[]string{"logs", "hello", "--tail", "-1"}, 2, "want 0 or more"},
		{[]string{"logs", "nope"}, 1, "404 Not Found"},
	} {
		code, _, errs := run(t, append(tc.args, "--server", url)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("skyedge %v = %d, %q; want %d with %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}
