package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skyedge/skyedge/agent/internal/runner"
	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/internal/clock"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/desired"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// Keys of the agent's state in the outbox database's local area.
const (
	desiredKey = "desired" // desired.Local as JSON
	contactKey = "contact" // last contact with the cloud, Unix ms
)

// Queue sizes of the workloads' inbound messages. The link hands them
// over without blocking; a message dropped on a full queue is recovered
// by the protocol (the next diff does not chain, the agent acks what it
// holds and the cloud resends; a logs request is asked again).
const (
	desiredQueue = 64
	logsQueue    = 8
)

// contactPersistEvery is how often the last contact is stored while it
// changes, so that a restarted agent still counts the silence before it.
const contactPersistEvery = time.Minute

// kvStore is the part of the outbox database's local area the workloads
// use (badgerq.KV).
type kvStore interface {
	Get(key string) ([]byte, error)
	Set(key string, val []byte) error
}

// workloads runs what the cloud assigns to the node. It holds the
// desired set (desired.Local), stored in the outbox's database before it
// is acknowledged or applied, and the runner that keeps the set running.
// Desired-state messages are handled one at a time, in order, on their
// own goroutine; logs requests on another; statuses go from the runner to
// the outbox through a coalescing queue, so no callback ever blocks.
type workloads struct {
	r        *runner.Runner // nil when workloads are disabled
	clk      clock.Clock
	log      *slog.Logger
	stamper  *stamp.Stamper
	send     func(context.Context, *pb.Envelope) error
	publish  func(context.Context, *pb.Envelope) (uint64, error)
	statuses *statusQueue
	contact  contact

	desiredIn chan *pb.DesiredState
	logsIn    chan *pb.LogsRequest

	// kv is set by load, before Run and before any message arrives.
	kv kvStore

	mu      sync.Mutex // guards the fields below
	local   desired.Local
	known   bool              // local was loaded or received: the runner has it
	refused map[string]uint64 // generation of the last refusal logged, per name
	storing bool              // the last store failed (logged once)

	generation atomic.Uint64 // local.Generation, for the hello
	stats      workloadCounters
}

type workloadCounters struct {
	applied, ignored, mismatched, failed, dropped, assignmentsRefused atomic.Uint64
	acksSent, logsServed, logsDropped                                 atomic.Uint64
}

// newWorkloads builds the workloads of an agent; cfg must be valid.
func newWorkloads(cfg Config, stamper *stamp.Stamper, send func(context.Context, *pb.Envelope) error,
	publish func(context.Context, *pb.Envelope) (uint64, error), connected func() bool, log *slog.Logger) (*workloads, error) {
	w := &workloads{
		clk:       cfg.Clock,
		log:       log.With("component", "workloads"),
		stamper:   stamper,
		send:      send,
		publish:   publish,
		desiredIn: make(chan *pb.DesiredState, desiredQueue),
		logsIn:    make(chan *pb.LogsRequest, logsQueue),
		refused:   map[string]uint64{},
	}
	w.contact.clk, w.contact.connected = cfg.Clock, connected
	w.statuses = newStatusQueue(w.inDesired)
	if cfg.Workloads.Disabled {
		return w, nil
	}
	rc := cfg.Workloads.runnerConfig(cfg.DataDir)
	rc.Logger, rc.Clock = log, cfg.Clock
	rc.LastContact = w.contact.last
	rc.OnStatus = w.statuses.put
	r, err := runner.New(rc)
	if err != nil {
		return nil, fmt.Errorf("workloads: %w", err)
	}
	w.r = r
	return w, nil
}

// load reads the stored desired set and last contact from kv and hands
// the set to the runner, so the node runs its workloads before any
// contact with the cloud. With nothing stored (a new node, or a database
// that was unreadable and replaced) the runner gets nothing until the
// cloud sends the set: workloads an earlier agent left running are not
// stopped on a guess.
func (w *workloads) load(kv kvStore) {
	w.kv = kv
	if b, err := kv.Get(contactKey); err == nil && len(b) == 8 {
		w.contact.restore(time.UnixMilli(int64(binary.BigEndian.Uint64(b))))
	}
	b, err := kv.Get(desiredKey)
	if errors.Is(err, badgerq.ErrNotFound) {
		return
	}
	var l desired.Local
	if err == nil {
		err = json.Unmarshal(b, &l)
	}
	if err != nil {
		w.log.Error("stored desired state unreadable; waiting for the cloud's", "error", err)
		return
	}
	w.mu.Lock()
	w.local, w.known = l, true
	w.mu.Unlock()
	w.generation.Store(l.Generation)
	if w.r != nil {
		w.r.Apply(toRunner(l))
	}
	w.log.Info("desired state loaded", "generation", l.Generation, "workloads", len(l.Assignments))
}

// Run handles desired-state messages, logs requests and statuses until
// ctx is done, with the runner under it.
func (w *workloads) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if w.r != nil {
		g.Go(func() error { return w.r.Run(gctx) })
	}
	g.Go(func() error { w.statusLoop(gctx); return nil })
	g.Go(func() error { w.logsLoop(gctx); return nil })
	g.Go(func() error { w.desiredLoop(gctx); return nil })
	err := g.Wait()
	w.persistContact()
	return err
}

func (w *workloads) desiredLoop(ctx context.Context) {
	tick := w.clk.NewTicker(contactPersistEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-w.desiredIn:
			w.handleDesired(ctx, m)
		case <-tick.C():
			w.persistContact()
		}
	}
}

// enqueueDesired is called by the link's dispatcher; it never blocks.
func (w *workloads) enqueueDesired(m *pb.DesiredState) {
	select {
	case w.desiredIn <- m:
	default:
		w.stats.dropped.Add(1)
	}
}

// handleDesired applies one message: store, run, acknowledge. A diff on
// another base is answered with the generation held, from which the
// cloud resends. A set that cannot be stored is neither run nor
// acknowledged: the cloud resends it, and the node keeps running what it
// had.
func (w *workloads) handleDesired(ctx context.Context, m *pb.DesiredState) {
	if w.r == nil {
		w.stats.ignored.Add(1)
		w.log.Debug("desired state ignored: workloads are disabled", "generation", m.GetGeneration())
		return
	}
	w.mu.Lock()
	next, known := w.local, w.known
	w.mu.Unlock()
	changed, refused, err := next.Apply(m)
	switch {
	case errors.Is(err, desired.ErrBaseMismatch):
		w.stats.mismatched.Add(1)
		w.log.Debug("desired state diff on another base; acknowledging the generation held",
			"base", m.GetBaseGeneration(), "generation", m.GetGeneration(), "held", next.Generation)
		w.ack(ctx, next.Generation)
		return
	case err != nil:
		w.stats.failed.Add(1)
		w.log.Warn("desired state refused", "generation", m.GetGeneration(), "error", err)
		return
	}
	prev := w.generation.Load()
	if next.Generation == prev && !changed && known {
		w.stats.ignored.Add(1) // a resend
		w.ack(ctx, prev)
		return
	}
	if err := w.store(next); err != nil {
		w.stats.failed.Add(1)
		return
	}
	w.mu.Lock()
	w.local, w.known = next, true
	w.mu.Unlock()
	w.generation.Store(next.Generation)
	w.stats.applied.Add(1)
	w.refuse(refused)
	if changed || !known {
		w.r.Apply(toRunner(next))
	}
	w.log.Info("desired state applied", "generation", next.Generation, "full", m.GetFull(),
		"workloads", len(next.Assignments), "changed", changed)
	w.ack(ctx, next.Generation)
}

// store writes l, synced, and logs the first failure of a run of them and
// the recovery.
func (w *workloads) store(l desired.Local) error {
	b, err := json.Marshal(l)
	if err == nil {
		err = w.kv.Set(desiredKey, b)
	}
	w.mu.Lock()
	wasFailing := w.storing
	w.storing = err != nil
	w.mu.Unlock()
	switch {
	case err != nil && !wasFailing:
		w.log.Error("storing the desired state failed; not applied, the cloud will resend it", "generation", l.Generation, "error", err)
	case err == nil && wasFailing:
		w.log.Info("storing the desired state works again", "generation", l.Generation)
	}
	return err
}

// refuse counts assignments the node could not take, logs each once per
// generation, and reports those it holds nothing else for as failed.
func (w *workloads) refuse(refused []desired.Refusal) {
	for _, r := range refused {
		w.stats.assignmentsRefused.Add(1)
		w.mu.Lock()
		logged := w.refused[r.Name] == r.Generation
		w.refused[r.Name] = r.Generation
		_, held := w.local.Assignments[r.Name]
		w.mu.Unlock()
		if !logged {
			w.log.Warn("assignment refused", "workload", r.Name, "generation", r.Generation, "error", r.Err)
		}
		if !held && desired.ValidateName(r.Name) == nil {
			now := w.clk.Now()
			w.statuses.put(runner.Status{Name: r.Name, Generation: r.Generation, State: runner.StateFailed,
				LastError: r.Err.Error(), Reason: "assignment refused: not run", Since: now})
		}
	}
}

// ack tells the cloud which generation the node holds. It is not queued:
// while the link is down the next hello carries the same number.
func (w *workloads) ack(ctx context.Context, gen uint64) {
	env := w.stamper.Stamp(&pb.Envelope{Body: &pb.Envelope_DesiredAck{DesiredAck: &pb.DesiredAck{Generation: gen}}})
	if err := w.send(ctx, env); err != nil {
		w.log.Debug("desired state ack not sent; the next hello carries it", "generation", gen, "error", err)
		return
	}
	w.stats.acksSent.Add(1)
}

// welcome notes the generation the cloud has for the node.
func (w *workloads) welcome(wel *pb.Welcome) {
	if held := w.generation.Load(); wel.GetDesiredGeneration() != held {
		w.log.Debug("the cloud's desired generation differs from the one held; it sends the difference",
			"cloud", wel.GetDesiredGeneration(), "held", held)
	}
}

// inDesired reports whether name is in the desired set held.
func (w *workloads) inDesired(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.local.Assignments[name]
	return ok
}

// toRunner converts the desired set into the runner's assignments.
func toRunner(l desired.Local) []runner.Assignment {
	out := make([]runner.Assignment, 0, len(l.Assignments))
	for _, a := range l.List() {
		out = append(out, runner.Assignment{Name: a.Name, Generation: a.Generation, Spec: a.Spec})
	}
	return out
}

// Stats returns the workloads' counters.
func (w *workloads) Stats() WorkloadStats {
	w.mu.Lock()
	assigned := len(w.local.Assignments)
	w.mu.Unlock()
	s := WorkloadStats{
		Generation:         w.generation.Load(),
		Assigned:           assigned,
		DesiredApplied:     w.stats.applied.Load(),
		DesiredIgnored:     w.stats.ignored.Load(),
		DesiredMismatched:  w.stats.mismatched.Load(),
		DesiredFailed:      w.stats.failed.Load(),
		DesiredDropped:     w.stats.dropped.Load(),
		DesiredAcksSent:    w.stats.acksSent.Load(),
		AssignmentsRefused: w.stats.assignmentsRefused.Load(),
		StatusesQueued:     w.statuses.queued.Load(),
		StatusesRefused:    w.statuses.refused.Load(),
		StatusesFailed:     w.statuses.failed.Load(),
		StatusesCoalesced:  w.statuses.coalesced.Load(),
		StatusesWaiting:    w.statuses.len(),
		LogsServed:         w.stats.logsServed.Load(),
		LogsDropped:        w.stats.logsDropped.Load(),
	}
	if w.r != nil {
		rs := w.r.Stats()
		s.Starts, s.Restarts, s.Adoptions, s.StartFailures, s.Rejected = rs.Starts, rs.Restarts, rs.Adoptions, rs.StartFailures, rs.Rejected
	}
	return s
}
