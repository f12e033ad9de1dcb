// Package badgerq is the outbox.Queue on disk, in Badger v4 tuned for edge
// nodes: small memtables, no block cache, no compression, 16 MB value-log
// files, no metrics. Telemetry is written without a sync and synced in
// batches (Run, every SyncInterval, and before any of it is handed to a
// drainer); control and event messages are synced before Append returns,
// with concurrent appenders sharing one sync.
//
// Each class's counters are kept in the database with the records, so
// opening it does not read the backlog, and a drained queue has Badger
// drop the deleted records' tombstones and tables (see Store.Reclaim in
// the engine), giving their disk space and mapped memory back.
//
// A disk guard keeps Badger far from ENOSPC, which makes it panic and fail
// again on restart: it treats the disk as full while free space is below
// max(MinFreeBytes, MinFreePercent) or the database above MaxDiskBytes. A
// database that will not open is moved aside to <dir>.corrupt-<unix time>
// and a fresh one started, with an "outbox.corrupt" alarm queued in it.
//
// On 32-bit platforms every table is a memtable's size, which keeps Badger
// clear of a 32-bit bug in the allocator it builds tables in (see
// fitTables), and the database is capped at 512 MB.
package badgerq

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/internal/engine"
)

// Options are the Badger queue's storage settings.
type Options struct {
	// Dir is the database directory, created if missing.
	Dir string
	// DiskFree reports the free and total bytes of the file system
	// holding path; nil means statfs.
	DiskFree func(path string) (free, total uint64, err error)
	// The disk is treated as full while free space is below the larger
	// of MinFreeBytes and MinFreePercent of its size, and as nearly full
	// below twice that.
	MinFreeBytes   uint64
	MinFreePercent float64
	// MaxDiskBytes caps the database's own size on disk (nearly full at
	// 80 %).
	MaxDiskBytes int64
	// GCInterval is how often Run collects value-log garbage.
	GCInterval time.Duration
	// MemTableSize and ValueLogFileSize size Badger's files.
	MemTableSize     int64
	ValueLogFileSize int64
}

// Limits of 32-bit platforms, where Badger mmaps every file into a 4 GB
// address space.
const (
	maxDiskBytes32    = 512 << 20
	valueLogFileMax32 = 4 << 20
)

// DefaultOptions returns the edge profile for dir: keep at least 64 MiB
// and 5 % of the disk free, the database under 256 MiB, value-log GC every
// 5 minutes, 8 MB memtables and 16 MB value-log files.
func DefaultOptions(dir string) Options {
	return Options{
		Dir:              dir,
		MinFreeBytes:     64 << 20,
		MinFreePercent:   5,
		MaxDiskBytes:     256 << 20,
		GCInterval:       5 * time.Minute,
		MemTableSize:     8 << 20,
		ValueLogFileSize: 16 << 20,
	}
}

// Validate reports the first rule o breaks.
func (o Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("badgerq options: empty directory")
	case o.MinFreePercent < 0 || o.MinFreePercent >= 100:
		return fmt.Errorf("badgerq options: min free percent %v, want 0..100", o.MinFreePercent)
	case o.MaxDiskBytes <= 0:
		return fmt.Errorf("badgerq options: max disk bytes %d, want > 0", o.MaxDiskBytes)
	case o.GCInterval <= 0:
		return fmt.Errorf("badgerq options: GC interval %v, want > 0", o.GCInterval)
	case o.MemTableSize < 4<<20:
		// Smaller memtables cap transactions below what one compaction
		// or drop must write atomically.
		return fmt.Errorf("badgerq options: memtable size %d, want >= 4 MiB", o.MemTableSize)
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 1<<30:
		return fmt.Errorf("badgerq options: value-log file size %d, want 1 MiB..1 GiB", o.ValueLogFileSize)
	}
	return nil
}

// Queue is an outbox.Queue stored in Badger.
type Queue struct {
	*engine.Engine
}

var _ outbox.Queue = (*Queue)(nil)

// Open opens or creates the queue in opts.Dir. When the database there
// cannot be opened it is moved aside and a fresh one is used; State().
// Recovered then names where it went.
func Open(opts Options, cfg outbox.Config) (*Queue, error) {
	opts, cfg = fitPlatform(opts, cfg, strconv.IntSize)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e, err := open(opts, cfg)
	if err != nil {
		return nil, err
	}
	return &Queue{e}, nil
}

// fitPlatform caps a 32-bit node's database at 512 MB: smaller value-log
// files, the disk cap, and the class quotas scaled down to fit under it.
func fitPlatform(opts Options, cfg outbox.Config, intSize int) (Options, outbox.Config) {
	if intSize != 32 {
		return opts, cfg
	}
	opts.ValueLogFileSize = min(opts.ValueLogFileSize, valueLogFileMax32)
	opts.MaxDiskBytes = min(opts.MaxDiskBytes, maxDiskBytes32)
	var total int64
	for _, p := range cfg.Policies {
		total += p.Quota
	}
	// Quotas count logical bytes; leave half the cap for Badger's own
	// overhead (memtables, tombstones until compaction, value-log space).
	if limit := opts.MaxDiskBytes / 2; total > limit {
		for c := range cfg.Policies {
			cfg.Policies[c].Quota = max(cfg.Policies[c].Quota*limit/total, 1)
		}
	}
	return opts, cfg
}
