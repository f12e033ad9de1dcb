package engine

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// A class over quota is relieved to reliefNum/reliefDen of it, so that
// relief runs once per quarter quota of appends rather than on every one.
const (
	reliefNum, reliefDen = 3, 4
)

// maxPartKeys bounds the deletes in one atomic part, inside Badger's
// transaction limits with memtables of 4 MiB or more.
const maxPartKeys = 4000

// errQuota marks an append refused by a Refuse class inside a round.
var errQuota = errors.New("class over quota")

// Engine implements outbox.Queue over a Store.
type Engine struct {
	cfg       outbox.Config
	store     Store
	clk       clock.Clock
	log       *slog.Logger
	recovered string
	id        string
	// reclaimAfter is Options.ReclaimAfter.
	reclaimAfter int64

	closeMu sync.RWMutex  // held for reading by every operation, for writing by Close
	closed  bool          // guarded by closeMu
	done    chan struct{} // closed by Close; ends Run

	pmu  sync.Mutex // guards open and busy
	open *round
	busy bool

	// Written by the pipeline leader only; read atomically anywhere.
	next      atomic.Uint64 // next sequence number to assign
	committed atomic.Uint64 // highest sequence number written
	classes   [outbox.NumClasses]classStats

	syncMu  sync.Mutex    // serialises store.Sync and updates of durable
	durable atomic.Uint64 // highest sequence number known synced
	dirty   atomic.Bool   // a commit happened since the last sync

	// maint is held exclusively by everything that deletes or rewrites
	// (acks, relief, expiry, gap markers) and shared by Pending, so a
	// gap marker is never rewritten while a drainer reads it.
	maint sync.RWMutex
	gaps  gapBook // guarded by maint

	refMu     sync.Mutex          // guards refusals
	refusals  map[gapKey]*refusal // refused appends not yet in a gap marker
	relieving [outbox.NumClasses]atomic.Bool

	pressure     atomic.Uint32 // outbox.Pressure
	diskBytes    atomic.Int64
	telemetryCap atomic.Int64 // telemetry quota under soft pressure; 0 when none

	errMu  sync.Mutex           // guards errLog
	errLog map[string]*errState // background errors already logged

	// useMu is held for reading by UseStore callers and for writing
	// while the store reclaims space (see Store.Reclaim).
	useMu sync.RWMutex
	// reclaimable counts the bytes of records deleted since the store
	// last reclaimed their space.
	reclaimable atomic.Int64
}

type classStats struct {
	count, bytes atomic.Int64
	first, last  atomic.Uint64
	// oldest is a lower bound of the production time of the class's
	// unpinned records (see ClassFigures.Oldest); written by the
	// pipeline leader only.
	oldest                                atomic.Int64
	appended, refused, summarized         atomic.Uint64
	droppedQuota, droppedTTL, droppedDisk atomic.Uint64
}

// Options are the engine's settings beyond outbox.Config.
type Options struct {
	// Recovered is where a corrupt store was moved before this one was
	// created, and RecoveredErr why; New then appends an alarm event of
	// kind "outbox.corrupt" to the Control class.
	Recovered    string
	RecoveredErr error
	// ReclaimAfter is how many bytes of deleted records make a drained
	// queue call Store.Reclaim; 0 means 4 MiB.
	ReclaimAfter int64
}

// New loads the store's state and returns a queue over it. The engine owns
// the store from then on, and closes it in Close (or here on error).
func New(store Store, cfg outbox.Config, opts Options) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		store.Close()
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:          cfg,
		store:        store,
		clk:          cfg.Clock,
		log:          cfg.Logger.With("component", "outbox"),
		recovered:    opts.Recovered,
		reclaimAfter: cmp.Or(opts.ReclaimAfter, defaultReclaimAfter),
		done:         make(chan struct{}),
		open:         newRound(),
		gaps:         newGapBook(),
		refusals:     map[gapKey]*refusal{},
		errLog:       map[string]*errState{},
	}
	if err := e.load(); err != nil {
		store.Close()
		return nil, err
	}
	if opts.Recovered != "" {
		if err := e.appendCorruptAlarm(opts.Recovered, opts.RecoveredErr); err != nil {
			store.Close()
			return nil, err
		}
	}
	return e, nil
}

func (e *Engine) appendCorruptAlarm(movedTo string, cause error) error {
	attrs := map[string]string{"moved_to": movedTo}
	if cause != nil {
		attrs["error"] = cause.Error()
	}
	env := e.envelope(e.clk.Now().UnixMilli())
	env.Body = &pb.Envelope_Event{Event: &pb.Event{
		Severity:   pb.Event_SEVERITY_ALARM,
		Kind:       "outbox.corrupt",
		Message:    "the outbox store could not be opened and was replaced by an empty one; unsent messages were kept aside but will not be sent",
		Attributes: attrs,
	}}
	if _, err := e.Append(context.Background(), env); err != nil {
		return fmt.Errorf("outbox open: record corruption alarm: %w", err)
	}
	return nil
}

// newID returns a random ID for a new sequence space: 64 bits, hex.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// envelope returns an envelope from this node produced at ms.
func (e *Engine) envelope(ms int64) *pb.Envelope {
	return &pb.Envelope{
		NodeId:     e.cfg.NodeID,
		BootEpoch:  e.cfg.BootEpoch,
		SentAtMs:   ms,
		Capability: protocol.CapabilityVersion,
	}
}

// Append implements outbox.Queue.
func (e *Engine) Append(ctx context.Context, env *pb.Envelope) (uint64, error) {
	c, ok := outbox.ClassOf(env)
	if !ok {
		return 0, fmt.Errorf("outbox append %s: %w", protocol.BodyName(env), outbox.ErrNotQueued)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("outbox append %s: %w", c, err)
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return 0, fmt.Errorf("outbox append %s: %w", c, outbox.ErrClosed)
	}
	if env.SentAtMs == 0 {
		env.SentAtMs = e.clk.Now().UnixMilli()
	}
	if outbox.Pressure(e.pressure.Load()) == outbox.PressureHard {
		e.refuse(c, outbox.ReasonDisk, env.SentAtMs)
		return 0, fmt.Errorf("outbox append %s: %w: disk guard", c, outbox.ErrFull)
	}
	pol := e.cfg.Policies[c]
	var seq uint64
	o := &op{sync: c != outbox.Telemetry}
	o.build = func(w *writer) error {
		s := w.next
		env.Seq = s
		payload, err := protocol.Marshal(env)
		if err != nil {
			env.Seq = 0
			return err
		}
		r := Record{Class: c, Seq: s, ProducedAt: env.SentAtMs, Summary: env.GetSummary() != nil, Len: len(payload), Payload: payload}
		if pol.WhenFull == outbox.Refuse && w.pendingBytes(e, c)+r.Size() > pol.Quota {
			env.Seq = 0
			return errQuota
		}
		w.take()
		w.put(r)
		seq = s
		return nil
	}
	e.submit(o)
	switch {
	case errors.Is(o.err, errQuota):
		e.refuse(c, outbox.ReasonQuota, env.SentAtMs)
		return 0, fmt.Errorf("outbox append %s: %w: %d-byte quota", c, outbox.ErrFull, pol.Quota)
	case !o.committed:
		env.Seq = 0
		return 0, fmt.Errorf("outbox append %s: %w", c, o.err)
	case o.err != nil:
		// Stored, but the sync failed: it may not survive a power cut.
		return seq, fmt.Errorf("outbox append %s seq %d: sync: %w", c, seq, o.err)
	}
	e.classes[c].appended.Add(1)
	if pol.WhenFull != outbox.Refuse && e.classes[c].bytes.Load() > e.quota(c) {
		e.relieveIfIdle(c)
	}
	return seq, nil
}

// quota is class c's effective quota, lowered for telemetry under disk
// pressure.
func (e *Engine) quota(c outbox.Class) int64 {
	q := e.cfg.Policies[c].Quota
	if cp := e.telemetryCap.Load(); c == outbox.Telemetry && cp > 0 && cp < q {
		return cp
	}
	return q
}

// State implements outbox.Queue.
func (e *Engine) State() outbox.State {
	s := outbox.State{
		NextSeq:   e.next.Load(),
		ID:        e.id,
		DiskBytes: e.diskBytes.Load(),
		Pressure:  outbox.Pressure(e.pressure.Load()),
		Recovered: e.recovered,
	}
	for _, c := range outbox.Classes {
		cs := &e.classes[c]
		st := outbox.ClassState{
			Count:        cs.count.Load(),
			Bytes:        cs.bytes.Load(),
			FirstSeq:     cs.first.Load(),
			LastSeq:      cs.last.Load(),
			Appended:     cs.appended.Load(),
			Refused:      cs.refused.Load(),
			DroppedQuota: cs.droppedQuota.Load(),
			DroppedTTL:   cs.droppedTTL.Load(),
			DroppedDisk:  cs.droppedDisk.Load(),
			Summarized:   cs.summarized.Load(),
		}
		s.Classes[c] = st
		if st.FirstSeq != 0 && (s.FirstSeq == 0 || st.FirstSeq < s.FirstSeq) {
			s.FirstSeq = st.FirstSeq
		}
		s.LastSeq = max(s.LastSeq, st.LastSeq)
	}
	return s
}

// syncNow syncs the store if anything was committed since the last sync
// and moves the durable watermark.
func (e *Engine) syncNow() error {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if !e.dirty.Load() {
		return nil
	}
	c := e.committed.Load()
	e.dirty.Store(false)
	if err := e.store.Sync(); err != nil {
		e.dirty.Store(true)
		return fmt.Errorf("outbox sync: %w", err)
	}
	if c > e.durable.Load() {
		e.durable.Store(c)
	}
	return nil
}

// Close implements outbox.Queue. It records pending refusals, syncs and
// closes the store. Closing twice returns ErrClosed.
func (e *Engine) Close() error {
	e.closeMu.RLock()
	closed := e.closed
	if !closed {
		e.flushRefusals()
	}
	e.closeMu.RUnlock()
	if closed {
		return fmt.Errorf("outbox close: %w", outbox.ErrClosed)
	}
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return fmt.Errorf("outbox close: %w", outbox.ErrClosed)
	}
	e.closed = true
	close(e.done)
	serr := e.syncNow()
	cerr := e.store.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("outbox close: %w", err)
	}
	return nil
}

// errState tracks one kind of background error so it is logged once and
// its recovery is logged with the count and duration.
type errState struct {
	msg   string
	count int
	since time.Time
}

// logErr logs err for op the first time it differs from the last one
// logged, and logs the recovery when err is nil after failures.
func (e *Engine) logErr(op string, err error) {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	st := e.errLog[op]
	if err == nil {
		if st != nil {
			e.log.Info("outbox recovered", "op", op, "failures", st.count, "duration", e.clk.Now().Sub(st.since))
			delete(e.errLog, op)
		}
		return
	}
	if st == nil {
		st = &errState{since: e.clk.Now()}
		e.errLog[op] = st
	}
	st.count++
	if msg := err.Error(); msg != st.msg {
		st.msg = msg
		e.log.Warn("outbox background work failed", "op", op, "error", err)
	}
}
