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

// Flush writes every dirty record now. On failure the records stay dirty.
func (r *Registry) Flush() error {
	start := time.Now()
	var ids []string
	var recs []Node
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for id := range s.dirty {
			n := s.nodes[id]
			n.materialize()
			ids = append(ids, id)
			recs = append(recs, *n)
		}
		clear(s.dirty)
		s.mu.Unlock()
	}
	if len(ids) == 0 {
		return nil
	}
	if err := r.write(recs); err != nil {
		r.remark(ids)
		return err
	}
	if r.observe != nil {
		r.observe(time.Since(start))
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

func (r *Registry) remark(ids []string) {
	for _, id := range ids {
		s := r.shard(id)
		s.mu.Lock()
		s.dirty[id] = struct{}{}
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
