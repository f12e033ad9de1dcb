package drain

import (
	"context"
	"log/slog"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"
)

// state is Run's own; nothing else touches it.
type state struct {
	up         bool
	resumeAt   time.Time
	cursor     outbox.Cursor
	inflight   []*flight
	next       *flight // read from the queue, waiting for tokens or a retry
	ack        *acks.Set
	ackRetryAt time.Time
	retryAt    time.Time
	retryDelay time.Duration
	pacer      pacer
}

// flight is one message and the sequence numbers still awaiting an ack.
type flight struct {
	payload  []byte
	stream   string
	seqs     []uint64
	envs     int
	after    outbox.Cursor // the cursor once this message is sent
	deadline time.Time
	attempts int
}

// idle is how long Run sleeps when nothing is due.
const idle = time.Hour

func (d *Drainer) takeMailbox(st *state) {
	d.mu.Lock()
	link, a := d.link, d.ack
	d.link, d.ack = nil, nil
	d.mu.Unlock()
	if a != nil {
		if st.ack == nil {
			st.ack = a
		} else {
			st.ack.AddRange(1, a.Cumulative())
			for _, r := range a.Ranges() {
				st.ack.AddRange(r.First, r.Last)
			}
		}
	}
	if link == nil {
		return
	}
	// Either way, what was in flight is forgotten: after a reconnect the
	// queue is read again from the start, from the cloud's watermark.
	st.inflight, st.next, st.cursor = nil, nil, outbox.Cursor{}
	st.up = link.up
	if link.up {
		now := d.clk.Now()
		st.resumeAt = now.Add(time.Duration(d.cfg.Rand() * float64(d.cfg.ResumeJitter)))
		st.retryAt = time.Time{}
		st.retryDelay = d.cfg.RetryDelay
		d.log.Info("link up, resuming", "jitter", st.resumeAt.Sub(now))
	}
}

// applyAcks deletes what the cloud acknowledged and settles the flights
// it covers. It returns how long until a failed ack is retried.
func (d *Drainer) applyAcks(ctx context.Context, st *state) time.Duration {
	if st.ack == nil {
		return idle
	}
	a := st.ack
	kept := st.inflight[:0]
	for _, f := range st.inflight {
		seqs := f.seqs[:0]
		for _, s := range f.seqs {
			if !a.Contains(s) {
				seqs = append(seqs, s)
			}
		}
		if f.seqs = seqs; len(seqs) > 0 {
			kept = append(kept, f)
		}
	}
	clear(st.inflight[len(kept):])
	st.inflight = kept
	now := d.clk.Now()
	if now.Before(st.ackRetryAt) {
		return st.ackRetryAt.Sub(now)
	}
	err := d.q.Ack(ctx, a.Cumulative(), a.Ranges())
	d.errs.note("ack", err)
	if err != nil {
		d.stats.errors.Add(1)
		st.ackRetryAt = now.Add(d.cfg.RetryDelay)
		return d.cfg.RetryDelay
	}
	d.stats.acked.Add(1)
	st.ack = nil
	return idle
}

// step sends what is due and returns how long until something else is.
func (d *Drainer) step(ctx context.Context, st *state) time.Duration {
	now := d.clk.Now()
	switch {
	case !st.up:
		return idle
	case now.Before(st.resumeAt):
		return st.resumeAt.Sub(now)
	case now.Before(st.retryAt):
		return st.retryAt.Sub(now)
	}
	for _, f := range st.inflight {
		if now.Before(f.deadline) {
			continue
		}
		if w := st.pacer.reserve(now, len(f.payload)); w > 0 {
			return w
		}
		if !d.send(ctx, st, f) {
			return st.retryAt.Sub(now)
		}
		f.attempts++
		f.deadline = now.Add(d.timeout(f.attempts))
		d.stats.resends.Add(1)
	}
	for len(st.inflight) < d.cfg.MaxInFlight {
		if st.next == nil {
			st.next = d.read(ctx, st, now)
			if st.next == nil {
				break
			}
		}
		f := st.next
		if w := st.pacer.reserve(now, len(f.payload)); w > 0 {
			return w
		}
		if !d.send(ctx, st, f) {
			return st.retryAt.Sub(now)
		}
		st.next, st.cursor = nil, f.after
		f.deadline = now.Add(d.timeout(0))
		st.inflight = append(st.inflight, f)
		d.stats.batches.Add(1)
		d.stats.envelopes.Add(uint64(f.envs))
	}
	if !st.retryAt.IsZero() && now.Before(st.retryAt) {
		return st.retryAt.Sub(now)
	}
	wait := d.cfg.PollInterval
	for _, f := range st.inflight {
		wait = min(wait, f.deadline.Sub(now))
	}
	return wait
}

// read builds the next message from the queue, or returns nil when
// nothing is pending or the read failed (then a retry is scheduled).
func (d *Drainer) read(ctx context.Context, st *state, now time.Time) *flight {
	items, _, err := d.q.Pending(ctx, st.cursor, d.cfg.MaxBatchEnvelopes, d.cfg.MaxBatchBytes)
	d.errs.note("read outbox", err)
	if err != nil {
		d.stats.errors.Add(1)
		d.backoff(st, now)
		return nil
	}
	if len(items) == 0 {
		return nil
	}
	h := Header{NodeID: d.cfg.NodeID, BootEpoch: d.cfg.BootEpoch, SentAtMs: now.UnixMilli()}
	payload, stream, n := Build(h, items, d.cfg.MaxBatchBytes, d.cfg.MaxBatchEnvelopes)
	f := &flight{payload: payload, stream: stream, envs: n, after: st.cursor, seqs: make([]uint64, n)}
	for i, it := range items[:n] {
		f.seqs[i] = it.Seq
		f.after = f.after.Advance(it)
	}
	return f
}

func (d *Drainer) send(ctx context.Context, st *state, f *flight) bool {
	err := d.s.Send(ctx, f.payload, f.stream)
	d.errs.note("send", err)
	if err != nil {
		d.stats.errors.Add(1)
		d.backoff(st, d.clk.Now())
		return false
	}
	d.stats.bytes.Add(uint64(len(f.payload)))
	st.retryAt, st.retryDelay = time.Time{}, d.cfg.RetryDelay
	return true
}

func (d *Drainer) backoff(st *state, now time.Time) {
	st.retryAt = now.Add(st.retryDelay)
	st.retryDelay = min(2*st.retryDelay, d.cfg.MaxRetryDelay)
}

// timeout is the ack timeout after attempts resends.
func (d *Drainer) timeout(attempts int) time.Duration {
	return d.cfg.AckTimeout << min(attempts, 3)
}

// errLog logs a distinct error once and the recovery with the count and
// duration of the failures.
type errLog struct {
	log   *slog.Logger
	clk   clock.Clock
	state map[string]*errRun
}

type errRun struct {
	msg   string
	count int
	since time.Time
}

func (l *errLog) note(op string, err error) {
	if l.state == nil {
		l.state = map[string]*errRun{}
	}
	r := l.state[op]
	if err == nil {
		if r != nil {
			l.log.Info("drain recovered", "op", op, "failures", r.count, "duration", l.clk.Now().Sub(r.since))
			delete(l.state, op)
		}
		return
	}
	if r == nil {
		r = &errRun{since: l.clk.Now()}
		l.state[op] = r
	}
	r.count++
	if msg := err.Error(); msg != r.msg {
		r.msg = msg
		l.log.Warn("drain failed", "op", op, "error", err)
	}
}
