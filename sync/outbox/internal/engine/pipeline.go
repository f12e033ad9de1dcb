package engine

import (
	"errors"
	"sync/atomic"

	"github.com/skyedge/skyedge/sync/outbox"
)

// Every write goes through one pipeline, in rounds. Whoever submits to an
// idle pipeline becomes the leader: it takes the open round, builds and
// commits it in one store call (syncing once if any op asked for it), then
// hands leadership to a waiter of the round that filled up meanwhile. This
// is group commit without a background goroutine: concurrent appenders
// share one write and one fsync, and a lone appender pays no hand-off.
//
// Sequence numbers are assigned by the leader while it builds a round, so
// commit order is sequence order (a drainer's cursor can never skip a
// number that becomes visible later), and a failed commit gives its numbers
// back instead of leaving holes.

// op is one unit of work in a round.
type op struct {
	// build adds the op's writes; it runs on the leader and may take
	// sequence numbers. On error it must leave w as it found it.
	build func(w *writer) error
	sync  bool // sync before the op completes
	// Set by the leader before the round is done.
	committed bool
	err       error
}

type round struct {
	ops     []*op
	done    chan struct{} // closed when every op has its result
	lead    chan struct{} // closed when a waiter must lead this round
	claimed atomic.Bool
}

func newRound() *round {
	return &round{done: make(chan struct{}), lead: make(chan struct{})}
}

// submit runs ops through the pipeline and returns when they are done;
// each op's result is in its fields.
func (e *Engine) submit(ops ...*op) {
	e.pmu.Lock()
	r := e.open
	r.ops = append(r.ops, ops...)
	if !e.busy {
		e.busy = true
		e.open = newRound()
		e.pmu.Unlock()
		e.lead(r)
		return
	}
	e.pmu.Unlock()
	select {
	case <-r.done:
	case <-r.lead:
		if r.claimed.CompareAndSwap(false, true) {
			e.lead(r)
		} else {
			<-r.done
		}
	}
}

func (e *Engine) lead(r *round) {
	e.commitRound(r)
	close(r.done)
	e.pmu.Lock()
	if len(e.open.ops) == 0 {
		e.busy = false
		e.pmu.Unlock()
		return
	}
	next := e.open
	e.open = newRound()
	e.pmu.Unlock()
	close(next.lead)
}

// writer collects one op's part. Class deltas let later ops of the same
// round see the bytes earlier ones add, so quota checks stay exact.
type writer struct {
	next  uint64
	part  Part
	delta *[outbox.NumClasses]classDelta
	own   [outbox.NumClasses]classDelta
	// figures makes the op commit a part even with no records, to
	// persist figures its build changed.
	figures bool
}

type classDelta struct {
	count, bytes int64
	freed        int64 // bytes of the records deleted
}

func (w *writer) take() uint64 {
	s := w.next
	w.next++
	return s
}

// pendingBytes is what class c will hold once this round commits.
func (w *writer) pendingBytes(e *Engine, c outbox.Class) int64 {
	return e.classes[c].bytes.Load() + w.delta[c].bytes + w.own[c].bytes
}

func (w *writer) put(r Record) {
	w.part.Puts = append(w.part.Puts, r)
	w.own[r.Class].count++
	w.own[r.Class].bytes += r.Size()
}

// replace overwrites an existing record of oldSize bytes.
func (w *writer) replace(r Record, oldSize int64) {
	w.part.Puts = append(w.part.Puts, r)
	w.own[r.Class].bytes += r.Size() - oldSize
}

func (w *writer) del(k Key, size int64) {
	w.part.Dels = append(w.part.Dels, k)
	w.own[k.Class].count--
	w.own[k.Class].bytes -= size
	w.own[k.Class].freed += size
}

func (e *Engine) commitRound(r *round) {
	start := e.next.Load()
	next := start
	var delta [outbox.NumClasses]classDelta
	parts := make([]Part, 0, len(r.ops))
	owns := make([][outbox.NumClasses]classDelta, 0, len(r.ops))
	nexts := make([]uint64, 0, len(r.ops))
	built := make([]*op, 0, len(r.ops))
	needSync := false
	for _, o := range r.ops {
		w := writer{next: next, delta: &delta}
		if err := o.build(&w); err != nil {
			o.err = err
			continue
		}
		if len(w.part.Puts) == 0 && len(w.part.Dels) == 0 && !w.figures {
			o.committed = true
			continue
		}
		for c := range delta {
			delta[c].count += w.own[c].count
			delta[c].bytes += w.own[c].bytes
			delta[c].freed += w.own[c].freed
		}
		parts = append(parts, w.part)
		owns = append(owns, w.own)
		nexts = append(nexts, w.next)
		built = append(built, o)
		next = w.next
		needSync = needSync || o.sync
	}
	if len(parts) == 0 {
		return
	}
	// The figures start from the engine's after every build: a build may
	// tighten them (expire's oldest).
	f := e.figures()
	for i := range parts {
		f = f.advance(parts[i], owns[i], nexts[i])
		parts[i].After = f
	}
	if err := e.store.Commit(parts); err != nil {
		for _, o := range built {
			o.err = err
		}
		return
	}
	e.next.Store(next)
	if next > start {
		e.committed.Store(next - 1)
	}
	e.dirty.Store(true)
	e.account(parts, delta)
	var err error
	if needSync {
		err = e.syncNow()
	}
	for _, o := range built {
		o.committed = true
		if o.sync {
			o.err = err
		}
	}
}

// account applies a committed round to the per-class figures. It runs on
// the leader, the only writer of these fields.
func (e *Engine) account(parts []Part, delta [outbox.NumClasses]classDelta) {
	var refresh [outbox.NumClasses]bool
	for _, p := range parts {
		for _, r := range p.Puts {
			cs := &e.classes[r.Class]
			if r.Seq > cs.last.Load() {
				cs.last.Store(r.Seq)
			}
			if f := cs.first.Load(); f == 0 || r.Seq < f {
				cs.first.Store(r.Seq)
			}
		}
		for _, k := range p.Dels {
			cs := &e.classes[k.Class]
			if k.Seq == cs.first.Load() || k.Seq == cs.last.Load() {
				refresh[k.Class] = true
			}
		}
	}
	final := parts[len(parts)-1].After
	for c := range delta {
		cs := &e.classes[c]
		cs.count.Add(delta[c].count)
		cs.bytes.Add(delta[c].bytes)
		cs.oldest.Store(final.Classes[c].Oldest)
		e.reclaimable.Add(delta[c].freed)
		if refresh[c] {
			e.refreshBounds(outbox.Class(c))
		}
	}
}

// refreshBounds re-reads a class's first and last sequence numbers after
// a delete removed one of them.
func (e *Engine) refreshBounds(c outbox.Class) {
	cs := &e.classes[c]
	if cs.count.Load() <= 0 {
		cs.first.Store(0)
		cs.last.Store(0)
		return
	}
	first := uint64(0)
	err := e.store.Scan(c, cs.first.Load(), false, func(r Record) bool {
		first = r.Seq
		return false
	})
	last, lerr := e.store.Last(c)
	if err != nil || lerr != nil {
		// The bounds stay conservative (too low a first only costs a
		// longer scan); the next delete at a bound retries.
		e.logErr("read class bounds", errors.Join(err, lerr))
		return
	}
	cs.first.Store(first)
	cs.last.Store(last)
}
