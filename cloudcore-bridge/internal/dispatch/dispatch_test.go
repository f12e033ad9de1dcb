package dispatch

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/metrics"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// wire records the desired-state messages sent to nodes.
type wire struct {
	mu   sync.Mutex
	msgs map[string][]*pb.DesiredState
}

func (w *wire) Publish(topic string, payload []byte) error {
	t, err := protocol.ParseTopic(topic)
	if err != nil {
		return err
	}
	env, err := protocol.Decode(payload)
	if err != nil {
		return err
	}
	if env.GetNodeId() != t.Node || t.Stream != protocol.StreamDesired || env.GetDesired() == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.msgs == nil {
		w.msgs = map[string][]*pb.DesiredState{}
	}
	w.msgs[t.Node] = append(w.msgs[t.Node], env.GetDesired())
	return nil
}

// take returns and forgets what node was sent.
func (w *wire) take(node string) []*pb.DesiredState {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs[node]
	delete(w.msgs, node)
	return out
}

type fixture struct {
	st   *workloads.Store
	d    *Dispatcher
	w    *wire
	clk  *clock.Fake
	m    *metrics.Metrics
	trig int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{w: &wire{}, clk: clock.NewFake(t0), m: metrics.New()}
	f.st, err = workloads.Open(workloads.Config{DB: db, Clock: f.clk})
	if err != nil {
		t.Fatal(err)
	}
	f.d = New(Config{Store: f.st, Publisher: f.w, Metrics: f.m, Clock: f.clk, Trigger: func() { f.trig++ }})
	return f
}

// change puts (a non-empty spec) or removes (nil) names on node's set and
// tells the dispatcher, as the controller does.
func (f *fixture) change(t *testing.T, node string, puts map[string]string, removes ...string) {
	t.Helper()
	changed, err := f.st.Update(func(tx *workloads.Tx) error {
		set, err := tx.Set(node)
		if err != nil {
			return err
		}
		for name, spec := range puts {
			set.Put(name, []byte(spec))
		}
		for _, name := range removes {
			set.Remove(name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.d.Changed(changed)
}

func names(m *pb.DesiredState) (put, removed []string) {
	for _, a := range m.GetAssignments() {
		put = append(put, a.GetName())
	}
	return put, m.GetRemoved()
}

func TestHelloWithNothingGetsTheFullSet(t *testing.T) {
	f := newFixture(t)
	f.change(t, "n1", map[string]string{"a": `{"runtime":"exec"}`})
	f.change(t, "n1", map[string]string{"b": `{"runtime":"exec"}`})
	f.w.take("n1")
	f.d.Hello("n1", 0)
	msgs := f.w.take("n1")
	if len(msgs) != 1 || !msgs[0].GetFull() || msgs[0].GetGeneration() != 2 {
		t.Fatalf("after hello(0): %v, want one full message at generation 2", msgs)
	}
	if put, _ := names(msgs[0]); !cmp.Equal(put, []string{"a", "b"}) {
		t.Errorf("full set carries %v, want [a b]", put)
	}
	if f.d.Generation("n1") != 2 {
		t.Errorf("Generation = %d, want 2", f.d.Generation("n1"))
	}
	// A hello at the set's generation gets nothing.
	f.d.Hello("n1", 2)
	if msgs := f.w.take("n1"); len(msgs) != 0 {
		t.Errorf("hello at the current generation was sent %v", msgs)
	}
}

func TestAckThenChangeSendsOnlyTheChange(t *testing.T) {
	f := newFixture(t)
	f.change(t, "n1", map[string]string{"a": `{"x":1}`, "b": `{"x":2}`})
	f.w.take("n1")
	f.d.DesiredAck("n1", 2)
	f.change(t, "n1", map[string]string{"c": `{"x":3}`}, "a")
	msgs := f.w.take("n1")
	if len(msgs) != 1 || msgs[0].GetFull() || msgs[0].GetBaseGeneration() != 2 || msgs[0].GetGeneration() != 4 {
		t.Fatalf("after the change: %v, want one diff (2, 4]", msgs)
	}
	put, removed := names(msgs[0])
	if !cmp.Equal(put, []string{"c"}) || !cmp.Equal(removed, []string{"a"}) {
		t.Errorf("diff puts %v and removes %v, want [c] and [a]", put, removed)
	}
}

func TestLostAckResendsTheSameDiff(t *testing.T) {
	f := newFixture(t)
	f.change(t, "n1", map[string]string{"a": `{"x":1}`})
	f.d.DesiredAck("n1", 1)
	f.w.take("n1")
	f.change(t, "n1", map[string]string{"b": `{"x":2}`})
	first := f.w.take("n1")
	if len(first) != 1 {
		t.Fatalf("sent %v, want one diff", first)
	}
	// No ack arrives. Nothing is resent before ResendAfter...
	f.clk.Advance(DefaultResendAfter / 2)
	f.d.Resend()
	if msgs := f.w.take("n1"); len(msgs) != 0 {
		t.Fatalf("resent %v before ResendAfter", msgs)
	}
	// ...then the same diff again, and again.
	for range 2 {
		f.clk.Advance(DefaultResendAfter)
		f.d.Resend()
		again := f.w.take("n1")
		if diff := cmp.Diff(first, again, protocmp.Transform()); diff != "" {
			t.Fatalf("resend differs (-first +again):\n%s", diff)
		}
	}
	// The ack stops the resends.
	f.d.DesiredAck("n1", 2)
	f.clk.Advance(DefaultResendAfter)
	f.d.Resend()
	if msgs := f.w.take("n1"); len(msgs) != 0 {
		t.Errorf("resent %v after the ack", msgs)
	}
}

func TestTombstonesCompactedAfterAck(t *testing.T) {
	f := newFixture(t)
	f.change(t, "n1", map[string]string{"a": `{"x":1}`, "b": `{"x":2}`})
	f.d.DesiredAck("n1", 2)
	f.change(t, "n1", nil, "a") // generation 3: tombstone of a
	f.w.take("n1")
	// Before the ack, a node at 2 is sent the removal.
	if msgs := f.st.Diff("n1", 2, MaxMessage); len(msgs) != 1 || !cmp.Equal(msgs[0].GetRemoved(), []string{"a"}) {
		t.Fatalf("Diff(2) = %v, want the removal of a", msgs)
	}
	f.d.DesiredAck("n1", 3)
	// The tombstone is gone: a node claiming 2 now gets the full set.
	f.d.Hello("n1", 2)
	msgs := f.w.take("n1")
	if len(msgs) != 1 || !msgs[0].GetFull() {
		t.Fatalf("hello(2) after compaction: %v, want the full set", msgs)
	}
	if put, _ := names(msgs[0]); !cmp.Equal(put, []string{"b"}) {
		t.Errorf("full set carries %v, want [b]", put)
	}
}

func TestUnknownNodeGetsNothing(t *testing.T) {
	f := newFixture(t)
	f.d.Hello("stranger", 0)
	f.d.Hello("stranger", 7)
	f.d.DesiredAck("stranger", 3)
	if msgs := f.w.take("stranger"); len(msgs) != 0 {
		t.Errorf("unknown node was sent %v", msgs)
	}
	if f.d.Generation("stranger") != 0 {
		t.Errorf("Generation(stranger) = %d, want 0", f.d.Generation("stranger"))
	}
}

func TestOfflineNodesAreNotSent(t *testing.T) {
	f := newFixture(t)
	online := false
	f.d.cfg.Online = func(string) bool { return online }
	f.change(t, "n1", map[string]string{"a": `{"x":1}`})
	f.clk.Advance(DefaultResendAfter)
	f.d.Resend()
	if msgs := f.w.take("n1"); len(msgs) != 0 {
		t.Fatalf("offline node was sent %v", msgs)
	}
	online = true
	f.d.Hello("n1", 0)
	if msgs := f.w.take("n1"); len(msgs) != 1 {
		t.Errorf("hello of the returning node: %v, want its set", msgs)
	}
}

func TestOrphanGetsTheWholeSet(t *testing.T) {
	f := newFixture(t)
	f.change(t, "n1", map[string]string{"a": `{"x":1}`})
	f.d.DesiredAck("n1", 1)
	f.w.take("n1")
	st := &pb.WorkloadStatus{Name: "ghost", Generation: 1, State: pb.WorkloadStatus_STATE_RUNNING}
	if err := f.d.Status("n1", "ob", 1, st, t0); err != nil {
		t.Fatal(err)
	}
	msgs := f.w.take("n1")
	if len(msgs) != 1 || !msgs[0].GetFull() {
		t.Fatalf("after an orphan status: %v, want the full set", msgs)
	}
	if put, _ := names(msgs[0]); !cmp.Equal(put, []string{"a"}) {
		t.Errorf("full set carries %v, want [a]", put)
	}
	// A node without any set is cleared with an empty full set.
	if err := f.d.Status("n9", "ob", 1, proto.Clone(st).(*pb.WorkloadStatus), t0); err != nil {
		t.Fatal(err)
	}
	msgs = f.w.take("n9")
	if len(msgs) != 1 || !msgs[0].GetFull() || len(msgs[0].GetAssignments()) != 0 {
		t.Errorf("orphan on a node without a set: %v, want an empty full set", msgs)
	}
	if got := counter(t, f.m.Orphans); got != 2 {
		t.Errorf("orphans counted = %v, want 2", got)
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
