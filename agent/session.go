package agent

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox"
)

// drainControl is the part of the drainer the session drives; none of its
// methods block.
type drainControl interface {
	Resume(*pb.Welcome)
	Pause()
	HandleAck(*pb.Ack)
}

// session ties the link's connection events to the drainer. The cloud
// answers each hello with a Welcome saying what it has applied; only then
// does the drain resume, from there. Acks delete what they cover; a lost
// connection pauses the drain, which forgets what was in flight and
// resends it after the next Welcome.
//
// The link reports a connection up after its hello is acknowledged by the
// broker, so the Welcome may come first: it is kept and applied when the
// connection is reported. While no Welcome comes, the agent says hello
// again every helloEvery (the cloud may have missed the first: a bridge
// behind an external broker that reconnected after the node); without a
// Welcome within the timeout the drain resumes from the start of the
// outbox, since the cloud drops what it already has; silence would be
// worse.
//
// Acks and Welcomes that name another outbox ID, or sequence numbers the
// outbox never assigned, come from another sequence space (an outbox
// recreated after corruption, a cloud that ignored the hello's outbox ID). They are ignored, counted
// and logged: deleting by them could lose messages the cloud never had.
type session struct {
	d          drainControl
	state      func() outbox.State
	clk        clock.Clock
	timeout    time.Duration
	helloEvery time.Duration
	rehello    func(ctx context.Context) error
	log        *slog.Logger
	wake       chan struct{}

	mu       sync.Mutex // guards the fields below
	up       bool       // the link reported the connection up
	resumed  bool       // the drain resumed on this connection
	early    *pb.Welcome
	deadline time.Time // when to act on a missing Welcome; zero when none is awaited
	since    time.Time // when the connection was reported up
	warned   bool      // a foreign ack or welcome was logged on this connection

	ignored, timeouts atomic.Uint64
}

// helloEvery is how often a connection without a Welcome says hello again.
const helloEvery = 5 * time.Second

func newSession(d drainControl, state func() outbox.State, clk clock.Clock, timeout time.Duration,
	rehello func(context.Context) error, log *slog.Logger) *session {
	return &session{d: d, state: state, clk: clk, timeout: timeout, helloEvery: min(helloEvery, timeout),
		rehello: rehello, log: log, wake: make(chan struct{}, 1)}
}

// Run resumes the drain of a connection whose Welcome does not come in
// time, until ctx is done.
func (s *session) Run(ctx context.Context) error {
	for {
		s.mu.Lock()
		deadline := s.deadline
		s.mu.Unlock()
		var timer <-chan time.Time
		if !deadline.IsZero() {
			d := deadline.Sub(s.clk.Now())
			if d <= 0 {
				s.expire(ctx)
				continue
			}
			timer = s.clk.After(d)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer:
			s.expire(ctx)
		}
	}
}

// expire acts on an overdue Welcome: it says hello again until the
// timeout, then resumes the drain from the start.
func (s *session) expire(ctx context.Context) {
	s.mu.Lock()
	now := s.clk.Now()
	due := s.up && !s.resumed && !s.deadline.IsZero() && !now.Before(s.deadline)
	again := due && s.rehello != nil && now.Before(s.since.Add(s.timeout))
	switch {
	case again:
		s.deadline = minTime(now.Add(s.helloEvery), s.since.Add(s.timeout))
	case due:
		s.resumed, s.deadline = true, time.Time{}
	}
	s.mu.Unlock()
	if again {
		if err := s.rehello(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("hello again failed", "error", err)
		}
		return
	}
	if !due {
		return
	}
	s.timeouts.Add(1)
	s.log.Warn("no welcome from the cloud; resending the whole outbox", "timeout", s.timeout)
	s.d.Resume(&pb.Welcome{})
}

// connected is the link's OnConnected.
func (s *session) connected() {
	s.mu.Lock()
	s.up, s.warned = true, false
	w := s.early
	s.early = nil
	s.resumed = w != nil
	s.since = s.clk.Now()
	if w == nil {
		s.deadline = s.since.Add(s.helloEvery)
	}
	s.mu.Unlock()
	if w != nil {
		s.d.Resume(w)
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// disconnected is the link's OnDisconnected.
func (s *session) disconnected() {
	s.mu.Lock()
	s.up, s.resumed, s.early, s.deadline = false, false, nil, time.Time{}
	s.mu.Unlock()
	s.d.Pause()
}

// message is the link's OnMessage.
func (s *session) message(env *pb.Envelope) {
	switch b := env.GetBody().(type) {
	case *pb.Envelope_Welcome:
		s.welcome(b.Welcome)
	case *pb.Envelope_Ack:
		if s.foreign("ack", b.Ack.GetOutboxId(), b.Ack.GetCumulative(), b.Ack.GetRanges()) {
			return
		}
		s.d.HandleAck(b.Ack)
	default:
		s.log.Debug("message from the cloud ignored", "body", protocol.BodyName(env))
	}
}

func (s *session) welcome(w *pb.Welcome) {
	if s.foreign("welcome", w.GetOutboxId(), w.GetWatermark(), w.GetApplied()) {
		// Resend everything rather than delete by it.
		w = &pb.Welcome{ServerTimeMs: w.GetServerTimeMs(), Capability: w.GetCapability()}
	}
	s.mu.Lock()
	if !s.up {
		s.early = w
		s.mu.Unlock()
		return
	}
	s.resumed, s.deadline = true, time.Time{}
	s.mu.Unlock()
	s.d.Resume(w)
}

// foreign reports whether an ack or welcome belongs to another sequence
// space: it names another outbox (a cloud older than capability 2 names
// none), or covers sequence numbers above the highest the outbox ever
// assigned. It logs the first of a connection.
func (s *session) foreign(what, outboxID string, cumulative uint64, ranges []*pb.SeqRange) bool {
	top := cumulative
	for _, r := range ranges {
		top = max(top, r.GetLast())
	}
	st := s.state()
	highest := st.NextSeq - 1
	otherOutbox := outboxID != "" && st.ID != "" && outboxID != st.ID
	if top <= highest && !otherOutbox {
		return false
	}
	s.ignored.Add(1)
	s.mu.Lock()
	first := !s.warned
	s.warned = true
	s.mu.Unlock()
	if first {
		s.log.Error("the cloud acknowledges another outbox or sequence numbers this outbox never assigned; ignoring it",
			"body", what, "acknowledged", top, "highest_assigned", highest, "outbox_id", st.ID, "acked_outbox_id", outboxID)
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
