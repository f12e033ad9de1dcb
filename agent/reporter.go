package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// reporter samples the node every interval and publishes the report.
//
// While the link is down a report is dropped and counted: nothing keeps
// it yet. The durable outbox (next step) will implement Publisher and
// keep every report until the cloud acknowledges it, without any change
// here.
type reporter struct {
	src      Source
	pub      Publisher
	stamper  *stamp.Stamper
	clock    clock.Clock
	interval time.Duration
	log      *slog.Logger
	// sentHello returns the Hello the cloud last received (nil before the
	// first); reports leave out the static quantities it already carries.
	sentHello func() *pb.Hello

	// last is the latest full sample, whose static quantities the next
	// Hello carries.
	last atomic.Pointer[pb.ResourceReport]

	sent, dropped, failed, sampleErrors atomic.Uint64

	mu     sync.Mutex // guards the fields below
	errMsg string
	errAt  time.Time
}

// Run reports until ctx is done. The first sample only primes the rate
// counters, so every published report carries CPU and network rates.
func (r *reporter) Run(ctx context.Context) error {
	var s reportState
	if rep, err := r.src.Sample(ctx, r.clock.Now()); err != nil && ctx.Err() == nil {
		r.sampleErrors.Add(1)
		r.logFailure(&s, "sample failed", err)
	} else if err == nil {
		r.last.Store(rep)
	}
	t := r.clock.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C():
			r.report(ctx, now, &s)
		}
	}
}

// reportState is what the reporter remembers between ticks, to log state
// changes rather than every report.
type reportState struct {
	offline    bool   // reports are being dropped because the link is down
	droppedRun uint64 // dropped since the link went down
	lastErr    string // last sample or publish error logged
}

func (r *reporter) report(ctx context.Context, now time.Time, s *reportState) {
	rep, err := r.src.Sample(ctx, now)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		r.sampleErrors.Add(1)
		r.logFailure(s, "sample failed", err)
		return
	}
	r.last.Store(proto.Clone(rep).(*pb.ResourceReport))
	if r.sentHello != nil {
		protocol.CompactReport(rep, r.sentHello())
	}
	env := r.stamper.Stamp(&pb.Envelope{SentAtMs: now.UnixMilli(), Body: &pb.Envelope_Report{Report: rep}})
	// A report older than the next one is worth little: bound the wait
	// for the broker by the interval.
	pctx, cancel := context.WithTimeout(ctx, r.interval)
	err = r.pub.Publish(pctx, env)
	cancel()
	switch {
	case err == nil:
		r.sent.Add(1)
		if s.offline {
			r.log.Info("reports resumed", "dropped_while_offline", s.droppedRun)
			s.offline, s.droppedRun = false, 0
		}
		s.lastErr = ""
	case errors.Is(err, ErrNotConnected):
		r.dropped.Add(1)
		s.droppedRun++
		if !s.offline {
			r.log.Info("link down: dropping resource reports until it is back")
			s.offline = true
		}
	case ctx.Err() != nil:
	default:
		r.dropped.Add(1)
		r.failed.Add(1)
		r.logFailure(s, "report not published", err)
	}
}

// logFailure logs err unless it repeats the last one.
func (r *reporter) logFailure(s *reportState, msg string, err error) {
	r.noteError(err)
	if e := err.Error(); e != s.lastErr {
		s.lastErr = e
		r.log.Warn(msg, "error", err)
	}
}

func (r *reporter) noteError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errMsg, r.errAt = err.Error(), r.clock.Now()
}

func (r *reporter) lastError() (string, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errMsg, r.errAt
}
