package registry

import (
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

func (r *Registry) write(recs []Node) error {
	wb := r.db.NewWriteBatch()
	defer wb.Cancel()
	for i := range recs {
		v, err := json.Marshal(&recs[i])
		if err != nil {
			return fmt.Errorf("encode node %q: %w", recs[i].ID, err)
		}
		if err := wb.Set([]byte(keyPrefix+recs[i].ID), v); err != nil {
			return fmt.Errorf("write node %q: %w", recs[i].ID, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write %d nodes: %w", len(recs), err)
	}
	return nil
}

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
