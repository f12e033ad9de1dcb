package ingest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// workloadSide records what ingest hands the workload side.
type workloadSide struct {
	mu       sync.Mutex
	calls    []string
	failNext error
	gen      uint64
}

func (w *workloadSide) record(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, fmt.Sprintf(format, args...))
}

func (w *workloadSide) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.calls
	w.calls = nil
	return out
}

func (w *workloadSide) Hello(node string, applied uint64) { w.record("hello %s %d", node, applied) }
func (w *workloadSide) DesiredAck(node string, gen uint64) {
	w.record("ack %s %d", node, gen)
}
func (w *workloadSide) Generation(string) uint64 { return w.gen }
func (w *workloadSide) LinkChanged(node string)  { w.record("link %s", node) }
func (w *workloadSide) Response(node string, r *pb.LogsResponse) {
	w.record("logs %s %s", node, r.GetRequestId())
}

func (w *workloadSide) Status(node, outbox string, seq uint64, st *pb.WorkloadStatus, _ time.Time) error {
	w.mu.Lock()
	err := w.failNext
	w.failNext = nil
	w.mu.Unlock()
	if err != nil {
		return err
	}
	w.record("status %s %s/%d %s %s", node, outbox, seq, st.GetName(), st.GetState())
	return nil
}

func statusEnv(seq uint64, name string, state pb.WorkloadStatus_State) *pb.Envelope {
	env := envelope("n1", t0, nil)
	env.Seq = seq
	env.Body = &pb.Envelope_Status{Status: &pb.WorkloadStatus{Name: name, Generation: 1, State: state}}
	return env
}

func TestWorkloadStatusesReachTheWorkloadSideOnce(t *testing.T) {
	f := newFixture(t)
	wl := &workloadSide{}
	f.in.wl, f.in.logs = wl, wl
	if err := f.send(t, envelope("n1", t0, &pb.Hello{OutboxId: "ob", AppliedGeneration: 4})); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello n1 4"}, wl.take()); diff != "" {
		t.Errorf("after hello (-want +got):\n%s", diff)
	}

	run := statusEnv(1, "web", pb.WorkloadStatus_STATE_RUNNING)
	if err := f.send(t, run); err != nil {
		t.Fatal(err)
	}
	// A duplicate is acknowledged again but not handed over again.
	if err := f.send(t, run); err != nil {
		t.Fatal(err)
	}
	// In a batch, in sequence order, skipping what was applied.
	batch := batchOf(statusEnv(3, "db", pb.WorkloadStatus_STATE_STARTING), run, statusEnv(2, "web", pb.WorkloadStatus_STATE_EXITED))
	if err := f.send(t, batch); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"status n1 ob/1 web STATE_RUNNING",
		"status n1 ob/2 web STATE_EXITED",
		"status n1 ob/3 db STATE_STARTING",
	}
	if diff := cmp.Diff(want, wl.take()); diff != "" {
		t.Errorf("statuses handed over (-want +got):\n%s", diff)
	}
	if n := f.node(t, "n1"); n.Counters.Duplicates != 2 || n.Counters.Applied != 3 {
		t.Errorf("counters %+v, want 3 applied and 2 duplicates", n.Counters)
	}
}

func TestStatusThatCannotBeStoredIsNotAcknowledged(t *testing.T) {
	f := newFixture(t)
	wl := &workloadSide{failNext: errors.New("disk full")}
	f.in.wl = wl
	st := statusEnv(1, "web", pb.WorkloadStatus_STATE_RUNNING)
	err := f.send(t, st)
	if protocol.ReasonOf(err) != ReasonUnavailable {
		t.Fatalf("Message(status) with a failing store = %v, want reason %s", err, ReasonUnavailable)
	}
	if n := f.node(t, "n1"); n.Applied.Watermark != 0 {
		t.Fatalf("watermark %d after a failed store, want 0", n.Applied.Watermark)
	}
	// The node sends it again; now it is stored and applied.
	if err := f.send(t, st); err != nil {
		t.Fatal(err)
	}
	// The node came online with that message (its hello was missed).
	if diff := cmp.Diff([]string{"status n1 /1 web STATE_RUNNING", "link n1"}, wl.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if err := f.reg.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := f.node(t, "n1"); n.Applied.Watermark != 1 {
		t.Errorf("watermark = %d, want 1", n.Applied.Watermark)
	}
}

func TestDesiredAcksLogsAndWelcome(t *testing.T) {
	f := newFixture(t)
	wl := &workloadSide{gen: 9}
	f.in.wl, f.in.logs = wl, wl
	f.in.Connected("n1")
	ack := envelope("n1", t0, nil)
	ack.Body = &pb.Envelope_DesiredAck{DesiredAck: &pb.DesiredAck{Generation: 7}}
	logs := envelope("n1", t0, nil)
	logs.Body = &pb.Envelope_LogsResponse{LogsResponse: &pb.LogsResponse{RequestId: "r1"}}
	for _, env := range []*pb.Envelope{ack, logs} {
		if err := f.send(t, env); err != nil {
			t.Fatalf("Message(%s) = %v", protocol.BodyName(env), err)
		}
	}
	f.in.Disconnected("n1", "connection_lost")
	want := []string{"link n1", "ack n1 7", "logs n1 r1", "link n1"}
	if diff := cmp.Diff(want, wl.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	if err := f.send(t, envelope("n1", t0, &pb.Hello{OutboxId: "ob"})); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.Flush(); err != nil {
		t.Fatal(err)
	}
	downs := f.downs(t, "n1", 0)
	if len(downs) == 0 || downs[len(downs)-1].GetWelcome().GetDesiredGeneration() != 9 {
		t.Errorf("welcome = %v, want desired_generation 9", downs)
	}
}
