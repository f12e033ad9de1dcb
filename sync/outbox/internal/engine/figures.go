package engine

import (
	"fmt"

	"github.com/skyedge/skyedge/sync/outbox"
)

// The figures (see Figures) are persisted with every commit, so that
// opening a store reads them instead of every record.

// load reads the store's figures, or rebuilds them with a scan when it
// has none (a new store, or one written before figures were kept) or they
// disagree with its records.
func (e *Engine) load() error {
	var err error
	if e.id, err = e.store.LoadID(); err != nil {
		return fmt.Errorf("outbox open: load ID: %w", err)
	}
	if e.id == "" {
		e.id = newID()
		if err := e.store.SaveID(e.id); err != nil {
			return fmt.Errorf("outbox open: save ID: %w", err)
		}
	}
	f, ok, err := e.store.LoadFigures()
	if err != nil {
		return fmt.Errorf("outbox open: load figures: %w", err)
	}
	if ok {
		ok, err = e.refine(&f)
		if err != nil {
			return fmt.Errorf("outbox open: %w", err)
		}
		if !ok {
			e.log.Warn("outbox figures disagree with the stored records; counting them again")
		}
	}
	if !ok {
		if f, err = e.rebuild(f.Next); err != nil {
			return fmt.Errorf("outbox open: %w", err)
		}
		// Persist them so that the next open needs no scan.
		if err := e.store.Commit([]Part{{After: f}}); err != nil {
			return fmt.Errorf("outbox open: save figures: %w", err)
		}
	}
	next := max(f.Next, 1)
	for _, c := range outbox.Classes {
		cf, cs := f.Classes[c], &e.classes[c]
		cs.count.Store(cf.Count)
		cs.bytes.Store(cf.Bytes)
		cs.first.Store(cf.First)
		cs.last.Store(cf.Last)
		cs.oldest.Store(cf.Oldest)
		next = max(next, cf.Last+1)
	}
	e.next.Store(next)
	e.committed.Store(next - 1)
	e.durable.Store(next - 1)
	return nil
}

// refine makes persisted bounds exact with a seek at each end of every
// class that holds records. It reports false when the figures cannot be
// those of the stored records.
func (e *Engine) refine(f *Figures) (bool, error) {
	for _, c := range outbox.Classes {
		cf := &f.Classes[c]
		if cf.Count < 0 || cf.Bytes < 0 || (cf.Count == 0) != (cf.Bytes == 0) {
			return false, nil
		}
		if cf.Count == 0 {
			*cf = ClassFigures{}
			continue
		}
		first := uint64(0)
		if err := e.store.Scan(c, cf.First, false, func(r Record) bool {
			first = r.Seq
			return false
		}); err != nil {
			return false, fmt.Errorf("seek first %s: %w", c, err)
		}
		last, err := e.store.Last(c)
		if err != nil {
			return false, fmt.Errorf("seek last %s: %w", c, err)
		}
		if first == 0 || last < first || last > cf.Last || int64(last-first) < cf.Count-1 {
			return false, nil
		}
		cf.First, cf.Last = first, last
	}
	return true, nil
}

// rebuild counts every stored record: the figures of a store that has
// none, starting from its persisted next sequence number.
func (e *Engine) rebuild(next uint64) (Figures, error) {
	f := Figures{Next: next}
	for _, c := range outbox.Classes {
		cf := &f.Classes[c]
		err := e.store.Scan(c, 0, false, func(r Record) bool {
			if cf.First == 0 {
				cf.First = r.Seq
			}
			cf.Last = r.Seq
			cf.Count++
			cf.Bytes += r.Size()
			if !r.Pinned && (cf.Oldest == 0 || r.ProducedAt < cf.Oldest) {
				cf.Oldest = r.ProducedAt
			}
			f.Next = max(f.Next, r.Seq+1)
			return true
		})
		if err != nil {
			return f, fmt.Errorf("scan %s: %w", c, err)
		}
	}
	return f, nil
}

// figures are the engine's current figures, as the store has them.
func (e *Engine) figures() Figures {
	f := Figures{Next: e.next.Load()}
	for c := range f.Classes {
		cs := &e.classes[c]
		f.Classes[c] = ClassFigures{
			Count:  cs.count.Load(),
			Bytes:  cs.bytes.Load(),
			First:  cs.first.Load(),
			Last:   cs.last.Load(),
			Oldest: cs.oldest.Load(),
		}
	}
	return f
}

// advance returns f after part p, which changes the classes by own and
// leaves next as the next sequence number. Deletes do not move the bounds
// (see ClassFigures): the engine re-reads them after the commit and the
// next commit persists them.
func (f Figures) advance(p Part, own [outbox.NumClasses]classDelta, next uint64) Figures {
	f.Next = next
	for _, r := range p.Puts {
		cf := &f.Classes[r.Class]
		if cf.First == 0 || r.Seq < cf.First {
			cf.First = r.Seq
		}
		cf.Last = max(cf.Last, r.Seq)
		if !r.Pinned && (cf.Oldest == 0 || r.ProducedAt < cf.Oldest) {
			cf.Oldest = r.ProducedAt
		}
	}
	for c := range f.Classes {
		cf := &f.Classes[c]
		cf.Count += own[c].count
		cf.Bytes += own[c].bytes
		if cf.Count == 0 {
			*cf = ClassFigures{}
		}
	}
	return f
}
