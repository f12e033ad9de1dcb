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
	"github.com/skyedge/skyedge/sync/outbox"
)

// reporter samples the node every interval and queues the report in the
// durable outbox, which keeps it until the cloud acknowledges it, online
// or not. A report is lost only when the outbox refuses it (its disk
// guard) or the append fails; both are counted and logged once per run
// of failures.
type reporter struct {
	src Source
	// publish appends an envelope to the outbox and returns its sequence
	// number (set when the report was stored, even with an error).
	publish  func(ctx context.Context, env *pb.Envelope) (uint64, error)
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

	queued, refused, failed, sampleErrors atomic.Uint64

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
	lost    uint64 // reports lost since the last one queued
	lastErr string // last sample or queue error logged
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
	// The outbox is local: an append takes milliseconds, but a stalled
	// disk must not hold the reporter past its next tick.
	actx, cancel := context.WithTimeout(ctx, r.interval)
	seq, err := r.publish(actx, env)
	cancel()
	switch {
	case seq != 0:
		r.queued.Add(1)
		if s.lost > 0 {
			r.log.Info("reports queued again", "lost", s.lost)
			s.lost = 0
		}
		if err != nil {
			// Stored, but its sync failed: a power cut may take it.
			r.logFailure(s, "report queued but not synced", err)
		} else {
			s.lastErr = ""
		}
	case ctx.Err() != nil:
	case errors.Is(err, outbox.ErrFull):
		r.refused.Add(1)
		s.lost++
		r.logFailure(s, "report refused by the outbox", err)
	default:
		r.failed.Add(1)
		s.lost++
		r.logFailure(s, "report not queued", err)
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
