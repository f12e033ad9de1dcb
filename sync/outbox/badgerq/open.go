package badgerq

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/internal/engine"
)

// open opens the database and the engine over it, moving a database that
// will not open (or whose records will not load) aside once.
func open(opts Options, cfg outbox.Config) (*engine.Engine, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DiskFree == nil {
		opts.DiskFree = statfsFree
	}
	log := cfg.Logger.With("component", "outbox", "dir", opts.Dir)
	if err := checkUsable(opts.Dir); err != nil {
		return nil, fmt.Errorf("outbox open %s: %w", opts.Dir, err)
	}
	e, err := openGuarded(opts, cfg, log, engine.Options{})
	if err == nil {
		return e, nil
	}
	aside := fmt.Sprintf("%s.corrupt-%d", filepath.Clean(opts.Dir), cfg.Clock.Now().Unix())
	if rerr := os.Rename(opts.Dir, aside); rerr != nil {
		return nil, fmt.Errorf("outbox open %s: %w (moving it aside failed: %v)", opts.Dir, err, rerr)
	}
	log.Error("outbox database unreadable; moved aside, starting empty", "moved_to", aside, "error", err)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox open %s: %w", opts.Dir, err)
	}
	e, ferr := openGuarded(opts, cfg, log, engine.Options{Recovered: aside, RecoveredErr: err})
	if ferr != nil {
		return nil, fmt.Errorf("outbox open %s after moving the unreadable one to %s: %w", opts.Dir, aside, ferr)
	}
	return e, nil
}

// openingMarker counts open attempts that have not finished. Badger
// panics in its own goroutines on some damaged files (a truncated SST),
// which kills the process where no recover can reach; the marker turns
// that crash loop into a recovery: after maxCrashedOpens attempts that
// never finished, the database is treated as unreadable without trying.
const (
	openingMarker   = "SKYEDGE-OPENING"
	maxCrashedOpens = 2
)

// errCrashedOpens is why a database is moved aside after crashed opens.
var errCrashedOpens = errors.New("earlier attempts to open the database crashed")

func openGuarded(opts Options, cfg outbox.Config, log *slog.Logger, eo engine.Options) (*engine.Engine, error) {
	marker := filepath.Join(opts.Dir, openingMarker)
	n := 0
	if b, err := os.ReadFile(marker); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if n >= maxCrashedOpens {
		return nil, fmt.Errorf("%w (%d times)", errCrashedOpens, n)
	}
	if err := writeSynced(marker, []byte(strconv.Itoa(n+1))); err != nil {
		return nil, fmt.Errorf("outbox open %s: %w", opts.Dir, err)
	}
	e, err := openEngine(opts, cfg, log, eo)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(marker); err != nil {
		e.Close()
		return nil, fmt.Errorf("outbox open %s: %w", opts.Dir, err)
	}
	return e, nil
}

// writeSynced writes a small file and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

func openEngine(opts Options, cfg outbox.Config, log *slog.Logger, eo engine.Options) (*engine.Engine, error) {
	db, err := openDB(opts, log)
	if err != nil {
		return nil, err
	}
	return engine.New(newStore(db, opts, cfg.Clock, log), cfg, eo)
}

// openDB opens Badger, turning a panic on a damaged file into an error.
func openDB(opts Options, log *slog.Logger) (db *badger.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("badger panicked opening %s: %v", opts.Dir, p)
		}
	}()
	return badger.Open(badgerOptions(opts, log))
}

// badgerOptions is the edge memory profile: two 8 MB memtables, L0 stalls
// at 4 tables, no block cache (so no compression), 16 MB value-log files,
// values over 1 KB out of the LSM tree, two compactors, no metrics. Writes
// are not synced by Badger; the queue syncs explicitly. Conflict detection
// is off because the queue has a single writer.
func badgerOptions(o Options, log *slog.Logger) badger.Options {
	bo := badger.DefaultOptions(o.Dir).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithCompression(options.None).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		WithSyncWrites(false).
		WithDetectConflicts(false).
		WithLogger(badgerLogger{log.With("component", "badger")})
	return fitTables(bo, strconv.IntSize)
}

// fitTables works around a 32-bit bug in the allocator Badger builds its
// tables in (ristretto's z.Allocator, v2.2.0): when an allocation does not
// fit the allocator's first buffer it moves on to the next one with
// uint64((bufIdx+1)<<32), which is 0 where int has 32 bits, so later
// allocations reuse the first buffer from its start and overwrite the
// table's first blocks. Badger writes the damaged table to disk and the
// next compaction that reads it panics ("slice bounds out of range" in
// table.(*Table).block), or a read returns garbage.
//
// Each table builder takes an allocator whose first buffer is at least
// twice the table size it was created for, and allocators are pooled and
// reused across builders. Flushes build tables of up to a memtable with
// the base table size, compactions of up to each level's target size. So
// on 32-bit every table is given the memtable's size: base tables of
// MemTableSize and a size multiplier of 1. A memtable (at most 15 % over
// its size) or a compaction output (cut at 95 % of its size) then always
// fits in the first buffer, with no value above ValueThreshold to make a
// block outgrow its own buffer. 64-bit platforms keep Badger's defaults.
func fitTables(bo badger.Options, intSize int) badger.Options {
	if intSize != 32 {
		return bo
	}
	bo = bo.WithBaseTableSize(bo.MemTableSize)
	bo.TableSizeMultiplier = 1
	return bo
}

// badgerLogger passes Badger's warnings and errors to slog and drops its
// chatter.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, args ...any) {
	l.log.Error(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (l badgerLogger) Warningf(f string, args ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (l badgerLogger) Infof(string, ...any)  {}
func (l badgerLogger) Debugf(string, ...any) {}

var _ badger.Logger = badgerLogger{}

// probeWrite checks that dir accepts a small synced file.
func probeWrite(dir string) error {
	p := filepath.Join(dir, ".skyedge-probe")
	if err := errors.Join(writeSynced(p, []byte{1}), os.Remove(p)); err != nil {
		return fmt.Errorf("probe write: %w", err)
	}
	return nil
}
