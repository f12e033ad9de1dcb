package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Run flushes dirty records every flush interval until ctx is cancelled,
// then flushes a last time. Cancel it only after everything that updates
// the registry has stopped.
func (r *Registry) Run(ctx context.Context) error {
	t := r.clk.NewTicker(r.every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			if err := r.Flush(); err != nil {
				return fmt.Errorf("registry final flush: %w", err)
			}
			return nil
		case <-t.C():
		}
		// A failing store is logged when it starts and when it recovers,
		// not on every tick; the records stay dirty and are retried.
		switch err := r.Flush(); {
		case err != nil && !failing:
			failing = true
			r.log.Error("registry flush failed; retrying every interval", "error", err)
		case err == nil && failing:
			failing = false
			r.log.Info("registry flush recovered")
		}
	}
}

// Flush writes every dirty record now, then hands the applied sets it
// made durable to Config.Durable. On failure the records stay dirty and
// what the nodes are owed stays owed.
func (r *Registry) Flush() error {
	start := time.Now()
	var ids []string
	var recs []Node
	var owed []Durable
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for id := range s.dirty {
			n := s.nodes[id]
			n.materialize()
			ids = append(ids, id)
			recs = append(recs, *n)
			if a := &n.applied; a.ackDue || a.welcomeDue {
				owed = append(owed, Durable{Node: id, Applied: n.Applied, Ack: a.ackDue, Welcome: a.welcomeDue})
				a.ackDue, a.welcomeDue = false, false
			}
		}
		clear(s.dirty)
		s.mu.Unlock()
	}
	if len(ids) == 0 {
		return nil
	}
	if err := r.write(recs); err != nil {
		r.remark(ids, owed)
		return err
	}
	if r.observe != nil {
		r.observe(time.Since(start))
	}
	if r.durable != nil && len(owed) > 0 {
		r.durable(owed)
	}
	return nil
}

// write stores recs in one batch. The records are encoded one after the
// other into the registry's arena, which Badger reads until the batch is
// committed and the next write reuses, so that a flush of thousands of
// nodes allocates no buffer per node once the arena has grown.
func (r *Registry) write(recs []Node) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	wb := r.db.NewWriteBatch()
	defer wb.Cancel()
	a := &r.arena
	a.Reset()
	enc := json.NewEncoder(a)
	enc.SetEscapeHTML(false)
	type span struct{ key, val [2]int }
	spans := make([]span, len(recs))
	for i := range recs {
		var sp span
		sp.key[0] = a.Len()
		a.WriteString(keyPrefix)
		a.WriteString(recs[i].ID)
		sp.key[1], sp.val[0] = a.Len(), a.Len()
		if err := enc.Encode(&recs[i]); err != nil {
			return fmt.Errorf("encode node %q: %w", recs[i].ID, err)
		}
		sp.val[1] = a.Len() - 1 // without Encode's newline
		spans[i] = sp
	}
	// Only now is the arena's final backing array known.
	b := a.Bytes()
	for i, sp := range spans {
		if err := wb.Set(b[sp.key[0]:sp.key[1]:sp.key[1]], b[sp.val[0]:sp.val[1]:sp.val[1]]); err != nil {
			return fmt.Errorf("write node %q: %w", recs[i].ID, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write %d nodes: %w", len(recs), err)
	}
	if a.Cap() > maxArena {
		*a = bytes.Buffer{} // a burst's worth is not kept
	}
	return nil
}

// maxArena is the largest encoding arena kept between writes.
const maxArena = 16 << 20

// remark marks ids dirty again after a failed write, and owed as still
// owed.
func (r *Registry) remark(ids []string, owed []Durable) {
	for _, id := range ids {
		s := r.shard(id)
		s.mu.Lock()
		s.dirty[id] = struct{}{}
		s.mu.Unlock()
	}
	for _, d := range owed {
		s := r.shard(d.Node)
		s.mu.Lock()
		if n := s.nodes[d.Node]; n != nil {
			n.applied.ackDue = n.applied.ackDue || d.Ack
			n.applied.welcomeDue = n.applied.welcomeDue || d.Welcome
		}
		s.mu.Unlock()
	}
}

// load reads every stored record into memory.
func (r *Registry) load() error {
	err := r.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(keyPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			n := new(Node)
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, n) }); err != nil {
				// One bad record must not keep the bridge from starting;
				// the node's next hello recreates it.
				r.log.Error("skipping unreadable node record", "key", string(item.Key()), "error", err)
				continue
			}
			id := string(item.Key()[len(keyPrefix):])
			n.ID = id
			if len(n.Applied.Ranges) == 0 {
				n.Applied.Ranges = nil
			}
			r.shard(id).nodes[id] = n
			if n.Online {
				r.online.Add(1)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load registry: %w", err)
	}
	return nil
}
