// Package store opens the bridge's embedded Badger database and keeps its
// value log tidy. The bridge holds little data (one record of a few KiB
// per node, rewritten every few seconds), so the options trade Badger's
// 64 MiB-memtable, 256 MiB-cache defaults for figures sized to that load
// while still leaving room for a 10,000-node fleet.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/skyedge/skyedge/internal/clock"
)

// GCInterval is how often the value log is garbage-collected.
const GCInterval = 10 * time.Minute

// Options are the Badger options the bridge uses for dir.
func Options(dir string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(slogLogger{log}).
		// Two memtables of 16 MiB absorb minutes of registry writes; the
		// defaults (5 x 64 MiB) would hold 320 MiB for no benefit.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(10).
		WithBaseTableSize(4 << 20).
		WithBaseLevelSize(32 << 20).
		WithNumCompactors(2).
		// Records are small and rewritten often: keep them in the LSM tree
		// (compaction drops old versions) instead of the value log, which
		// only garbage collection can shrink.
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(128 << 20).
		// Snappy blocks need a block cache; 32 MiB holds the whole registry
		// of a large fleet.
		WithCompression(options.Snappy).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		// Badger's metrics go to the process-global expvar; the bridge
		// exports its own.
		WithMetricsEnabled(false).
		// The registry writes with WriteBatch only; no transactions to
		// check for conflicts.
		WithDetectConflicts(false).
		// Writes are already batched by the registry's write-behind; a
		// crash loses at most the last flush interval, which the next
		// report of each node restores.
		WithSyncWrites(false)
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, log *slog.Logger) (*badger.DB, error) {
	db, err := badger.Open(Options(dir, log.With("component", "badger")))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return db, nil
}

// RunGC garbage-collects the value log of db every GCInterval until ctx is
// cancelled.
func RunGC(ctx context.Context, db *badger.DB, clk clock.Clock, log *slog.Logger) error {
	t := clk.NewTicker(GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		for i := 0; i < 16; i++ { // bounded: one pass rewrites at most one file
			err := db.RunValueLogGC(0.5)
			if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
				break
			}
			if err != nil {
				log.Warn("value log garbage collection failed", "error", err)
				break
			}
		}
	}
}

// slogLogger adapts slog to Badger's logger. Badger's info and debug
// output (compaction progress, table counts) is dropped; warnings and
// errors are kept.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Errorf(f string, args ...any) {
	s.l.Error(trim(fmt.Sprintf(f, args...)))
}

func (s slogLogger) Warningf(f string, args ...any) {
	s.l.Warn(trim(fmt.Sprintf(f, args...)))
}

func (slogLogger) Infof(string, ...any)  {}
func (slogLogger) Debugf(string, ...any) {}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
