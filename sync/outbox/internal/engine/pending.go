package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"
)

// Pending implements outbox.Queue.
func (e *Engine) Pending(ctx context.Context, cur outbox.Cursor, maxItems, maxBytes int) ([]outbox.Item, outbox.Cursor, error) {
	if err := ctx.Err(); err != nil {
		return nil, cur, fmt.Errorf("outbox pending: %w", err)
	}
	if maxItems <= 0 {
		return nil, cur, nil
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return nil, cur, fmt.Errorf("outbox pending: %w", outbox.ErrClosed)
	}
	// Hand out only what a crash cannot take back: sync first if
	// anything was committed since the last sync.
	if e.committed.Load() > e.durable.Load() {
		if err := e.syncNow(); err != nil {
			return nil, cur, fmt.Errorf("outbox pending: %w", err)
		}
	}
	durable := e.durable.Load()

	e.maint.RLock()
	defer e.maint.RUnlock()
	var items []outbox.Item
	bytes, full := 0, false
	for _, c := range outbox.Classes {
		from := max(cur.After[c]+1, e.classes[c].first.Load())
		if from > durable {
			continue
		}
		err := e.store.Scan(c, from, true, func(r Record) bool {
			if r.Seq > durable {
				return false
			}
			if len(items) >= maxItems || (len(items) > 0 && bytes+r.Len > maxBytes) {
				full = true
				return false
			}
			items = append(items, outbox.Item{
				Seq:        r.Seq,
				Class:      c,
				ProducedAt: time.UnixMilli(r.ProducedAt),
				Payload:    r.Payload,
			})
			bytes += r.Len
			cur.After[c] = r.Seq
			if c == outbox.Control {
				if m := e.gaps.bySeq[r.Seq]; m != nil {
					m.handedOut.Store(true)
				}
			}
			return true
		})
		if err != nil {
			return nil, cur, fmt.Errorf("outbox pending %s: %w", c, err)
		}
		if full {
			break
		}
	}
	return items, cur, nil
}

// Ack implements outbox.Queue.
func (e *Engine) Ack(ctx context.Context, cumulative uint64, ranges []acks.Range) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("outbox ack %d: %w", cumulative, err)
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return fmt.Errorf("outbox ack %d: %w", cumulative, outbox.ErrClosed)
	}
	rs := acks.Normalize(slices.Clone(ranges))
	e.maint.Lock()
	defer e.maint.Unlock()
	var victims []Record
	collect := func(c outbox.Class, from, to uint64) error {
		return e.store.Scan(c, from, false, func(r Record) bool {
			if r.Seq > to {
				return false
			}
			victims = append(victims, r)
			return true
		})
	}
	for _, c := range outbox.Classes {
		first := e.classes[c].first.Load()
		if first == 0 {
			continue
		}
		if cumulative >= first {
			if err := collect(c, first, cumulative); err != nil {
				return fmt.Errorf("outbox ack %d: scan %s: %w", cumulative, c, err)
			}
		}
		if cumulative == math.MaxUint64 {
			continue
		}
		for _, r := range rs {
			if r.Last <= cumulative || r.Last < first {
				continue
			}
			if err := collect(c, max(r.First, cumulative+1, first), r.Last); err != nil {
				return fmt.Errorf("outbox ack %d: scan %s: %w", cumulative, c, err)
			}
		}
	}
	return e.deleteRecords(victims, fmt.Sprintf("outbox ack %d", cumulative))
}

// deleteRecords deletes records in atomic parts of maxPartKeys and forgets
// deleted gap markers. The caller holds maint exclusively.
func (e *Engine) deleteRecords(victims []Record, what string) error {
	if len(victims) == 0 {
		return nil
	}
	var ops []*op
	var keys [][]Key
	for len(victims) > 0 {
		chunk := victims[:min(len(victims), maxPartKeys)]
		victims = victims[len(chunk):]
		ks := make([]Key, len(chunk))
		for i, r := range chunk {
			ks[i] = Key{r.Class, r.Seq}
		}
		keys = append(keys, ks)
		ops = append(ops, &op{build: func(w *writer) error {
			for _, r := range chunk {
				w.del(Key{r.Class, r.Seq}, r.Size())
			}
			return nil
		}})
	}
	e.submit(ops...)
	var errs []error
	for i, o := range ops {
		if o.committed {
			e.gaps.forget(keys[i])
		} else {
			errs = append(errs, o.err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: delete: %w", what, err)
	}
	return nil
}
