package drain

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/faultyq"
	"github.com/skyedge/skyedge/sync/outbox/memq"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSender records what is sent and fails while err is set.
type fakeSender struct {
	mu    sync.Mutex // guards the fields below
	sent  []sent
	err   error
	fails int
}

type sent struct {
	payload []byte
	stream  string
	at      time.Time
}

type senderClock interface{ Now() time.Time }

func (f *fakeSender) send(clk senderClock) Sender {
	return SenderFunc(func(_ context.Context, p []byte, stream string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.err != nil {
			f.fails++
			return f.err
		}
		f.sent = append(f.sent, sent{payload: bytes.Clone(p), stream: stream, at: clk.Now()})
		return nil
	})
}

func (f *fakeSender) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeSender) messages() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

// seqs flattens the sent messages into envelope seqs, in send order.
func seqsOf(t *testing.T, msgs []sent) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range msgs {
		env, err := protocol.Decode(m.payload)
		if err != nil {
			t.Fatalf("sent payload does not decode: %v", err)
		}
		if want := protocol.StreamOf(env); want != m.stream {
			t.Errorf("a %s sent on stream %q, want %q", protocol.BodyName(env), m.stream, want)
		}
		if b := env.GetBatch(); b != nil {
			for _, e := range b.GetEnvelopes() {
				out = append(out, e.GetSeq())
			}
			continue
		}
		out = append(out, env.GetSeq())
	}
	return out
}

type harness struct {
	t      *testing.T
	clk    *clock.Fake
	q      outbox.Queue
	fq     *faultyq.Queue
	sender *fakeSender
	d      *Drainer
}

// newHarness drains a memory queue through a fake sender on a fake clock;
// mutate adjusts the drainer's config.
func newHarness(t *testing.T, mutate func(*Config)) *harness {
	clk := clock.NewFake(outboxtest.Start)
	q, err := memq.Open(outboxtest.Config(t, clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	h := &harness{t: t, clk: clk, q: q, fq: faultyq.New(q), sender: &fakeSender{}}
	cfg := DefaultConfig()
	cfg.NodeID = outboxtest.NodeID
	cfg.Profile = Unlimited
	cfg.Clock = clk
	cfg.Logger = outboxtest.TestLogger(t)
	cfg.Rand = func() float64 { return 0 }
	if mutate != nil {
		mutate(&cfg)
	}
	h.d, err = New(h.fq, h.sender.send(clk), cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	})
	return h
}

func (h *harness) appendReports(n int) []uint64 {
	var seqs []uint64
	for i := range n {
		seq, err := h.q.Append(context.Background(), outboxtest.Report(h.clk.Now(), i))
		if err != nil {
			h.t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	h.d.Kick()
	return seqs
}

// eventually advances the clock by step until cond holds.
func (h *harness) eventually(what string, step time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting until %s (sent %d messages, stats %+v)", what, len(h.sender.messages()), h.d.Stats())
		}
		h.clk.Advance(step)
		time.Sleep(time.Millisecond) // let Run take its turn
	}
}

// settle lets Run go idle without advancing the fake clock: it processes
// the wake-up from the last call and blocks on its timers.
func (h *harness) settle() {
	for range 20 {
		h.d.Kick()
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) sentCount() int { return len(h.sender.messages()) }

func TestResumeStartsFromWatermark(t *testing.T) {
	h := newHarness(t, nil)
	h.appendReports(10)
	h.d.Resume(&pb.Welcome{Watermark: 4, Applied: []*pb.SeqRange{{First: 7, Last: 8}}})
	h.eventually("the rest is sent", time.Millisecond, func() bool { return len(seqsOf(t, h.sender.messages())) >= 4 })
	if diff := cmp.Diff([]uint64{5, 6, 9, 10}, seqsOf(t, h.sender.messages())); diff != "" {
		t.Errorf("sent after Resume (-want +got):\n%s", diff)
	}
	if st := h.q.State(); st.Classes[outbox.Telemetry].Count != 4 || st.FirstSeq != 5 {
		t.Errorf("queue after Resume = %d items from %d, want the 4 unapplied from 5", st.Classes[outbox.Telemetry].Count, st.FirstSeq)
	}
}

func TestDrainOrderAndBatches(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBatchEnvelopes = 4; c.MaxInFlight = 100 })
	var control, events, reports []uint64
	for i := range 30 {
		var env *pb.Envelope
		switch i % 5 {
		case 0:
			env = outboxtest.Event(h.clk.Now(), "alarm", true)
		case 1, 2:
			env = outboxtest.Event(h.clk.Now(), "e", false)
		default:
			env = outboxtest.Report(h.clk.Now(), i)
		}
		seq, err := h.q.Append(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		switch c, _ := outbox.ClassOf(env); c {
		case outbox.Control:
			control = append(control, seq)
		case outbox.Event:
			events = append(events, seq)
		default:
			reports = append(reports, seq)
		}
	}
	h.d.Resume(&pb.Welcome{})
	h.eventually("everything is sent", time.Millisecond, func() bool { return len(seqsOf(t, h.sender.messages())) >= 30 })
	want := append(append(control, events...), reports...)
	if diff := cmp.Diff(want, seqsOf(t, h.sender.messages())); diff != "" {
		t.Errorf("send order (-want +got):\n%s", diff)
	}
	msgs := h.sender.messages()
	if len(msgs) != 8 {
		t.Errorf("sent %d messages, want 8 (30 envelopes, 4 per batch)", len(msgs))
	}
	for _, m := range msgs {
		if len(m.payload) > protocol.MaxPayload {
			t.Errorf("message of %d bytes over the limit", len(m.payload))
		}
	}
}

func TestAcksAndInFlightBound(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBatchEnvelopes = 3; c.MaxInFlight = 2 })
	h.appendReports(20)
	h.d.Resume(&pb.Welcome{})
	h.eventually("two batches are in flight", time.Millisecond, func() bool { return h.sentCount() >= 2 })
	h.clk.Advance(10 * time.Second) // well inside the ack timeout
	h.settle()
	if n := h.sentCount(); n != 2 {
		t.Fatalf("sent %d batches without acks, want MaxInFlight 2", n)
	}
	h.d.HandleAck(&pb.Ack{Cumulative: 3})
	h.eventually("a third batch", time.Millisecond, func() bool { return h.sentCount() >= 3 })
	h.settle()
	if n := h.sentCount(); n != 3 {
		t.Errorf("after acking one batch %d were sent, want 3", n)
	}
	if st := h.q.State(); st.FirstSeq != 4 {
		t.Errorf("queue starts at %d after Ack(3), want 4", st.FirstSeq)
	}
	// A range ack settles the batch it covers.
	h.d.HandleAck(&pb.Ack{Cumulative: 3, Ranges: []*pb.SeqRange{{First: 7, Last: 9}}})
	h.eventually("a fourth batch", time.Millisecond, func() bool { return h.sentCount() >= 4 })
	if s := h.d.Stats(); s.Batches != 4 || s.Envelopes != 12 || s.Acked < 2 {
		t.Errorf("Stats() = %+v, want 4 batches of 12 envelopes and the acks applied", s)
	}
}

func TestResendAfterAckTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AckTimeout = 10 * time.Second })
	h.appendReports(1)
	h.d.Resume(&pb.Welcome{})
	h.eventually("the first send", time.Millisecond, func() bool { return h.sentCount() >= 1 })
	first := h.clk.Now()
	h.eventually("a resend", time.Second, func() bool { return h.sentCount() >= 2 })
	h.eventually("a second resend", time.Second, func() bool { return h.sentCount() >= 3 })
	msgs := h.sender.messages()
	if !bytes.Equal(msgs[0].payload, msgs[1].payload) || !bytes.Equal(msgs[0].payload, msgs[2].payload) {
		t.Errorf("resends differ from the original message")
	}
	if gap := msgs[1].at.Sub(first); gap < 10*time.Second {
		t.Errorf("resent %v after the first send, want at least the 10 s ack timeout", gap)
	}
	if gap := msgs[2].at.Sub(msgs[1].at); gap < 20*time.Second {
		t.Errorf("second resend %v after the first, want the timeout doubled", gap)
	}
	if s := h.d.Stats(); s.Resends != 2 {
		t.Errorf("Stats().Resends = %d, want 2", s.Resends)
	}
	h.d.HandleAck(&pb.Ack{Cumulative: 1})
	h.eventually("the ack settles it", time.Millisecond, func() bool { return h.d.Stats().InFlight == 0 })
	h.clk.Advance(10 * time.Minute)
	h.settle()
	if n := h.sentCount(); n != 3 {
		t.Errorf("sent %d messages after the ack, want no more than 3", n)
	}
}

func TestPacing(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Profile = Profile{MsgsPerSec: 10}
		c.MaxBatchEnvelopes = 1
		c.MaxInFlight = 1000
	})
	h.appendReports(50)
	h.d.Resume(&pb.Welcome{})
	h.eventually("all sent", 100*time.Millisecond, func() bool { return h.sentCount() >= 50 })
	msgs := h.sender.messages()
	for i, m := range msgs {
		// A burst of 10, then 10 a second.
		elapsed := m.at.Sub(outboxtest.Start).Seconds()
		if limit := 10 + 10*elapsed; float64(i+1) > limit+0.001 {
			t.Fatalf("message %d sent at +%.1fs, over 10 + 10/s", i+1, elapsed)
		}
	}
	if last := msgs[len(msgs)-1].at.Sub(outboxtest.Start); last < 4*time.Second {
		t.Errorf("50 messages at 10/s took %v, want at least 4 s", last)
	}
}

func TestPacingBytes(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Profile = Profile{BytesPerSec: 128 << 10}
		c.MaxBatchEnvelopes = 1
		c.MaxInFlight = 1000
	})
	big := strings.Repeat("x", 2000)
	for range 200 {
		env := outboxtest.Event(h.clk.Now(), "e", false)
		env.GetEvent().Message = big
		if _, err := h.q.Append(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	h.d.Resume(&pb.Welcome{})
	h.eventually("all sent", 100*time.Millisecond, func() bool { return h.sentCount() >= 200 })
	total := 0
	for _, m := range h.sender.messages() {
		total += len(m.payload)
		elapsed := m.at.Sub(outboxtest.Start).Seconds()
		if limit := float64(128<<10) * (1 + elapsed); float64(total) > limit {
			t.Fatalf("%d bytes sent by +%.1fs, over a 128 KiB burst plus 128 KiB/s", total, elapsed)
		}
	}
}

func TestResumeJitter(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.ResumeJitter = 10 * time.Second
		c.Rand = func() float64 { return 0.5 }
	})
	h.appendReports(3)
	h.d.Resume(&pb.Welcome{})
	h.eventually("the first send", 100*time.Millisecond, func() bool { return h.sentCount() >= 1 })
	if at := h.sender.messages()[0].at.Sub(outboxtest.Start); at < 5*time.Second {
		t.Errorf("first send %v after Resume, want at least the 5 s drawn for the jitter", at)
	}
}

func TestPauseAndResume(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBatchEnvelopes = 2 })
	seqs := h.appendReports(4)
	h.d.Resume(&pb.Welcome{})
	h.eventually("sending", time.Millisecond, func() bool { return h.sentCount() >= 2 })
	h.d.Pause()
	h.settle()
	sentBefore := h.sentCount()
	h.clk.Advance(time.Hour) // far past any ack timeout
	h.settle()
	if n := h.sentCount(); n != sentBefore {
		t.Fatalf("sent %d messages while paused", n-sentBefore)
	}
	// The cloud applied the first batch before the link dropped.
	h.d.Resume(&pb.Welcome{Watermark: 2})
	h.eventually("the rest is resent", time.Millisecond, func() bool { return h.sentCount() >= sentBefore+1 })
	h.settle()
	if diff := cmp.Diff(seqs[2:], seqsOf(t, h.sender.messages()[sentBefore:])); diff != "" {
		t.Errorf("sent after reconnecting (-want +got):\n%s", diff)
	}
}

var errLink = errors.New("not connected")

func TestErrorsAreRetriedWithoutLoss(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBatchEnvelopes = 5 })
	seqs := h.appendReports(20)
	h.fq.FailNext(faultyq.OpPending, errLink, 2)
	h.sender.setErr(errLink)
	h.d.Resume(&pb.Welcome{})
	h.eventually("sends are tried", 100*time.Millisecond, func() bool {
		h.sender.mu.Lock()
		defer h.sender.mu.Unlock()
		return h.sender.fails >= 3
	})
	h.sender.setErr(nil)
	h.eventually("everything is sent", 100*time.Millisecond, func() bool { return len(seqsOf(t, h.sender.messages())) >= 20 })
	if diff := cmp.Diff(seqs, seqsOf(t, h.sender.messages())); diff != "" {
		t.Errorf("sent after failures (-want +got):\n%s", diff)
	}
	// A failed ack is retried: nothing is deleted until it lands.
	h.fq.FailNext(faultyq.OpAck, errLink, 1)
	h.d.HandleAck(&pb.Ack{Cumulative: 20})
	h.eventually("the ack lands", 100*time.Millisecond, func() bool { return h.q.State().LastSeq == 0 })
	if calls, failed := h.fq.Calls(faultyq.OpAck); calls < 2 || failed != 1 {
		t.Errorf("Calls(ack) = %d, %d failed; want a retry after the failure", calls, failed)
	}
	if s := h.d.Stats(); s.Errors < 5 {
		t.Errorf("Stats().Errors = %d, want the 2 reads, 3 sends and the ack counted", s.Errors)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"bad node", func(c *Config) { c.NodeID = "" }, false},
		{"negative rate", func(c *Config) { c.Profile.MsgsPerSec = -1 }, false},
		{"nothing in flight", func(c *Config) { c.MaxInFlight = 0 }, false},
		{"no ack timeout", func(c *Config) { c.AckTimeout = 0 }, false},
		{"negative jitter", func(c *Config) { c.ResumeJitter = -time.Second }, false},
		{"batches over the payload limit", func(c *Config) { c.MaxBatchBytes = protocol.MaxPayload + 1 }, false},
		{"too many envelopes", func(c *Config) { c.MaxBatchEnvelopes = protocol.MaxBatchEnvelopes + 1 }, false},
		{"retry delays reversed", func(c *Config) { c.MaxRetryDelay = time.Millisecond }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.NodeID = "node-1"
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
