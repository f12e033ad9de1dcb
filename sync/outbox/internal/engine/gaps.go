package engine

import (
	"fmt"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Gap markers are coalesced: while a drainer has not yet been handed the
// open marker for a (class, reason), later drops are merged into it and it
// is rewritten in place under the same sequence number, atomically with
// the deletes it records. Once handed out, the cloud may have applied it,
// so the next drop starts a new marker. A long outage therefore leaves one
// marker per class and reason (more only past MaxGapRanges ranges), not
// one per drop.

type gapKey struct {
	class  outbox.Class
	reason outbox.Reason
}

// marker is a gap marker stored in the Control class.
type marker struct {
	key       gapKey
	seq       uint64
	gap       *pb.Gap // never modified once installed
	size      int64
	handedOut atomic.Bool
}

type gapBook struct {
	open  map[gapKey]*marker
	bySeq map[uint64]*marker
}

func newGapBook() gapBook {
	return gapBook{open: map[gapKey]*marker{}, bySeq: map[uint64]*marker{}}
}

// forget removes the markers whose sequence numbers were acknowledged.
func (b *gapBook) forget(seqs []Key) {
	for _, k := range seqs {
		m := b.bySeq[k.Seq]
		if m == nil || k.Class != outbox.Control {
			continue
		}
		delete(b.bySeq, k.Seq)
		if b.open[m.key] == m {
			delete(b.open, m.key)
		}
	}
}

// refusal counts appends refused for one class and reason: they never got
// a sequence number, so only the count and times go in the marker.
type refusal struct {
	n               uint64
	firstMs, lastMs int64
}

func (r *refusal) add(o refusal) {
	if o.n == 0 {
		return
	}
	if r.n == 0 || o.firstMs < r.firstMs {
		r.firstMs = o.firstMs
	}
	r.lastMs = max(r.lastMs, o.lastMs)
	r.n += o.n
}

// refuse counts a refused append; Run records it in a gap marker.
func (e *Engine) refuse(c outbox.Class, reason outbox.Reason, ms int64) {
	e.classes[c].refused.Add(1)
	e.refMu.Lock()
	defer e.refMu.Unlock()
	k := gapKey{c, reason}
	r := e.refusals[k]
	if r == nil {
		r = &refusal{}
		e.refusals[k] = r
	}
	r.add(refusal{n: 1, firstMs: ms, lastMs: ms})
}

// flushRefusals records counted refusals in gap markers. Refusals whose
// marker cannot be written are kept for the next attempt.
func (e *Engine) flushRefusals() {
	e.refMu.Lock()
	pending := e.refusals
	e.refusals = map[gapKey]*refusal{}
	e.refMu.Unlock()
	if len(pending) == 0 {
		return
	}
	e.maint.Lock()
	defer e.maint.Unlock()
	for k, r := range pending {
		err := e.recordDrops(k.class, k.reason, nil, *r)
		e.logErr("record refusals", err)
		if err != nil {
			e.refMu.Lock()
			if cur := e.refusals[k]; cur != nil {
				r.add(*cur)
			}
			e.refusals[k] = r
			e.refMu.Unlock()
		}
	}
}

// victim is a record to drop. A dropped summary takes the settlement of
// everything it covered with it, so its covers go into the gap marker too.
type victim struct {
	Record
	covers  []acks.Range
	samples uint64 // messages lost: 1, or a summary's samples
	firstAt int64  // production time of the oldest message lost
}

// victimsOf turns records into victims, reading the covers of summaries.
func (e *Engine) victimsOf(recs []Record) ([]victim, error) {
	vs := make([]victim, len(recs))
	for i, r := range recs {
		vs[i] = victim{Record: r, samples: 1, firstAt: r.ProducedAt}
		if !r.Summary {
			continue
		}
		var payload []byte
		if err := e.store.Scan(r.Class, r.Seq, true, func(got Record) bool {
			if got.Seq == r.Seq {
				payload = got.Payload
			}
			return false
		}); err != nil {
			return nil, fmt.Errorf("read summary %d: %w", r.Seq, err)
		}
		var env pb.Envelope
		if proto.Unmarshal(payload, &env) != nil {
			continue
		}
		if s := env.GetSummary(); s != nil {
			vs[i].covers = acks.FromProto(s.GetCovers())
			vs[i].samples = uint64(max(s.GetSamples(), 1))
			vs[i].firstAt = min(s.GetWindowStartMs(), r.ProducedAt)
		}
	}
	return vs, nil
}

// recordDrops deletes victims, all of class c, and records them (and ref's
// refusals) in the gap marker for (c, reason), each chunk atomically with
// its marker. The caller holds maint exclusively.
func (e *Engine) recordDrops(c outbox.Class, reason outbox.Reason, victims []victim, ref refusal) error {
	key := gapKey{c, reason}
	now := e.clk.Now().UnixMilli()
	for first := true; first || len(victims) > 0; first = false {
		chunk := victims[:min(len(victims), maxPartKeys)]
		victims = victims[len(chunk):]
		cur := e.gaps.open[key]
		reuse := cur != nil && !cur.handedOut.Load() && len(cur.gap.GetSeqs()) < e.cfg.MaxGapRanges
		g := &pb.Gap{Class: c.String(), Reason: string(reason)}
		if reuse {
			g = proto.Clone(cur.gap).(*pb.Gap)
		}
		mergeGap(g, chunk, ref)
		ref = refusal{}
		var seq uint64
		var size int64
		o := &op{sync: true, build: func(w *writer) error {
			seq = w.next
			if reuse {
				seq = cur.seq
			}
			env := e.envelope(now)
			env.Seq = seq
			env.Body = &pb.Envelope_Gap{Gap: g}
			payload, err := protocol.Marshal(env)
			if err != nil {
				return err
			}
			for _, v := range chunk {
				w.del(Key{c, v.Seq}, v.Size())
			}
			r := Record{Class: outbox.Control, Seq: seq, ProducedAt: now, Pinned: true, Len: len(payload), Payload: payload}
			if reuse {
				w.replace(r, cur.size)
			} else {
				w.take()
				w.put(r)
			}
			size = r.Size()
			return nil
		}}
		e.submit(o)
		if !o.committed {
			return o.err
		}
		m := &marker{key: key, seq: seq, gap: g, size: size}
		if reuse {
			delete(e.gaps.bySeq, cur.seq)
		}
		e.gaps.open[key] = m
		e.gaps.bySeq[seq] = m
		var lost uint64
		for _, v := range chunk {
			lost += v.samples
		}
		e.countDrops(c, reason, lost)
		if o.err != nil {
			return o.err
		}
	}
	return nil
}

func (e *Engine) countDrops(c outbox.Class, reason outbox.Reason, n uint64) {
	cs := &e.classes[c]
	switch reason {
	case outbox.ReasonQuota:
		cs.droppedQuota.Add(n)
	case outbox.ReasonTTL:
		cs.droppedTTL.Add(n)
	case outbox.ReasonDisk:
		cs.droppedDisk.Add(n)
	}
}

// mergeGap adds dropped records and refusals to g.
func mergeGap(g *pb.Gap, victims []victim, ref refusal) {
	times := ref
	for _, v := range victims {
		times.add(refusal{n: v.samples, firstMs: v.firstAt, lastMs: v.ProducedAt})
	}
	if times.n == 0 {
		return
	}
	if g.Dropped == 0 || times.firstMs < g.FirstAtMs {
		g.FirstAtMs = times.firstMs
	}
	g.LastAtMs = max(g.LastAtMs, times.lastMs)
	g.Dropped += times.n
	if len(victims) == 0 {
		return
	}
	rs := acks.FromProto(g.Seqs)
	for _, v := range victims {
		rs = append(rs, acks.Range{First: v.Seq, Last: v.Seq})
		rs = append(rs, v.covers...)
	}
	g.Seqs = acks.ToProto(acks.Normalize(rs))
}
