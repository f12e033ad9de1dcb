package engine

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// relieveIfIdle brings class c back under its quota, unless another
// goroutine is already doing it (appenders then run slightly over quota
// for the duration instead of queueing behind the relief).
func (e *Engine) relieveIfIdle(c outbox.Class) {
	if !e.relieving[c].CompareAndSwap(false, true) {
		return
	}
	defer e.relieving[c].Store(false)
	reason := outbox.ReasonQuota
	if c == outbox.Telemetry && e.telemetryCap.Load() > 0 {
		reason = outbox.ReasonDisk
	}
	e.maint.Lock()
	defer e.maint.Unlock()
	if e.classes[c].bytes.Load() <= e.quota(c) {
		return
	}
	e.logErr("relieve "+c.String(), e.relieveLocked(c, reason))
}

// relieveLocked compacts (telemetry) and then drops the oldest messages of
// class c until it holds at most 3/4 of its quota. The caller holds maint
// exclusively.
//
// Compaction goes through the tiers twice: first as configured, then, if
// that is not enough, with no MinAge, so that under pressure recent
// reports are summarised too (only each tier's current, unfinished window
// stays as it is). Summaries of the whole outage are
// worth more than the raw reports of its last minutes; only when even
// that does not fit are the oldest dropped.
func (e *Engine) relieveLocked(c outbox.Class, reason outbox.Reason) error {
	target := e.quota(c) / reliefDen * reliefNum
	if e.cfg.Policies[c].WhenFull == outbox.Compact {
		now := e.clk.Now()
		for _, urgent := range []bool{false, true} {
			for _, t := range e.cfg.Tiers {
				if e.classes[c].bytes.Load() <= target {
					return nil
				}
				if urgent {
					t.MinAge = 0
				}
				if err := e.compact(t, now); err != nil {
					return err
				}
			}
		}
	}
	if e.classes[c].bytes.Load() <= target {
		return nil
	}
	return e.dropOldest(c, target, reason)
}

// dropOldest drops class c's oldest unpinned messages, by production time,
// until it holds at most target bytes.
func (e *Engine) dropOldest(c outbox.Class, target int64, reason outbox.Reason) error {
	var recs []Record
	if err := e.store.Scan(c, e.classes[c].first.Load(), false, func(r Record) bool {
		if !r.Pinned {
			recs = append(recs, r)
		}
		return true
	}); err != nil {
		return fmt.Errorf("outbox drop oldest %s: scan: %w", c, err)
	}
	slices.SortFunc(recs, func(a, b Record) int {
		if a.ProducedAt != b.ProducedAt {
			return cmpInt(a.ProducedAt, b.ProducedAt)
		}
		return cmpInt(a.Seq, b.Seq)
	})
	excess := e.classes[c].bytes.Load() - target
	n := 0
	for n < len(recs) && excess > 0 {
		excess -= recs[n].Size()
		n++
	}
	vs, err := e.victimsOf(recs[:n])
	if err == nil {
		err = e.recordDrops(c, reason, vs, refusal{})
	}
	if err != nil {
		return fmt.Errorf("outbox drop oldest %s: %w", c, err)
	}
	return nil
}

// expire drops every unpinned message older than its class's TTL. A
// class whose oldest unpinned message (a lower bound kept with its
// figures) is not yet due is not scanned. The caller holds maint
// exclusively.
func (e *Engine) expire(now time.Time) error {
	for _, c := range outbox.Classes {
		ttl := e.cfg.Policies[c].TTL
		cs := &e.classes[c]
		if ttl <= 0 || cs.count.Load() == 0 {
			continue
		}
		cutoff := now.Add(-ttl).UnixMilli()
		if o := cs.oldest.Load(); o == 0 || o >= cutoff {
			continue // no unpinned message, or none due
		}
		seen := e.committed.Load()
		var victims []Record
		var oldest int64 // of the unpinned messages that stay
		if err := e.store.Scan(c, cs.first.Load(), false, func(r Record) bool {
			switch {
			case r.Pinned:
			case r.ProducedAt < cutoff:
				victims = append(victims, r)
			case oldest == 0 || r.ProducedAt < oldest:
				oldest = r.ProducedAt
			}
			return true
		}); err != nil {
			return fmt.Errorf("outbox expire %s: scan: %w", c, err)
		}
		if len(victims) > 0 {
			vs, err := e.victimsOf(victims)
			if err == nil {
				err = e.recordDrops(c, outbox.ReasonTTL, vs, refusal{})
			}
			if err != nil {
				return fmt.Errorf("outbox expire %s: %w", c, err)
			}
		}
		if err := e.tightenOldest(c, seen, oldest); err != nil {
			return fmt.Errorf("outbox expire %s: %w", c, err)
		}
	}
	return nil
}

// tightenOldest raises class c's oldest bound to oldest, the earliest
// production time among the unpinned records with sequence numbers up to
// seen that expiry kept, once the records committed since are counted
// too. It runs on the pipeline's leader, the only writer of the bound, so
// no append can lower it meanwhile, and commits the new figures.
func (e *Engine) tightenOldest(c outbox.Class, seen uint64, oldest int64) error {
	o := &op{build: func(w *writer) error {
		err := e.store.Scan(c, seen+1, false, func(r Record) bool {
			if !r.Pinned && (oldest == 0 || r.ProducedAt < oldest) {
				oldest = r.ProducedAt
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("scan records since %d: %w", seen, err)
		}
		e.classes[c].oldest.Store(oldest)
		w.figures = true
		return nil
	}}
	e.submit(o)
	return o.err
}

// compact merges the telemetry of every window of tier t that ended at
// least t.MinAge before now into one summary, where that saves space. The
// caller holds maint exclusively.
func (e *Engine) compact(t outbox.Tier, now time.Time) error {
	width := t.Window.Milliseconds()
	cutoff := now.UnixMilli() - t.MinAge.Milliseconds()
	wins := map[int64]*window{}
	var bad int
	err := e.store.Scan(outbox.Telemetry, e.classes[outbox.Telemetry].first.Load(), true, func(r Record) bool {
		if r.Pinned {
			return true
		}
		var env pb.Envelope
		if err := proto.Unmarshal(r.Payload, &env); err != nil {
			bad++
			return true
		}
		var start int64
		switch b := env.GetBody().(type) {
		case *pb.Envelope_Report:
			start = floorTo(r.ProducedAt, width)
		case *pb.Envelope_Summary:
			s := b.Summary
			if s.GetWindowEndMs()-s.GetWindowStartMs() > width {
				return true // already coarser than this tier
			}
			start = floorTo(s.GetWindowStartMs(), width)
		default:
			return true
		}
		if start+width > cutoff {
			return true
		}
		w := wins[start]
		if w == nil {
			w = &window{start: start, end: start + width}
			wins[start] = w
		}
		if len(w.members) >= maxPartKeys {
			return true // the rest of a huge window waits for the next pass
		}
		if rep := env.GetReport(); rep != nil {
			w.addReport(r, rep)
		} else {
			w.addSummary(r, env.GetSummary())
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("outbox compact %v windows: scan: %w", t.Window, err)
	}
	if bad > 0 {
		e.logErr("compact telemetry", fmt.Errorf("%d stored telemetry messages do not decode and were left as they are", bad))
	}
	starts := make([]int64, 0, len(wins))
	for s, w := range wins {
		if len(w.members) >= 2 {
			starts = append(starts, s)
		}
	}
	slices.Sort(starts)
	var ops []*op
	var merged []*window
	for _, s := range starts {
		w := wins[s]
		sum := w.summary()
		env := e.envelope(w.lastAt)
		env.Body = &pb.Envelope_Summary{Summary: sum}
		// A summary must save space: its payload plus a sequence number
		// against the records it replaces.
		if int64(proto.Size(env)+10+RecordOverhead) >= w.bytes {
			continue
		}
		merged = append(merged, w)
		ops = append(ops, &op{build: func(wr *writer) error {
			env.Seq = wr.next
			payload, err := protocol.Marshal(env)
			if err != nil {
				return err
			}
			wr.take()
			wr.put(Record{Class: outbox.Telemetry, Seq: env.Seq, ProducedAt: w.lastAt, Summary: true, Len: len(payload), Payload: payload})
			for _, m := range w.members {
				wr.del(Key{outbox.Telemetry, m.Seq}, m.Size())
			}
			return nil
		}})
	}
	if len(ops) == 0 {
		return nil
	}
	e.submit(ops...)
	for i, o := range ops {
		if !o.committed {
			return fmt.Errorf("outbox compact %v windows: %w", t.Window, o.err)
		}
		e.classes[outbox.Telemetry].summarized.Add(merged[i].reports)
	}
	return nil
}

func cmpInt[T int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
