// Package engine implements outbox.Queue over a small Store interface, so
// that the Badger and in-memory queues share one implementation of the
// policies (sequence numbers, quotas, compaction, TTL, gap markers, acks)
// and differ only in where records live.
package engine

import (
	"context"

	"github.com/skyedge/skyedge/sync/outbox"
)

// RecordOverhead is what a record costs beyond its payload: the key (a
// prefix byte, the class and the sequence number) and the value header (a
// flags byte and the production time) in badgerq's layout. Quotas count it
// for every store so that all implementations make the same decisions.
const RecordOverhead = 19

// Record is one stored message.
type Record struct {
	Class      outbox.Class
	Seq        uint64
	ProducedAt int64 // Unix milliseconds
	// Pinned records (gap markers) are never expired or dropped: losing
	// one would leave the cloud unable to settle the hole it describes.
	Pinned bool
	// Summary marks a TelemetrySummary, whose covers must be read before
	// it is dropped.
	Summary bool
	// Len is the payload length, set even when Payload is not loaded.
	Len int
	// Payload is the marshalled envelope; nil when a scan did not ask for
	// values. Never modified once written.
	Payload []byte
}

// Size is what the record counts against its class's quota.
func (r Record) Size() int64 { return RecordOverhead + int64(r.Len) }

// Key names a record.
type Key struct {
	Class outbox.Class
	Seq   uint64
}

// Part is a set of writes that must be applied atomically: a summary and
// the reports it replaces, or dropped messages and their gap marker.
type Part struct {
	Puts []Record // a put with an existing key replaces the record
	Dels []Key
	// After are the store's figures once this part and those before it
	// are applied; the store persists them atomically with the part (with
	// the last part of each transaction, when it packs several).
	After Figures
}

// Figures are what a store keeps beside its records so that opening it
// needs no scan of them: the next sequence number and each class's
// counters.
type Figures struct {
	Next    uint64
	Classes [outbox.NumClasses]ClassFigures
}

// ClassFigures are a class's persisted counters. Count and Bytes are
// exact. First and Last are bounds (First at most the lowest sequence
// number held, Last at least the highest): puts move them exactly,
// deletes only with the next commit after the engine re-read them, and
// the engine refines both with a seek when it loads them. Oldest is at
// most the production time (Unix ms) of every unpinned record, 0 when the
// class holds none. All are 0 when Count is.
type ClassFigures struct {
	Count, Bytes int64
	First, Last  uint64
	Oldest       int64
}

// Store is where a queue's records live.
type Store interface {
	// LoadFigures returns the figures persisted with the last commit;
	// ok is false when there are none (a new store, or one written before
	// figures were kept), and the engine then rebuilds them with a scan.
	LoadFigures() (f Figures, ok bool, err error)
	// LoadID returns the persisted ID of the store's sequence space, ""
	// if none.
	LoadID() (string, error)
	// SaveID persists id durably.
	SaveID(id string) error
	// Commit applies parts in order, each atomically with its After
	// figures. A part may have no puts or deletes, only figures. It does
	// not sync.
	Commit(parts []Part) error
	// Sync makes every committed write durable.
	Sync() error
	// Scan calls fn for the records of class c with Seq >= from in
	// ascending order until fn returns false. Payloads are loaded only
	// when values is true. fn must not call into the store.
	Scan(c outbox.Class, from uint64, values bool, fn func(Record) bool) error
	// Last returns the highest sequence number of class c, 0 when empty.
	Last(c outbox.Class) (uint64, error)
	// Pressure reports the disk guard's verdict and the bytes on disk.
	Pressure() (outbox.Pressure, int64, error)
	// Housekeep does periodic storage work such as value-log GC.
	Housekeep(ctx context.Context) error
	// Reclaim returns the disk space and memory that deleted records
	// still hold (tombstones, pages of dropped tables). The engine calls
	// it when the queue has emptied after many deletes, with every write
	// held off (commits and UseStore callers), so it may block writes.
	Reclaim(ctx context.Context) error
	// Close releases the store.
	Close() error
}
