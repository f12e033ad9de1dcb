package badgerq

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// reclaimKey is the scratch key Reclaim writes so that DropPrefix has
// something to drop: it is what makes Badger flush its memtables.
var reclaimKey = []byte("m/reclaim")

// Reclaim implements engine.Store: after a drain, the deleted records are
// tombstones in the memtables over table files full of dead data, all of
// it still on disk and mapped (resident) until Badger compacts it, which
// at rest it may never do. Reclaim
//
//   - flushes the memtables (DropPrefix of a scratch key, the only way
//     Badger offers; it blocks writes, which the engine holds off),
//   - compacts every level into the last (Flatten), where tombstones and
//     what they delete are dropped, and the old tables unmapped and
//     removed,
//   - and rewrites value-log files that are now mostly garbage.
//
// Its cost is reading what the tables still hold, mostly dead: 1 to 2 s
// for a drained backlog of a million reports on two cores.
func (s *store) Reclaim(ctx context.Context) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(reclaimKey, nil) }); err != nil {
		return fmt.Errorf("reclaim: %w", err)
	}
	if err := s.db.DropPrefix(reclaimKey); err != nil {
		return fmt.Errorf("reclaim: flush memtables: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.Flatten(1); err != nil {
		return fmt.Errorf("reclaim: compact: %w", err)
	}
	s.freeAt.Store(s.clk.Now().Add(freeDelay).UnixNano())
	return s.collectValueLog(ctx)
}

// freeDelay is how long after a Reclaim the heap it freed is given back to
// the OS: Badger keeps up to 8 table builders' buffers (a memtable's size
// or twice a table's, each) in a pool that lets one go every 2 s once
// idle, and they are garbage only then.
const freeDelay = 30 * time.Second

// freeMemoryIfDue returns the freed heap to the OS once freeDelay after a
// Reclaim. A drain leaves a heap several times the agent's steady size,
// which the runtime's scavenger gives back only slowly; this is one GC
// and a scavenge, once per drained backlog.
func (s *store) freeMemoryIfDue(now time.Time) {
	at := s.freeAt.Load()
	if at == 0 || now.UnixNano() < at || !s.freeAt.CompareAndSwap(at, 0) {
		return
	}
	debug.FreeOSMemory()
}
