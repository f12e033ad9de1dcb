// Package faultyq wraps an outbox.Queue and makes chosen operations fail,
// so callers' error paths (the drainer, the agent's producers) can be
// tested against a real queue. A fault either fails the call before it
// reaches the queue, or lets it through and then reports an error, like a
// reply lost after the work was done.
package faultyq

import (
	"context"
	"sync"

	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Op names a Queue method.
type Op string

// Operations that can fail.
const (
	OpAppend  Op = "append"
	OpPending Op = "pending"
	OpAck     Op = "ack"
	OpRun     Op = "run"
	OpClose   Op = "close"
)

type fault struct {
	err       error
	remaining int  // calls left to fail; < 0 fails until Heal
	after     bool // run the call, then fail
}

// Queue is an outbox.Queue with injected faults.
type Queue struct {
	inner outbox.Queue

	mu     sync.Mutex // guards the fields below
	faults map[Op]*fault
	calls  map[Op]int
	failed map[Op]int
}

var _ outbox.Queue = (*Queue)(nil)

// New wraps q; with no faults set it behaves exactly like q.
func New(q outbox.Queue) *Queue {
	return &Queue{inner: q, faults: map[Op]*fault{}, calls: map[Op]int{}, failed: map[Op]int{}}
}

// Fail makes every call of op fail with err until Heal.
func (q *Queue) Fail(op Op, err error) { q.set(op, &fault{err: err, remaining: -1}) }

// FailNext makes the next n calls of op fail with err without reaching the
// queue.
func (q *Queue) FailNext(op Op, err error, n int) { q.set(op, &fault{err: err, remaining: n}) }

// FailAfter lets the next n calls of op reach the queue and then return
// err, as when the work is done but the reply is lost. For Append the
// returned sequence number is 0.
func (q *Queue) FailAfter(op Op, err error, n int) {
	q.set(op, &fault{err: err, remaining: n, after: true})
}

// Heal removes the faults of ops, or all faults when none are named.
func (q *Queue) Heal(ops ...Op) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(ops) == 0 {
		clear(q.faults)
		return
	}
	for _, op := range ops {
		delete(q.faults, op)
	}
}

// Calls is how many times op was called; Failed how many of them failed.
func (q *Queue) Calls(op Op) (calls, failed int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls[op], q.failed[op]
}

func (q *Queue) set(op Op, f *fault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.faults[op] = f
}

// check counts a call and returns the fault to apply to it, if any.
func (q *Queue) check(op Op) *fault {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls[op]++
	f := q.faults[op]
	if f == nil {
		return nil
	}
	if f.remaining > 0 {
		f.remaining--
		if f.remaining == 0 {
			delete(q.faults, op)
		}
	}
	q.failed[op]++
	return f
}

// Append implements outbox.Queue.
func (q *Queue) Append(ctx context.Context, env *pb.Envelope) (uint64, error) {
	f := q.check(OpAppend)
	if f != nil && !f.after {
		return 0, f.err
	}
	seq, err := q.inner.Append(ctx, env)
	if f != nil && err == nil {
		return 0, f.err
	}
	return seq, err
}

// Pending implements outbox.Queue.
func (q *Queue) Pending(ctx context.Context, cur outbox.Cursor, maxItems, maxBytes int) ([]outbox.Item, outbox.Cursor, error) {
	f := q.check(OpPending)
	if f != nil && !f.after {
		return nil, cur, f.err
	}
	items, next, err := q.inner.Pending(ctx, cur, maxItems, maxBytes)
	if f != nil && err == nil {
		return nil, cur, f.err
	}
	return items, next, err
}

// Ack implements outbox.Queue.
func (q *Queue) Ack(ctx context.Context, cumulative uint64, ranges []acks.Range) error {
	f := q.check(OpAck)
	if f != nil && !f.after {
		return f.err
	}
	err := q.inner.Ack(ctx, cumulative, ranges)
	if f != nil && err == nil {
		return f.err
	}
	return err
}

// State implements outbox.Queue; it never fails.
func (q *Queue) State() outbox.State { return q.inner.State() }

// Run implements outbox.Queue. A fault on OpRun ends Run with the error
// (after the inner Run stops, for FailAfter).
func (q *Queue) Run(ctx context.Context) error {
	f := q.check(OpRun)
	if f != nil && !f.after {
		return f.err
	}
	err := q.inner.Run(ctx)
	if f != nil && err == nil {
		return f.err
	}
	return err
}

// Close implements outbox.Queue.
func (q *Queue) Close() error {
	f := q.check(OpClose)
	if f != nil && !f.after {
		return f.err
	}
	err := q.inner.Close()
	if f != nil && err == nil {
		return f.err
	}
	return err
}
