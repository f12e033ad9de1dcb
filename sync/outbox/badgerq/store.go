package badgerq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/internal/engine"
)

// Layout. Records: 'q' class seq(8, big-endian) -> flags(1) producedAt(8,
// big-endian Unix ms) payload, so one class in sequence order is a prefix
// scan. The next sequence number: "m/next" -> uint64 big-endian, written
// in the same transaction as the records that used the numbers before it.
// The sequence space's ID: "m/id" -> the ID, written when the database is
// created.
const (
	recordPrefix = 'q'
	keyLen       = 10
	headerLen    = 9
	flagPinned   = 1 << 0
	flagSummary  = 1 << 1
	gcDiscard    = 0.5 // rewrite a value-log file when half of it is garbage
)

var (
	nextKey = []byte("m/next")
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

// LoadNext implements engine.Store.
func (s *store) LoadNext() (uint64, error) {
	var next uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(nextKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("next sequence number of %d bytes", len(v))
			}
			next = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	return next, err
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
// transactions as Badger's limits allow, never splitting a part.
func (s *store) Commit(parts []engine.Part, next uint64) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	entries, bytes := 0, int64(0)
	for _, p := range parts {
		n, b := len(p.Puts)+len(p.Dels), int64(len(p.Dels))*(keyLen+16)
		for _, r := range p.Puts {
			b += keyLen + headerLen + 16 + int64(min(len(r.Payload), 1<<10))
		}
		if entries > 0 && (entries+n+1 > s.maxTxnEntries || bytes+b > s.maxTxnBytes) {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			entries, bytes = 0, 0
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
		entries, bytes = entries+n, bytes+b
	}
	var nb [8]byte
	binary.BigEndian.PutUint64(nb[:], next)
	if err := txn.Set(nextKey, nb[:]); err != nil {
		return fmt.Errorf("put next sequence number: %w", err)
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

// Housekeep implements engine.Store: value-log GC every GCInterval, each
// pass rewriting files until none is worth it.
func (s *store) Housekeep(ctx context.Context) error {
	now := s.clk.Now()
	if now.Sub(s.lastGC) < s.opts.GCInterval {
		return nil
	}
	s.lastGC = now
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
