package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/agent/internal/logtest"
	"github.com/skyedge/skyedge/internal/clock"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox"
)

// fakeDrain records what the session tells the drainer.
type fakeDrain struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeDrain) note(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeDrain) Resume(w *pb.Welcome) {
	f.note(fmt.Sprintf("resume %d%s", w.GetWatermark(), seqRanges(w.GetApplied())))
}

func (f *fakeDrain) Pause() { f.note("pause") }

func (f *fakeDrain) HandleAck(a *pb.Ack) {
	f.note(fmt.Sprintf("ack %d%s", a.GetCumulative(), seqRanges(a.GetRanges())))
}

func seqRanges(rs []*pb.SeqRange) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, " %d-%d", r.GetFirst(), r.GetLast())
	}
	return b.String()
}

func (f *fakeDrain) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type sessionHarness struct {
	s      *session
	d      *fakeDrain
	clk    *clock.Fake
	logs   *logtest.Recorder
	hellos atomic.Int32 // hellos said again while waiting for a Welcome
}

func (h *sessionHarness) rehello(context.Context) error {
	h.hellos.Add(1)
	return nil
}

// newSessionHarness runs a session whose outbox has assigned up to
// highest, with a 1-minute welcome timeout on a fake clock.
func newSessionHarness(t *testing.T, highest uint64) *sessionHarness {
	h := &sessionHarness{d: &fakeDrain{}, clk: clock.NewFake(time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)), logs: logtest.New(t)}
	state := func() outbox.State { return outbox.State{NextSeq: highest + 1, ID: "0123456789abcdef"} }
	h.s = newSession(h.d, state, h.clk, time.Minute, h.rehello, h.logs.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v after cancel, want nil", err)
		}
	})
	return h
}

func welcomeEnv(watermark uint64, ranges ...*pb.SeqRange) *pb.Envelope {
	return &pb.Envelope{Body: &pb.Envelope_Welcome{Welcome: &pb.Welcome{Watermark: watermark, Applied: ranges}}}
}

func ackEnv(cumulative uint64, ranges ...*pb.SeqRange) *pb.Envelope {
	return &pb.Envelope{Body: &pb.Envelope_Ack{Ack: &pb.Ack{Cumulative: cumulative, Ranges: ranges}}}
}

func TestSessionWelcome(t *testing.T) {
	tests := []struct {
		name string
		run  func(h *sessionHarness)
		want []string
	}{
		{
			name: "welcome after connect",
			run: func(h *sessionHarness) {
				h.s.connected()
				h.s.message(welcomeEnv(5))
			},
			want: []string{"resume 5"},
		},
		{
			name: "welcome before the link reports the connection",
			run: func(h *sessionHarness) {
				h.s.message(welcomeEnv(5))
				h.s.connected()
			},
			want: []string{"resume 5"},
		},
		{
			name: "a lost connection pauses",
			run: func(h *sessionHarness) {
				h.s.connected()
				h.s.message(welcomeEnv(5))
				h.s.disconnected()
			},
			want: []string{"resume 5", "pause"},
		},
		{
			name: "a lost connection forgets an early welcome",
			run: func(h *sessionHarness) {
				h.s.message(welcomeEnv(5))
				h.s.disconnected()
				h.s.connected()
			},
			want: []string{"pause"},
		},
		{
			name: "acks pass through",
			run: func(h *sessionHarness) {
				h.s.message(ackEnv(7, &pb.SeqRange{First: 9, Last: 10}))
			},
			want: []string{"ack 7 9-10"},
		},
		{
			name: "an ack beyond the outbox is ignored",
			run: func(h *sessionHarness) {
				h.s.message(ackEnv(11))
				h.s.message(ackEnv(3, &pb.SeqRange{First: 8, Last: 12}))
				h.s.message(ackEnv(10))
			},
			want: []string{"ack 10"},
		},
		{
			name: "an ack for another outbox is ignored",
			run: func(h *sessionHarness) {
				h.s.message(&pb.Envelope{Body: &pb.Envelope_Ack{Ack: &pb.Ack{Cumulative: 4, OutboxId: "fedcba9876543210"}}})
				h.s.message(&pb.Envelope{Body: &pb.Envelope_Ack{Ack: &pb.Ack{Cumulative: 5, OutboxId: "0123456789abcdef"}}})
			},
			want: []string{"ack 5"},
		},
		{
			name: "a welcome for another outbox resends everything",
			run: func(h *sessionHarness) {
				h.s.connected()
				h.s.message(&pb.Envelope{Body: &pb.Envelope_Welcome{Welcome: &pb.Welcome{Watermark: 4, OutboxId: "fedcba9876543210"}}})
			},
			want: []string{"resume 0"},
		},
		{
			name: "a welcome beyond the outbox resends everything",
			run: func(h *sessionHarness) {
				h.s.connected()
				h.s.message(welcomeEnv(500))
			},
			want: []string{"resume 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSessionHarness(t, 10)
			tt.run(h)
			if diff := cmp.Diff(tt.want, h.d.got()); diff != "" {
				t.Errorf("drainer calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSessionForeignAckLoggedOncePerConnection(t *testing.T) {
	h := newSessionHarness(t, 10)
	h.s.connected()
	for range 3 {
		h.s.message(ackEnv(99))
	}
	if n := h.s.ignored.Load(); n != 3 {
		t.Errorf("ignored = %d, want 3", n)
	}
	msg := "the cloud acknowledges another outbox or sequence numbers this outbox never assigned; ignoring it"
	if n := h.logs.Count(msg); n != 1 {
		t.Errorf("logged %q %d times, want once", msg, n)
	}
}

// TestSessionWelcomeTimeout checks that a connection without a Welcome
// resumes the drain from the start once the timeout passes on the clock,
// and not before.
func TestSessionWelcomeTimeout(t *testing.T) {
	h := newSessionHarness(t, 10)
	h.s.connected()
	// Before giving up it says hello again: the cloud may have missed it.
	// The fake clock does not wait for the session's goroutine, so step it
	// until the hello, staying before the timeout.
	var advanced time.Duration
	brokertest.WaitFor(t, 30*time.Second, "a hello said again before the welcome timeout", func() bool {
		if h.hellos.Load() > 0 {
			return true
		}
		if advanced < 55*time.Second {
			h.clk.Advance(time.Second)
			advanced += time.Second
		}
		return false
	})
	h.clk.Advance(59*time.Second - advanced)
	if calls := h.d.got(); len(calls) != 0 {
		t.Fatalf("drainer calls before the timeout = %v, want none", calls)
	}
	brokertest.WaitFor(t, 30*time.Second, "the resume after the welcome timeout", func() bool {
		h.clk.Advance(time.Second)
		return len(h.d.got()) > 0
	})
	if diff := cmp.Diff([]string{"resume 0"}, h.d.got()); diff != "" {
		t.Errorf("drainer calls (-want +got):\n%s", diff)
	}
	// A late welcome still resumes from where the cloud stands.
	h.s.message(welcomeEnv(4))
	if got := h.d.got(); len(got) != 2 || got[1] != "resume 4" {
		t.Errorf("drainer calls after a late welcome = %v, want a second resume from 4", got)
	}
	if n := h.s.timeouts.Load(); n != 1 {
		t.Errorf("timeouts = %d, want 1", n)
	}

	// A welcome in time disarms the timeout.
	h.s.disconnected()
	h.s.connected()
	h.s.message(welcomeEnv(6))
	h.clk.Advance(2 * time.Minute)
	brokertest.WaitFor(t, 30*time.Second, "the session to settle", func() bool { return len(h.d.got()) == 4 })
	if n := h.s.timeouts.Load(); n != 1 {
		t.Errorf("timeouts after a welcome in time = %d, want still 1", n)
	}
}
