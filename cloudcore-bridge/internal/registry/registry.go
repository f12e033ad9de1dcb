// Package registry is the bridge's fleet registry: what it knows about
// every node, kept in memory and written behind to Badger.
//
// Memory is authoritative for reads. An update changes the in-memory
// record and marks the node dirty; every flush interval (100 ms by
// default) the dirty records are written in one Badger WriteBatch, so a
// node that reports many times between flushes costs one write. The
// records are loaded at start and flushed a last time at shutdown, so the
// registry survives a restart; a crash loses at most one interval, which
// has not been acknowledged yet, so the nodes send it again.
//
// Each record carries the node's applied set (see Applied): the sequence
// numbers of the durable messages the bridge has applied, written in the
// same value as the rest of the record, so the set never claims more than
// the record holds. A node is acknowledged only from what a flush has
// committed: after each flush, Config.Durable receives the nodes whose set
// changed (and those waiting for a Welcome), with the set as written.
//
// The map is split into shards, each with its own lock and dirty set, so
// that ingest on many connections does not serialise on one mutex.
package registry

import (
	"bytes"
	"cmp"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/skyedge/skyedge/internal/clock"
)

// DefaultFlushInterval is how often dirty records are written. It is also
// how long a node waits, at most, between the bridge applying a durable
// message and the write that lets the bridge acknowledge it: an ack
// follows its message within one interval plus the write (a few ms) and
// the network. Agents' ack timeouts build on it.
const DefaultFlushInterval = 100 * time.Millisecond

const numShards = 64

// keyPrefix prefixes node records in the store.
const keyPrefix = "registry/node/"

// Config configures a Registry.
type Config struct {
	DB            *badger.DB
	Logger        *slog.Logger
	Clock         clock.Clock
	FlushInterval time.Duration
	// ObserveFlush, when set, receives the duration of every flush that
	// wrote something.
	ObserveFlush func(time.Duration)
	// Durable, when set, is called after every flush that committed an
	// applied set a node is owed an Ack or a Welcome for, with those
	// nodes, from the flushing goroutine. It must not call back into the
	// registry's Flush.
	Durable func([]Durable)
}

// Registry is the Badger-backed node registry. It is safe for concurrent
// use.
type Registry struct {
	db      *badger.DB
	log     *slog.Logger
	clk     clock.Clock
	every   time.Duration
	observe func(time.Duration)
	durable func([]Durable)
	seed    maphash.Seed
	online  atomic.Int64
	shards  [numShards]shard

	// writeMu serialises writes, which share arena: the encoded records
	// of one write, reused by the next once Badger has committed them.
	writeMu sync.Mutex
	arena   bytes.Buffer
}

type shard struct {
	mu    sync.Mutex // guards the fields below
	nodes map[string]*Node
	dirty map[string]struct{}
}

// Open loads the registry stored in cfg.DB.
func Open(cfg Config) (*Registry, error) {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		db:      cfg.DB,
		log:     cfg.Logger.With("component", "registry"),
		clk:     cfg.Clock,
		every:   cfg.FlushInterval,
		observe: cfg.ObserveFlush,
		durable: cfg.Durable,
		seed:    maphash.MakeSeed(),
	}
	for i := range r.shards {
		r.shards[i].nodes = make(map[string]*Node)
		r.shards[i].dirty = make(map[string]struct{})
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Registry) shard(id string) *shard {
	return &r.shards[maphash.String(r.seed, id)%numShards]
}

// Update applies fn to the record of node id, creating it (with FirstSeen
// set to now) if it does not exist, and schedules it for writing. fn runs
// under the shard's lock: it must be quick and must replace, not modify,
// the record's maps, slices and pointers.
func (r *Registry) Update(id string, fn func(n *Node)) {
	s := r.shard(id)
	s.mu.Lock()
	n := s.nodes[id]
	if n == nil {
		now := r.clk.Now()
		n = &Node{ID: id, FirstSeen: now, LastSeen: now}
		s.nodes[id] = n
	}
	was := n.Online
	fn(n)
	n.ID = id
	is := n.Online
	s.dirty[id] = struct{}{}
	s.mu.Unlock()
	switch {
	case is && !was:
		r.online.Add(1)
	case !is && was:
		r.online.Add(-1)
	}
}

// View calls fn with node id's record under the shard's lock, without
// scheduling a write, and reports whether the node exists. fn must be
// quick and must not change the record (the Node methods documented as
// "inside Update or View" are fine).
func (r *Registry) View(id string, fn func(n *Node)) bool {
	s := r.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[id]
	if ok {
		fn(n)
	}
	return ok
}

// Get returns a copy of node id's record.
func (r *Registry) Get(id string) (Node, bool) {
	s := r.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[id]
	if !ok {
		return Node{}, false
	}
	n.materialize()
	return *n, true
}

// List returns copies of every record, sorted by ID.
func (r *Registry) List() []Node {
	out := make([]Node, 0, r.Len())
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for _, n := range s.nodes {
			n.materialize()
			out = append(out, *n)
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Len is the number of nodes known.
func (r *Registry) Len() int {
	total := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		total += len(s.nodes)
		s.mu.Unlock()
	}
	return total
}

// OnlineCount is the number of nodes online.
func (r *Registry) OnlineCount() int { return int(r.online.Load()) }

// MarkAllOffline sets every online node offline with reason. The bridge
// calls it at start when nothing can be connected yet (embedded broker),
// so that a crash does not leave nodes online forever.
func (r *Registry) MarkAllOffline(reason string) int {
	marked := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for id, n := range s.nodes {
			if !n.Online {
				continue
			}
			n.Online = false
			n.OfflineReason = reason
			n.ConnectedSince = time.Time{}
			s.dirty[id] = struct{}{}
			marked++
		}
		s.mu.Unlock()
	}
	r.online.Add(-int64(marked))
	return marked
}
