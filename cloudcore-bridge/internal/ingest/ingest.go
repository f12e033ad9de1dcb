// Package ingest applies what nodes send to the fleet registry. It is the
// bridge's endpoint.Handler: it decodes and validates every message,
// checks that the node speaks for itself, applies the body (hello, report,
// summary, event, gap, batch, goodbye) and answers a hello with a Welcome.
//
// Durable messages (reports, summaries, events, gaps, alone or in a
// batch) with a sequence number are applied exactly once: the node's
// applied set in the registry drops a sequence number it already holds (a
// duplicate is counted and acknowledged again, not applied). Gaps and
// summaries settle the sequence numbers they say will never arrive. Nodes
// are acknowledged by Acknowledge, after the registry flush that wrote
// their applied sets: one Ack per node per flush, and the Welcome that
// answers a hello, whose watermark must be durable too.
//
// Workload statuses are durable messages too. Each one the applied set
// does not hold yet is handed to Config.Workloads, which stores it, before
// it is marked applied, so that the flush that acknowledges it never
// precedes the write of the status; a status that cannot be stored is
// rejected and sent again by the node. Desired-state acknowledgements
// (up/desired) and the node's applied generation in its hello go to
// Config.Workloads, logs responses (up/logs) to Config.Logs, and every
// Welcome carries the node's desired-set generation.
//
// A bad message is rejected with a reason, counted in
// skyedge_bridge_rejected_total and in the node's record, and logged once
// per node and reason per hour; the node's connection and every other
// node carry on.
package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logonce"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/metrics"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Registry is the part of the fleet registry ingest writes to.
type Registry interface {
	// Update applies fn to node id's record, creating it if needed.
	Update(id string, fn func(n *registry.Node))
	// View calls fn with node id's record without changing it, and
	// reports whether the node exists.
	View(id string, fn func(n *registry.Node)) bool
	// OnlineCount is the number of nodes online.
	OnlineCount() int
}

// Workloads is the workload side of the bridge (dispatch.Dispatcher).
type Workloads interface {
	// Hello reports the desired-set generation a node holds after it
	// connected.
	Hello(node string, appliedGeneration uint64)
	// DesiredAck reports the generation a node acknowledged.
	DesiredAck(node string, generation uint64)
	// Generation is the node's desired-set generation, for its Welcome.
	Generation(node string) uint64
	// Status stores a workload status with the node's outbox ID and the
	// status's sequence number; an error means it was not stored.
	Status(node, outbox string, seq uint64, st *pb.WorkloadStatus, at time.Time) error
	// LinkChanged reports that a node connected or went offline.
	LinkChanged(node string)
}

// Logs receives the answers to logs requests (logs.Broker).
type Logs interface {
	Response(node string, r *pb.LogsResponse)
}

// ReasonUnavailable rejects a message the bridge could not store; the
// node sends it again.
const ReasonUnavailable protocol.Reason = "unavailable"

// Publisher sends a message to a node.
type Publisher interface {
	Publish(topic string, payload []byte) error
}

// Config configures an Ingester.
type Config struct {
	Registry  Registry
	Publisher Publisher
	// Workloads and Logs, when set, receive what nodes say about
	// workloads; without them statuses are deduplicated and dropped.
	Workloads Workloads
	Logs      Logs
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
	Clock     clock.Clock
}

// LogEvery is how long a (node, reason) stays quiet in the log after it
// was logged once.
const LogEvery = time.Hour

// maxLogKeys bounds the (node, reason) pairs remembered for LogEvery.
const maxLogKeys = 10000

// Ingester applies node messages to the registry. It is safe for
// concurrent use.
type Ingester struct {
	reg     Registry
	pub     Publisher
	wl      Workloads
	logs    Logs
	m       *metrics.Metrics
	log     *slog.Logger
	clk     clock.Clock
	once    *logonce.Limiter
	streams map[string]prometheus.Counter
}

// New returns an Ingester.
func New(cfg Config) *Ingester {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	in := &Ingester{
		reg:     cfg.Registry,
		pub:     cfg.Publisher,
		wl:      cfg.Workloads,
		logs:    cfg.Logs,
		m:       cfg.Metrics,
		log:     cfg.Logger.With("component", "ingest"),
		clk:     cfg.Clock,
		once:    logonce.New(LogEvery, maxLogKeys),
		streams: make(map[string]prometheus.Counter),
	}
	for _, s := range protocol.UpStreams {
		in.streams[s] = in.m.Messages.WithLabelValues(s)
	}
	in.m.ConnectedNodes.Set(float64(in.reg.OnlineCount()))
	return in
}

// Message decodes, checks and applies one message from identity.
func (in *Ingester) Message(identity, topic string, payload []byte) error {
	start := time.Now()
	t, env, err := protocol.DecodeFrom(topic, payload)
	switch {
	case t.Dir == protocol.DirDown: // a parsed topic, whatever the payload
		err = &protocol.Error{Reason: protocol.ReasonBadTopic, Err: fmt.Errorf("%q is not an up topic", topic)}
	case err != nil:
	case t.Node != identity:
		err = &protocol.Error{Reason: protocol.ReasonSpoofed,
			Err: fmt.Errorf("node %q published on the topic of node %q", identity, t.Node)}
	}
	if err != nil {
		in.reject(identity, topic, err)
		return err
	}
	now := start
	if in.clk != clock.Real { // one clock read per message when real
		now = in.clk.Now()
	}
	if err := in.apply(t, env, now); err != nil {
		in.reject(identity, topic, err)
		return err
	}
	in.streams[t.Stream].Inc()
	in.m.HandleSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// Connected marks node online.
func (in *Ingester) Connected(node string) {
	now := in.clk.Now()
	in.reg.Update(node, func(n *registry.Node) {
		n.Online = true
		n.OfflineReason = ""
		n.ConnectedSince = now
		n.LastSeen = now
	})
	in.m.ConnectedNodes.Set(float64(in.reg.OnlineCount()))
	in.log.Info("node connected", "node", node)
	in.linkChanged(node)
}

func (in *Ingester) linkChanged(node string) {
	if in.wl != nil {
		in.wl.LinkChanged(node)
	}
}

// Disconnected marks node offline with reason. A node that already said
// why it left (a goodbye before its connection closed) keeps that reason.
func (in *Ingester) Disconnected(node, reason string) {
	in.offline(node, reason, in.clk.Now(), false)
}

// offline marks node offline; override replaces the reason of a node that
// is already offline.
func (in *Ingester) offline(node, reason string, now time.Time, override bool) {
	was := false
	in.reg.Update(node, func(n *registry.Node) {
		was = n.Online
		if was || override {
			n.OfflineReason = reason
		}
		n.Online = false
		n.ConnectedSince = time.Time{}
		n.LastSeen = now
	})
	in.m.ConnectedNodes.Set(float64(in.reg.OnlineCount()))
	if was {
		in.log.Info("node offline", "node", node, "reason", reason)
		in.linkChanged(node)
	}
}

// Refused records something the endpoint refused before any message was
// applied (see endpoint.Refusal).
func (in *Ingester) Refused(identity string, err error) {
	in.reject(identity, "", err)
}

// reject counts a rejection and logs it once per (identity, reason).
func (in *Ingester) reject(identity, topic string, err error) {
	reason := protocol.ReasonOf(err)
	in.m.Rejected.WithLabelValues(string(reason)).Inc()
	if protocol.ValidateNodeID(identity) == nil {
		in.reg.Update(identity, func(n *registry.Node) { n.Counters.Rejects++ })
	}
	if in.once.Allow(identity+"\x00"+string(reason), in.clk.Now()) {
		attrs := []any{"node", identity, "reason", string(reason), "error", err}
		if topic != "" {
			attrs = append(attrs, "topic", topic)
		}
		attrs = append(attrs, "next_log", "after "+LogEvery.String()+"; counted in skyedge_bridge_rejected_total")
		in.log.Warn("rejected message from node", attrs...)
	}
}

// errWrongBody is wrapped by rejections of bodies a batch may not carry.
var errWrongBody = errors.New("not allowed in a batch")
