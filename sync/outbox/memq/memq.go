// Package memq is the in-memory outbox.Queue: the same policies as the
// Badger queue (sequence numbers, quotas, compaction, TTL, gap markers),
// with nothing surviving the process. It serves tests and a RAM-only mode
// for nodes without writable storage.
package memq

import (
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/internal/engine"
)

// Queue is an in-memory outbox.Queue.
type Queue struct {
	*engine.Engine
}

var _ outbox.Queue = (*Queue)(nil)

// Open returns an empty queue configured by cfg.
func Open(cfg outbox.Config) (*Queue, error) {
	e, err := engine.New(engine.NewMemStore(), cfg, engine.Options{})
	if err != nil {
		return nil, err
	}
	return &Queue{e}, nil
}
