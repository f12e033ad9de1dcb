// Package dispatch carries desired state from the workload store to the
// nodes and workload statuses back: the cloud half of the generation
// protocol of sync/desired.
//
// A node is sent the difference between its set and the generation it
// holds: on its hello (Hello.applied_generation), on each DesiredAck that
// is behind the set, whenever its set changes while it is online, and
// again after ResendAfter while it has not acknowledged the latest
// generation (the message or its ack may have been lost). The
// acknowledged generation is recorded in the store, which forgets the
// tombstones at or below it. Every message is computed from the stored
// set, so a resend is the same diff and applying it twice changes
// nothing. A node the store has no set for is sent nothing.
//
// Statuses are applied to the store; a change of a copy's state asks the
// controller for a pass, a capacity error of a cloud copy is reported,
// and a status of a workload the node is not assigned (an orphan) is
// counted and answered with the node's whole set, which makes the node
// stop it.
package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logonce"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/metrics"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/desired"
)

// DefaultResendAfter is how long a node that has not acknowledged its
// latest generation waits before it is sent the difference again.
const DefaultResendAfter = 10 * time.Second

// MaxMessage is the budget of one DesiredState message.
const MaxMessage = protocol.MaxPayload - desired.Headroom

// Publisher sends a message to a node.
type Publisher interface {
	Publish(topic string, payload []byte) error
}

// Config configures a Dispatcher.
type Config struct {
	Store     *workloads.Store
	Publisher Publisher
	// Online reports whether a node is connected now.
	Online  func(node string) bool
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Clock   clock.Clock
	// ResendAfter (DefaultResendAfter when 0).
	ResendAfter time.Duration
	// Trigger, when set, asks the controller for a pass soon.
	Trigger func()
	// CapacityError, when set, is told that cloud region site could not
	// start a copy.
	CapacityError func(site string)
}

// Dispatcher sends desired state and applies statuses. It is safe for
// concurrent use.
type Dispatcher struct {
	cfg  Config
	log  *slog.Logger
	once *logonce.Limiter

	mu     sync.Mutex // guards the fields below
	sent   map[string]time.Time
	forced map[string]time.Time
}

// New returns a Dispatcher.
func New(cfg Config) *Dispatcher {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = DefaultResendAfter
	}
	if cfg.Online == nil {
		cfg.Online = func(string) bool { return true }
	}
	return &Dispatcher{
		cfg: cfg, log: cfg.Logger.With("component", "dispatch"), once: logonce.New(time.Hour, 10000),
		sent: map[string]time.Time{}, forced: map[string]time.Time{},
	}
}

// Hello handles a node's hello: it records the generation the node holds
// and sends it what it lacks.
func (d *Dispatcher) Hello(node string, applied uint64) {
	d.acknowledge(node, applied)
	d.trigger()
}

// DesiredAck handles a node's DesiredAck. The controller is told: a
// stopping copy may be done once its removal is acknowledged.
func (d *Dispatcher) DesiredAck(node string, generation uint64) {
	d.acknowledge(node, generation)
	d.trigger()
}

func (d *Dispatcher) acknowledge(node string, gen uint64) {
	current, known, err := d.cfg.Store.Acknowledge(node, gen)
	if err != nil {
		d.warn(node, "ack", "cannot record the desired generation a node acknowledged", err)
	}
	if !known {
		return
	}
	// The node holds exactly gen, even when it is behind what it
	// acknowledged before (it lost its state): send from there. A
	// generation above the set's gets the whole set.
	if gen != current {
		d.send(node, gen)
	}
}

// Generation is node's desired-set generation, for its Welcome.
func (d *Dispatcher) Generation(node string) uint64 {
	gen, _, _ := d.cfg.Store.Desired(node)
	return gen
}

// Changed sends every online node of nodes the difference between its
// set and what it acknowledged. The controller calls it after each
// Update that changed sets.
func (d *Dispatcher) Changed(nodes []string) {
	for _, node := range nodes {
		if !d.cfg.Online(node) {
			continue
		}
		_, acked, ok := d.cfg.Store.Desired(node)
		if ok {
			d.send(node, acked)
		}
	}
}

// LinkChanged tells the controller a node connected or disconnected.
func (d *Dispatcher) LinkChanged(string) { d.trigger() }

// send publishes the messages that bring node from generation from to
// its set's generation.
func (d *Dispatcher) send(node string, from uint64) {
	d.publish(node, d.cfg.Store.Diff(node, from, MaxMessage))
}

func (d *Dispatcher) publish(node string, msgs []*pb.DesiredState) {
	if len(msgs) == 0 {
		return
	}
	now := d.cfg.Clock.Now()
	d.mu.Lock()
	d.sent[node] = now
	d.mu.Unlock()
	topic := protocol.DownTopic(node, protocol.StreamDesired)
	for _, m := range msgs {
		env := &pb.Envelope{NodeId: node, SentAtMs: now.UnixMilli(), Capability: protocol.CapabilityVersion,
			Body: &pb.Envelope_Desired{Desired: m}}
		p, err := protocol.Marshal(env)
		if err == nil {
			err = d.cfg.Publisher.Publish(topic, p)
		}
		if err != nil {
			// Resent after ResendAfter, or on the node's next hello.
			d.debug(node, "send", "cannot send desired state to node", err)
			return
		}
		d.cfg.Metrics.DesiredSent.Inc()
	}
}

// Status applies a workload status node produced with sequence number seq
// of outbox at its time at. It returns an error when the status could
// not be stored: the node must not be acknowledged for it.
func (d *Dispatcher) Status(node, outbox string, seq uint64, st *pb.WorkloadStatus, at time.Time) error {
	out, err := d.cfg.Store.ApplyStatus(node, outbox, seq, st, at)
	if err != nil {
		return fmt.Errorf("store status of %s on %s: %w", st.GetName(), node, err)
	}
	if out.Stale {
		return nil
	}
	d.cfg.Metrics.StatusesApplied.Inc()
	if out.CapacityError && d.cfg.CapacityError != nil {
		d.log.Warn("cloud region could not start a copy for lack of capacity; avoiding it for a while",
			"site", out.Site, "workload", st.GetName(), "node", node, "error", st.GetLastError())
		d.cfg.CapacityError(out.Site)
	}
	if out.Orphan {
		d.orphan(node, st)
	}
	if out.Changed {
		d.trigger()
	}
	return nil
}

// orphan answers a status of a workload node is not assigned with the
// node's whole set, at most once per ResendAfter.
func (d *Dispatcher) orphan(node string, st *pb.WorkloadStatus) {
	d.cfg.Metrics.Orphans.Inc()
	if d.once.Allow(node+"\x00orphan\x00"+st.GetName(), d.cfg.Clock.Now()) {
		d.log.Warn("node runs a workload the bridge does not assign it; sending its desired set again so that it stops",
			"node", node, "workload", st.GetName(), "state", workloads.StateName(st.GetState()), "generation", st.GetGeneration())
	}
	now := d.cfg.Clock.Now()
	d.mu.Lock()
	last, ok := d.forced[node]
	if ok && now.Sub(last) < d.cfg.ResendAfter {
		d.mu.Unlock()
		return
	}
	d.forced[node] = now
	d.mu.Unlock()
	if !d.cfg.Store.HasSet(node) {
		// An empty set at generation 0: the full message clears the node.
		if _, err := d.cfg.Store.Update(func(tx *workloads.Tx) error {
			_, err := tx.Set(node)
			return err
		}); err != nil {
			d.warn(node, "orphan", "cannot create the desired set of a node", err)
			return
		}
	}
	if d.cfg.Online(node) {
		d.publish(node, d.cfg.Store.Full(node, MaxMessage))
	}
}

// Run resends, every ResendAfter, the difference to online nodes that
// have not acknowledged their set's generation since the last send, until
// ctx is cancelled.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := d.cfg.Clock.NewTicker(d.cfg.ResendAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		d.Resend()
	}
}

// Resend sends the difference again to every online node whose last
// send is at least ResendAfter old and whose acknowledged generation is
// behind its set.
func (d *Dispatcher) Resend() {
	now := d.cfg.Clock.Now()
	for _, node := range d.cfg.Store.Nodes() {
		gen, acked, ok := d.cfg.Store.Desired(node)
		if !ok || acked == gen || !d.cfg.Online(node) {
			continue
		}
		d.mu.Lock()
		last := d.sent[node]
		d.mu.Unlock()
		if now.Sub(last) < d.cfg.ResendAfter {
			continue
		}
		d.send(node, acked)
	}
}

func (d *Dispatcher) trigger() {
	if d.cfg.Trigger != nil {
		d.cfg.Trigger()
	}
}

func (d *Dispatcher) warn(node, kind, msg string, err error) {
	if d.once.Allow(node+"\x00"+kind, d.cfg.Clock.Now()) {
		d.log.Warn(msg, "node", node, "error", err)
	}
}

func (d *Dispatcher) debug(node, kind, msg string, err error) {
	if d.once.Allow(node+"\x00"+kind, d.cfg.Clock.Now()) {
		d.log.Debug(msg, "node", node, "error", err)
	}
}
