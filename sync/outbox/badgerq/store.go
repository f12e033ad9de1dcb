package badgerq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/internal/engine"
)

// Layout. Records: 'q' class seq(8, big-endian) -> flags(1) producedAt(8,
// big-endian Unix ms) payload, so one class in sequence order is a prefix
// scan. The next sequence number: "m/next" -> uint64 big-endian. The class
// figures (engine.ClassFigures): "m/classes" -> a format byte, then per
// class count, bytes, first, last and oldest as varints. Both are written
// in every transaction that writes records, from the figures after its
// last part, so they always agree with the records. The sequence space's
// ID: "m/id" -> the ID, written when the database is created. Every scan
// is bound to the record prefix of one class: other keys in the database
// (the local key-value area) are never read as records.
const (
	recordPrefix = 'q'
	keyLen       = 10
	headerLen    = 9
	flagPinned   = 1 << 0
	flagSummary  = 1 << 1
	gcDiscard    = 0.5 // rewrite a value-log file when half of it is garbage
	figuresV1    = 1
)

var (
	nextKey    = []byte("m/next")
	figuresKey = []byte("m/classes")
	// idKey holds the ID of the sequence space, written once when the
	// database is created.
	idKey = []byte("m/id")
)

func recordKey(c outbox.Class, seq uint64) []byte {
	k := make([]byte, keyLen)
	k[0], k[1] = recordPrefix, byte(c)
	binary.BigEndian.PutUint64(k[2:], seq)
	return k
}

func recordValue(r engine.Record) []byte {
	v := make([]byte, headerLen+len(r.Payload))
	if r.Pinned {
		v[0] |= flagPinned
	}
	if r.Summary {
		v[0] |= flagSummary
	}
	binary.BigEndian.PutUint64(v[1:], uint64(r.ProducedAt))
	copy(v[headerLen:], r.Payload)
	return v
}

// store is the engine.Store over Badger.
type store struct {
	db     *badger.DB
	opts   Options
	clk    clock.Clock
	log    *slog.Logger
	lastGC time.Time // Housekeep only (Run's goroutine)
	// freeAt is when Housekeep returns the heap freed by the last
	// Reclaim to the OS (Unix ns); 0 when nothing is due.
	freeAt atomic.Int64
	// Transaction limits, well inside Badger's (15 % of a memtable).
	maxTxnEntries int
	maxTxnBytes   int64
}

func newStore(db *badger.DB, opts Options, clk clock.Clock, log *slog.Logger) *store {
	maxBytes := opts.MemTableSize * 15 / 100 / 2
	return &store{
		db:            db,
		opts:          opts,
		clk:           clk,
		log:           log,
		lastGC:        clk.Now(),
		maxTxnBytes:   maxBytes,
		maxTxnEntries: int(maxBytes / 128),
	}
}

// LoadFigures implements engine.Store. The figures count only when they
// were written by the same transaction as the next sequence number: a
// version of the queue that predates them writes the number alone with
// every commit, so a database it wrote to since is counted again.
func (s *store) LoadFigures() (engine.Figures, bool, error) {
	var f engine.Figures
	ok := false
	err := s.db.View(func(txn *badger.Txn) error {
		v, nextVersion, err := get(txn, nextKey)
		switch {
		case err != nil:
			return err
		case v == nil:
		case len(v) != 8:
			return fmt.Errorf("next sequence number of %d bytes", len(v))
		default:
			f.Next = binary.BigEndian.Uint64(v)
		}
		v, version, err := get(txn, figuresKey)
		if err != nil || v == nil || version != nextVersion {
			return err
		}
		if err := decodeFigures(v, &f); err != nil {
			// Counting the records again repairs them.
			s.log.Warn("outbox class figures unreadable", "error", err)
			return nil
		}
		ok = true
		return nil
	})
	return f, ok, err
}

// get returns a copy of key's value and the version (commit timestamp)
// that wrote it; nil if there is none.
func get(txn *badger.Txn, key []byte) ([]byte, uint64, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	v, err := it.ValueCopy(nil)
	return v, it.Version(), err
}

func encodeFigures(f engine.Figures) []byte {
	b := make([]byte, 1, 1+len(f.Classes)*5*binary.MaxVarintLen64)
	b[0] = figuresV1
	for _, c := range f.Classes {
		b = binary.AppendVarint(b, c.Count)
		b = binary.AppendVarint(b, c.Bytes)
		b = binary.AppendUvarint(b, c.First)
		b = binary.AppendUvarint(b, c.Last)
		b = binary.AppendVarint(b, c.Oldest)
	}
	return b
}

func decodeFigures(b []byte, f *engine.Figures) error {
	if len(b) == 0 || b[0] != figuresV1 {
		return fmt.Errorf("class figures: unknown format %x", b[:min(len(b), 1)])
	}
	b = b[1:]
	bad := false
	varint := func() int64 {
		v, n := binary.Varint(b)
		bad = bad || n <= 0
		b = b[max(n, 0):]
		return v
	}
	uvarint := func() uint64 {
		v, n := binary.Uvarint(b)
		bad = bad || n <= 0
		b = b[max(n, 0):]
		return v
	}
	for c := range f.Classes {
		f.Classes[c] = engine.ClassFigures{Count: varint(), Bytes: varint(), First: uvarint(), Last: uvarint(), Oldest: varint()}
	}
	if bad || len(b) != 0 {
		return errors.New("class figures: malformed")
	}
	return nil
}

// LoadID implements engine.Store.
func (s *store) LoadID() (string, error) {
	var id string
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(idKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			id = string(v)
			return nil
		})
	})
	return id, err
}

// SaveID implements engine.Store; the ID is synced at once.
func (s *store) SaveID(id string) error {
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(idKey, []byte(id)) })
	if err != nil {
		return err
	}
	return s.db.Sync()
}

// Commit implements engine.Store. Parts are packed into as few
// transactions as Badger's limits allow, never splitting a part, each
// with the figures after its last part.
func (s *store) Commit(parts []engine.Part) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	// The figures of the transaction's last part, written at its end.
	const figuresCost = 2*(keyLen+16) + 8 + 1 + 15*binary.MaxVarintLen64
	var after *engine.Figures
	entries, bytes := 2, int64(figuresCost)
	for i := range parts {
		p := &parts[i]
		n, b := len(p.Puts)+len(p.Dels), int64(len(p.Dels))*(keyLen+16)
		for _, r := range p.Puts {
			b += keyLen + headerLen + 16 + int64(min(len(r.Payload), 1<<10))
		}
		if after != nil && (entries+n > s.maxTxnEntries || bytes+b > s.maxTxnBytes) {
			if err := commitWith(txn, after); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			entries, bytes = 2, figuresCost
		}
		for _, r := range p.Puts {
			if err := txn.Set(recordKey(r.Class, r.Seq), recordValue(r)); err != nil {
				return fmt.Errorf("put %s seq %d: %w", r.Class, r.Seq, err)
			}
		}
		for _, k := range p.Dels {
			if err := txn.Delete(recordKey(k.Class, k.Seq)); err != nil {
				return fmt.Errorf("delete %s seq %d: %w", k.Class, k.Seq, err)
			}
		}
		entries, bytes, after = entries+n, bytes+b, &p.After
	}
	if after == nil {
		return nil
	}
	return commitWith(txn, after)
}

// commitWith writes the figures f into txn and commits it.
func commitWith(txn *badger.Txn, f *engine.Figures) error {
	var nb [8]byte
	binary.BigEndian.PutUint64(nb[:], f.Next)
	if err := txn.Set(nextKey, nb[:]); err != nil {
		return fmt.Errorf("put next sequence number: %w", err)
	}
	if err := txn.Set(figuresKey, encodeFigures(*f)); err != nil {
		return fmt.Errorf("put class figures: %w", err)
	}
	return txn.Commit()
}

// Sync implements engine.Store.
func (s *store) Sync() error { return s.db.Sync() }

// Scan implements engine.Store.
func (s *store) Scan(c outbox.Class, from uint64, values bool, fn func(engine.Record) bool) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{recordPrefix, byte(c)}})
		defer it.Close()
		for it.Seek(recordKey(c, from)); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != keyLen {
				return fmt.Errorf("record key %x of %d bytes", k, len(k))
			}
			r := engine.Record{Class: c, Seq: binary.BigEndian.Uint64(k[2:])}
			err := item.Value(func(v []byte) error {
				if len(v) < headerLen {
					return fmt.Errorf("record %s seq %d: value of %d bytes", c, r.Seq, len(v))
				}
				r.Pinned = v[0]&flagPinned != 0
				r.Summary = v[0]&flagSummary != 0
				r.ProducedAt = int64(binary.BigEndian.Uint64(v[1:]))
				r.Len = len(v) - headerLen
				if values {
					r.Payload = append([]byte(nil), v[headerLen:]...)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !fn(r) {
				return nil
			}
		}
		return nil
	})
}

// Last implements engine.Store.
func (s *store) Last(c outbox.Class) (uint64, error) {
	var last uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{recordPrefix, byte(c)}, Reverse: true})
		defer it.Close()
		it.Seek(recordKey(c, ^uint64(0)))
		if it.Valid() {
			last = binary.BigEndian.Uint64(it.Item().Key()[2:])
		}
		return nil
	})
	return last, err
}

// Housekeep implements engine.Store: value-log GC every GCInterval, and
// the heap a Reclaim freed given back once it is garbage.
func (s *store) Housekeep(ctx context.Context) error {
	now := s.clk.Now()
	s.freeMemoryIfDue(now)
	if now.Sub(s.lastGC) < s.opts.GCInterval {
		return nil
	}
	s.lastGC = now
	return s.collectValueLog(ctx)
}

// collectValueLog rewrites value-log files until none is worth it.
func (s *store) collectValueLog(ctx context.Context) error {
	for ctx.Err() == nil {
		err := s.db.RunValueLogGC(gcDiscard)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("value-log GC: %w", err)
		}
	}
	return nil
}

// Close implements engine.Store.
func (s *store) Close() error { return s.db.Close() }
