package bridge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/desired"
)

// expect waits for the next message to s whose body matches, skipping
// acks and welcomes.
func (s *sim) expect(t testing.TB, what string, match func(*pb.Envelope) bool) *pb.Envelope {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case env := <-s.down:
			if match(env) {
				return env
			}
		case <-deadline:
			t.Fatalf("node %s: no %s within 10s", s.id, what)
			return nil
		}
	}
}

func request(t testing.TB, b *testBridge, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+b.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func envFrom(id string, seq uint64, body any) *pb.Envelope {
	env := &pb.Envelope{NodeId: id, BootEpoch: 1, Seq: seq, SentAtMs: time.Now().UnixMilli(), Capability: protocol.CapabilityVersion}
	switch b := body.(type) {
	case *pb.DesiredAck:
		env.Body = &pb.Envelope_DesiredAck{DesiredAck: b}
	case *pb.WorkloadStatus:
		env.Body = &pb.Envelope_Status{Status: b}
	case *pb.LogsResponse:
		env.Body = &pb.Envelope_LogsResponse{LogsResponse: b}
	}
	return env
}

// TestWorkloadOverMQTT drives one workload through a real bridge: applied
// over HTTP, sent to its node as desired state, acknowledged, reported
// running, its logs fetched over MQTT, then deleted.
func TestWorkloadOverMQTT(t *testing.T) {
	p := newPKI(t)
	cfg := embeddedConfig(t, p)
	cfg.ReconcileInterval = 200 * time.Millisecond
	b := start(t, cfg)
	n := connect(t, "tls://"+b.MQTTAddr(), "edge-1", p.clientTLS(t, "edge-1"))
	h := hello("edge-1", map[string]string{"fleet": "trucks"})
	h.GetHello().OutboxId = "ob-1"
	n.send(t, h)
	eventually(t, 5*time.Second, func() string {
		if node, ok := getNode(t, b, "edge-1"); !ok || !node.Online {
			return "node not online"
		}
		return ""
	})

	doc := `apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: hello}
spec:
  runtime: exec
  exec: {command: /bin/sh, args: [-c, "echo hi; sleep 3600"]}
  resources: {cpu: 250m, memory: 64Mi}
  placement: {nodeSelector: {matchLabels: {fleet: trucks}}}
`
	if code, body := request(t, b, "POST", "/api/v1/workloads", doc); code != http.StatusCreated {
		t.Fatalf("POST workload = %d %s", code, body)
	}
	var local desired.Local
	isDesired := func(env *pb.Envelope) bool { return env.GetDesired() != nil }
	env := n.expect(t, "desired state", isDesired)
	if _, _, err := local.Apply(env.GetDesired()); err != nil {
		t.Fatalf("apply desired state %v: %v", env.GetDesired(), err)
	}
	if got := local.Names(); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("node holds %v, want [hello]", got)
	}
	n.send(t, envFrom("edge-1", 0, &pb.DesiredAck{Generation: local.Generation}))
	n.send(t, envFrom("edge-1", 1, &pb.WorkloadStatus{Name: "hello", Generation: local.Generation,
		State: pb.WorkloadStatus_STATE_RUNNING, Pid: 4242, StartedAtMs: time.Now().UnixMilli()}))

	var w apiv1.Workload
	eventually(t, 5*time.Second, func() string {
		getJSON(t, b, "/api/v1/workloads/hello", &w)
		if w.Running != 1 || len(w.Replicas) != 1 || w.Replicas[0].AckedGeneration != local.Generation || w.Replicas[0].PID != 4242 {
			return "workload not reported running and acknowledged: " + strings.TrimSpace(jsonString(w))
		}
		return ""
	})

	// Logs travel over MQTT.
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + b.HTTPAddr() + "/api/v1/workloads/hello/logs?tail=5")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(body), err}
	}()
	req := n.expect(t, "logs request", func(env *pb.Envelope) bool { return env.GetLogsRequest() != nil }).GetLogsRequest()
	if req.GetWorkload() != "hello" || req.GetTailLines() != 5 {
		t.Errorf("logs request %v, want 5 lines of hello", req)
	}
	n.send(t, envFrom("edge-1", 0, &pb.LogsResponse{RequestId: req.GetRequestId(), Workload: req.GetWorkload(), Lines: []string{"hi"}}))
	a := <-got
	if a.err != nil || a.code != http.StatusOK || !strings.Contains(a.body, `"hi"`) || !strings.Contains(a.body, `"edge-1"`) {
		t.Fatalf("GET logs = %d %s %v", a.code, a.body, a.err)
	}

	if code, body := request(t, b, "DELETE", "/api/v1/workloads/hello", ""); code != http.StatusOK {
		t.Fatalf("DELETE = %d %s", code, body)
	}
	env = n.expect(t, "the removal", isDesired)
	if _, _, err := local.Apply(env.GetDesired()); err != nil || len(local.Names()) != 0 {
		t.Fatalf("after the removal the node holds %v (%v)", local.Names(), err)
	}
	n.send(t, envFrom("edge-1", 0, &pb.DesiredAck{Generation: local.Generation}))
	n.send(t, envFrom("edge-1", 2, &pb.WorkloadStatus{Name: "hello", Generation: 1, State: pb.WorkloadStatus_STATE_STOPPED}))
	eventually(t, 5*time.Second, func() string {
		if code := getJSON(t, b, "/api/v1/workloads/hello", nil); code != http.StatusNotFound {
			return "workload still there after its copy stopped"
		}
		return ""
	})
	if got := metric(t, b, "skyedge_bridge_workload_statuses_total"); got != 2 {
		t.Errorf("statuses applied = %v, want 2", got)
	}
	if got := metric(t, b, `skyedge_bridge_logs_requests_total{outcome="ok"}`); got != 1 {
		t.Errorf("logs requests ok = %v, want 1", got)
	}
	var audit apiv1.PlacementList
	getJSON(t, b, "/api/v1/placements?workload=hello", &audit)
	if len(audit.Items) != 2 || audit.Items[0].Action != "stop" || audit.Items[1].Site != "edge-1" {
		t.Errorf("audit = %+v, want the place on edge-1 and the stop", audit.Items)
	}
	http.DefaultClient.CloseIdleConnections()
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
