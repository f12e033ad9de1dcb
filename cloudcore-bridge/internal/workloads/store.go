// Package workloads is the bridge's durable record of workloads: the
// workloads applied through the API, the copies the controller placed,
// each node's versioned desired set (sync/desired) with the generation the
// node acknowledged, the latest status of every (workload, node) pair, and
// a bounded residency audit log of placement decisions.
//
// Everything lives in memory, which is authoritative for reads, and in
// the bridge's Badger store under the "workloads/" prefix. Every change is
// made in a transaction (Update) that writes what it changed before it
// touches memory: when Update returns nil the change is on disk, so a
// desired set is always stored before its node is told about it, and a
// status is stored before the registry flush that acknowledges it. A
// failed write changes nothing, in memory or on disk.
package workloads

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/internal/clock"
)

// Key prefixes in the store.
const (
	prefix       = "workloads/"
	prefixWork   = prefix + "w/"
	prefixCopy   = prefix + "c/"
	prefixNode   = prefix + "n/"
	prefixStatus = prefix + "s/"
	prefixAudit  = prefix + "a/"
)

// DefaultAuditLimit is how many placement records the audit log keeps.
const DefaultAuditLimit = 10000

// Config configures a Store.
type Config struct {
	DB     *badger.DB
	Logger *slog.Logger
	Clock  clock.Clock
	// AuditLimit bounds the audit log (DefaultAuditLimit when 0).
	AuditLimit int
}

// Store is the workload record. It is safe for concurrent use.
type Store struct {
	db    *badger.DB
	log   *slog.Logger
	clk   clock.Clock
	limit int

	mu         sync.Mutex // guards the fields below
	workloads  map[string]*Workload
	copies     map[string]*Copy
	byWorkload map[string]map[string]bool // workload -> copy IDs
	nodes      map[string]*NodeState
	statuses   map[statusKey]*Status
	audit      []auditEntry // oldest first
	auditNext  uint64
}

type statusKey struct{ workload, node string }

type auditEntry struct {
	seq uint64
	rec apiv1.PlacementRecord
}

// Open loads the workload record stored in cfg.DB.
func Open(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("workloads: no database")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.AuditLimit <= 0 {
		cfg.AuditLimit = DefaultAuditLimit
	}
	s := &Store{
		db: cfg.DB, log: cfg.Logger.With("component", "workloads"), clk: cfg.Clock, limit: cfg.AuditLimit,
		workloads: map[string]*Workload{}, copies: map[string]*Copy{}, byWorkload: map[string]map[string]bool{},
		nodes: map[string]*NodeState{}, statuses: map[statusKey]*Status{}, auditNext: 1,
	}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("load workloads: %w", err)
	}
	return s, nil
}

// load reads every record. An unreadable record is logged and skipped: a
// workload is applied again, a node's set is rebuilt from the copies.
func (s *Store) load() error {
	var stale [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := string(item.Key())
			err := item.Value(func(v []byte) error { return s.loadOne(key, v) })
			if err != nil {
				s.log.Error("skipping unreadable workload record", "key", key, "error", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(s.audit, func(a, b auditEntry) int { return cmp.Compare(a.seq, b.seq) })
	if n := len(s.audit); n > 0 {
		s.auditNext = s.audit[n-1].seq + 1
	}
	for len(s.audit) > s.limit {
		stale = append(stale, auditKey(s.audit[0].seq))
		s.audit = s.audit[1:]
	}
	if len(stale) > 0 {
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		for _, k := range stale {
			if err := wb.Delete(k); err != nil {
				return err
			}
		}
		return wb.Flush()
	}
	return nil
}

func (s *Store) loadOne(key string, v []byte) error {
	switch {
	case strings.HasPrefix(key, prefixWork):
		w := new(Workload)
		if err := json.Unmarshal(v, w); err != nil {
			return err
		}
		s.workloads[w.Name()] = w
	case strings.HasPrefix(key, prefixCopy):
		c := new(Copy)
		if err := json.Unmarshal(v, c); err != nil {
			return err
		}
		s.installCopy(c.ID, c)
	case strings.HasPrefix(key, prefixNode):
		n := new(NodeState)
		if err := json.Unmarshal(v, n); err != nil {
			return err
		}
		s.nodes[key[len(prefixNode):]] = n
	case strings.HasPrefix(key, prefixStatus):
		st := new(Status)
		if err := json.Unmarshal(v, st); err != nil {
			return err
		}
		s.statuses[statusKey{st.Workload, st.Node}] = st
	case strings.HasPrefix(key, prefixAudit):
		var e auditEntry
		if _, err := fmt.Sscanf(key[len(prefixAudit):], "%d", &e.seq); err != nil {
			return err
		}
		if err := json.Unmarshal(v, &e.rec); err != nil {
			return err
		}
		s.audit = append(s.audit, e)
	default:
		return errors.New("unknown record kind")
	}
	return nil
}

func workloadKey(name string) []byte { return []byte(prefixWork + name) }
func copyKey(id string) []byte       { return []byte(prefixCopy + id) }
func nodeKey(id string) []byte       { return []byte(prefixNode + id) }
func statusKeyBytes(k statusKey) []byte {
	return []byte(prefixStatus + k.workload + "/" + k.node)
}
func auditKey(seq uint64) []byte { return fmt.Appendf(nil, "%s%020d", prefixAudit, seq) }

// installCopy puts c (nil: deletes) in memory. Call it with mu held.
func (s *Store) installCopy(id string, c *Copy) {
	if old := s.copies[id]; old != nil {
		if ids := s.byWorkload[old.Workload]; ids != nil {
			delete(ids, id)
			if len(ids) == 0 {
				delete(s.byWorkload, old.Workload)
			}
		}
	}
	if c == nil {
		delete(s.copies, id)
		return
	}
	s.copies[id] = c
	ids := s.byWorkload[c.Workload]
	if ids == nil {
		ids = map[string]bool{}
		s.byWorkload[c.Workload] = ids
	}
	ids[id] = true
}

// Update runs fn in a transaction and, when fn returns nil, writes what
// it changed and then installs it in memory. It returns the nodes whose
// desired set changed, so the caller can send them the difference. When
// fn or the write fails, nothing changes.
func (s *Store) Update(fn func(tx *Tx) error) (changed []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := newTx(s)
	if err := fn(tx); err != nil {
		return nil, err
	}
	// A set staged but not changed is not written again.
	for id, n := range tx.nodes {
		if cur := s.nodes[id]; n != nil && cur != nil && n.Set.Generation == cur.Set.Generation && n.Acked == cur.Acked {
			delete(tx.nodes, id)
		}
	}
	if err := s.write(tx); err != nil {
		return nil, err
	}
	return s.install(tx), nil
}

// write writes tx's changes in one batch.
func (s *Store) write(tx *Tx) error {
	if tx.empty() {
		return nil
	}
	if s.db.IsClosed() {
		// A WriteBatch on a closed database blocks for ever.
		return errors.New("write workloads: store closed")
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	put := func(key []byte, v any) error {
		if v == nil {
			return wb.Delete(key)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		return wb.Set(key, b)
	}
	var errs []error
	for name, w := range tx.workloads {
		errs = append(errs, put(workloadKey(name), nilOr(w)))
	}
	for id, c := range tx.copies {
		errs = append(errs, put(copyKey(id), nilOr(c)))
	}
	for id, n := range tx.nodes {
		errs = append(errs, put(nodeKey(id), nilOr(n)))
	}
	for k, st := range tx.statuses {
		errs = append(errs, put(statusKeyBytes(k), nilOr(st)))
	}
	next := s.auditNext
	for _, r := range tx.audit {
		errs = append(errs, put(auditKey(next), r))
		if next > uint64(s.limit) {
			errs = append(errs, wb.Delete(auditKey(next-uint64(s.limit))))
		}
		next++
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write workloads: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write workloads: %w", err)
	}
	return nil
}

// nilOr turns a typed nil pointer into an untyped nil (a deletion).
func nilOr[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}

// install puts tx's changes in memory and returns the nodes whose set
// generation changed. Call it with mu held.
func (s *Store) install(tx *Tx) []string {
	for name, w := range tx.workloads {
		if w == nil {
			delete(s.workloads, name)
		} else {
			s.workloads[name] = w
		}
	}
	for id, c := range tx.copies {
		s.installCopy(id, c)
	}
	var changed []string
	for id, n := range tx.nodes {
		old := s.nodes[id]
		if n == nil {
			delete(s.nodes, id)
			continue
		}
		if old == nil || old.Set.Generation != n.Set.Generation {
			changed = append(changed, id)
		}
		s.nodes[id] = n
	}
	for k, st := range tx.statuses {
		if st == nil {
			delete(s.statuses, k)
		} else {
			s.statuses[k] = st
		}
	}
	for _, r := range tx.audit {
		s.audit = append(s.audit, auditEntry{seq: s.auditNext, rec: r})
		s.auditNext++
	}
	if over := len(s.audit) - s.limit; over > 0 {
		s.audit = slices.Delete(s.audit, 0, over)
	}
	slices.Sort(changed)
	return changed
}
