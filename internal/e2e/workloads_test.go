package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
)

// apply POSTs a workload document to the bridge and fails the test on an
// error answer.
func apply(t testing.TB, httpAddr, doc string) apiv1.Workload {
	t.Helper()
	resp, err := http.Post("http://"+httpAddr+"/api/v1/workloads", "application/yaml", strings.NewReader(doc))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("apply: %s: %s", resp.Status, body)
	}
	var w apiv1.Workload
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("apply: decode %s: %v", body, err)
	}
	return w
}

func workload(t testing.TB, httpAddr, name string) (apiv1.Workload, bool) {
	t.Helper()
	var w apiv1.Workload
	code := getJSON(t, "http://"+httpAddr+"/api/v1/workloads/"+name, &w)
	return w, code == http.StatusOK
}

func deleteWorkload(t testing.TB, httpAddr, name string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+httpAddr+"/api/v1/workloads/"+name, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("delete %s: %s", name, resp.Status)
	}
}

// running returns the replicas of w in state running whose desired state
// is run, by node.
func running(w apiv1.Workload) map[string]apiv1.Replica {
	m := map[string]apiv1.Replica{}
	for _, r := range w.Replicas {
		if r.State == "running" && r.Desired != "stop" {
			m[r.Node] = r
		}
	}
	return m
}

func replicaSummary(w apiv1.Workload) string {
	var b strings.Builder
	for _, r := range w.Replicas {
		fmt.Fprintf(&b, " [%d %s desired=%s state=%s pid=%d gen=%d/%d %s]", r.Slot, r.Node, r.Desired, r.State, r.PID, r.Generation, r.AckedGeneration, r.Reason)
	}
	if w.Unschedulable != "" {
		b.WriteString(" unschedulable: " + w.Unschedulable)
	}
	return b.String()
}

// waitRunning waits until name runs on exactly the nodes in want.
func waitRunning(t testing.TB, httpAddr, name string, timeout time.Duration, want ...string) apiv1.Workload {
	t.Helper()
	var w apiv1.Workload
	eventually(t, timeout, func() (bool, string) {
		var ok bool
		if w, ok = workload(t, httpAddr, name); !ok {
			return false, name + " not found"
		}
		got := running(w)
		if len(got) != len(want) {
			return false, fmt.Sprintf("%s running on %d nodes, want %v:%s", name, len(got), want, replicaSummary(w))
		}
		for _, n := range want {
			if _, ok := got[n]; !ok {
				return false, fmt.Sprintf("%s not running on %s:%s", name, n, replicaSummary(w))
			}
		}
		return true, ""
	})
	return w
}

// alive reports whether a process with pid exists.
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

const beatWorkload = `apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: %s}
spec:
  runtime: exec
  exec:
    command: /bin/sh
    args: [-c, 'trap "exit 0" TERM; while true; do echo "beat $VERSION"; sleep 0.2; done']
    env: {VERSION: "%s"}
  resources: {cpu: 50m, memory: 16Mi}
  restart: {policy: always, initialDelay: 200ms, maxDelay: 2s}
  stopGracePeriod: 2s
  disconnect: {%s}
  placement:
    tier: edge
    replicas: 1
    nodeSelector: {matchLabels: {role: %s}}
`

// TestWorkloadLifecycle applies an exec workload through the bridge's
// API, sees it run on the node its selector picks with a live status,
// reads its output over MQTT, updates it to a new version, and deletes it.
func TestWorkloadLifecycle(t *testing.T) {
	p := newPKI(t)
	br := startBridge(t, p, t.TempDir(), nil)
	for _, n := range []struct{ name, role string }{{"truck-1", "vehicle"}, {"factory-1", "factory"}} {
		startAgent(t, p, n.name, br.MQTTAddr(), map[string]string{"role": n.role}, nil)
	}
	api := br.HTTPAddr()

	apply(t, api, fmt.Sprintf(beatWorkload, "beat", "v1", "lostAfter: 1m", "vehicle"))
	w := waitRunning(t, api, "beat", 30*time.Second, "truck-1")
	r := running(w)["truck-1"]
	if !alive(r.PID) {
		t.Fatalf("replica reports pid %d, which does not exist", r.PID)
	}

	var logs apiv1.Logs
	eventually(t, 15*time.Second, func() (bool, string) {
		code := getJSON(t, "http://"+api+"/api/v1/workloads/beat/logs?tail=5", &logs)
		return code == 200 && len(logs.Lines) > 0 && strings.Contains(logs.Lines[len(logs.Lines)-1], "beat v1"),
			fmt.Sprintf("logs: HTTP %d, %q", code, logs.Lines)
	})
	if logs.Node != "truck-1" || len(logs.Lines) > 5 {
		t.Errorf("logs from %q with %d lines, want truck-1 and at most 5", logs.Node, len(logs.Lines))
	}

	// A new version replaces the process.
	apply(t, api, fmt.Sprintf(beatWorkload, "beat", "v2", "lostAfter: 1m", "vehicle"))
	eventually(t, 30*time.Second, func() (bool, string) {
		w, _ := workload(t, api, "beat")
		nr, ok := running(w)["truck-1"]
		return ok && nr.PID != r.PID && nr.Generation > r.Generation, "v2 running with a new pid:" + replicaSummary(w)
	})
	if alive(r.PID) {
		t.Errorf("the v1 process %d still runs after the update", r.PID)
	}
	eventually(t, 15*time.Second, func() (bool, string) {
		code := getJSON(t, "http://"+api+"/api/v1/workloads/beat/logs?tail=1", &logs)
		return code == 200 && len(logs.Lines) == 1 && strings.Contains(logs.Lines[0], "beat v2"), fmt.Sprintf("logs: %q", logs.Lines)
	})

	w, _ = workload(t, api, "beat")
	pid := running(w)["truck-1"].PID
	deleteWorkload(t, api, "beat")
	eventually(t, 30*time.Second, func() (bool, string) {
		_, found := workload(t, api, "beat")
		return !found && !alive(pid), fmt.Sprintf("workload still listed %v, pid %d alive %v", found, pid, alive(pid))
	})
}

// TestWorkloadValidation checks that a bad document is refused with the
// field named, and nothing is applied.
func TestWorkloadValidation(t *testing.T) {
	p := newPKI(t)
	br := startBridge(t, p, t.TempDir(), nil)
	doc := strings.Replace(fmt.Sprintf(beatWorkload, "bad", "v1", "lostAfter: 1m", "vehicle"), "cpu: 50m", "cpu: lots", 1)
	resp, err := http.Post("http://"+br.HTTPAddr()+"/api/v1/workloads", "application/yaml", bytes.NewReader([]byte(doc)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "resources.cpu") {
		t.Fatalf("bad cpu: %s %s, want 400 naming resources.cpu", resp.Status, body)
	}
	if _, found := workload(t, br.HTTPAddr(), "bad"); found {
		t.Fatal("a refused workload was stored")
	}
}
