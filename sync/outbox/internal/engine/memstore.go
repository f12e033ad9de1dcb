package engine

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"

	"github.com/skyedge/skyedge/sync/outbox"
)

// MemStore keeps records in memory, sorted by sequence number per class.
// Nothing survives the process; quotas bound its size.
type MemStore struct {
	mu      sync.RWMutex // guards the fields below
	classes [outbox.NumClasses][]Record
	figures Figures
	saved   bool // figures were committed
	id      string
	closed  bool
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{} }

var errStoreClosed = errors.New("store closed")

// LoadFigures implements Store.
func (s *MemStore) LoadFigures() (Figures, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.figures, s.saved, nil
}

// LoadID implements Store.
func (s *MemStore) LoadID() (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.id, nil
}

// SaveID implements Store.
func (s *MemStore) SaveID(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	s.id = id
	return nil
}

// Commit implements Store; parts are applied under one lock, so each is
// atomic to readers.
func (s *MemStore) Commit(parts []Part) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	for _, p := range parts {
		for _, r := range p.Puts {
			s.putLocked(r)
		}
		s.deleteLocked(p.Dels)
		s.figures, s.saved = p.After, true
	}
	return nil
}

func (s *MemStore) putLocked(r Record) {
	recs := s.classes[r.Class]
	if n := len(recs); n == 0 || recs[n-1].Seq < r.Seq {
		s.classes[r.Class] = append(recs, r)
		return
	}
	i := sort.Search(len(recs), func(i int) bool { return recs[i].Seq >= r.Seq })
	if i < len(recs) && recs[i].Seq == r.Seq {
		recs[i] = r
		return
	}
	s.classes[r.Class] = slices.Insert(recs, i, r)
}

func (s *MemStore) deleteLocked(keys []Key) {
	if len(keys) == 0 {
		return
	}
	var del [outbox.NumClasses]map[uint64]bool
	for _, k := range keys {
		if del[k.Class] == nil {
			del[k.Class] = map[uint64]bool{}
		}
		del[k.Class][k.Seq] = true
	}
	for c, set := range del {
		if set != nil {
			// Clear the tail so deleted payloads can be collected.
			recs := s.classes[c]
			kept := slices.DeleteFunc(recs, func(r Record) bool { return set[r.Seq] })
			clear(recs[len(kept):])
			s.classes[c] = kept
		}
	}
}

// Sync implements Store; memory has nothing to sync.
func (s *MemStore) Sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errStoreClosed
	}
	return nil
}

// Scan implements Store.
func (s *MemStore) Scan(c outbox.Class, from uint64, values bool, fn func(Record) bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errStoreClosed
	}
	recs := s.classes[c]
	i := sort.Search(len(recs), func(i int) bool { return recs[i].Seq >= from })
	for _, r := range recs[i:] {
		if !values {
			r.Payload = nil
		}
		if !fn(r) {
			break
		}
	}
	return nil
}

// Last implements Store.
func (s *MemStore) Last(c outbox.Class) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if n := len(s.classes[c]); n > 0 {
		return s.classes[c][n-1].Seq, nil
	}
	return 0, nil
}

// Pressure implements Store: memory is bounded by the quotas alone.
func (s *MemStore) Pressure() (outbox.Pressure, int64, error) { return outbox.PressureNone, 0, nil }

// Housekeep implements Store; there is nothing to do.
func (s *MemStore) Housekeep(context.Context) error { return nil }

// Reclaim implements Store; deleted records are already garbage for the
// Go collector.
func (s *MemStore) Reclaim(context.Context) error { return nil }

// Close implements Store.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.classes = [outbox.NumClasses][]Record{}
	return nil
}
