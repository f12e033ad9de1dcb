// Package logs fetches workload output from nodes over MQTT: a Broker
// sends a LogsRequest with a random request ID on the node's down/logs
// topic and waits for the LogsResponse carrying the same ID, which ingest
// hands it from up/logs. Nothing is stored or retried: the caller is
// waiting now, or never, so a node that is offline fails at once and a
// node that does not answer in time fails with ErrTimeout. The number of
// requests waiting at once is bounded.
package logs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Errors callers branch on.
var (
	// ErrOffline: the node is not connected.
	ErrOffline = errors.New("node offline")
	// ErrTimeout: the node did not answer in time.
	ErrTimeout = errors.New("node did not answer in time")
	// ErrBusy: too many requests are waiting already.
	ErrBusy = errors.New("too many logs requests waiting")
	// ErrNode: the node answered with an error (unknown workload,
	// unreadable log).
	ErrNode = errors.New("node could not read the logs")
)

// Defaults.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMaxWaiting = 256
	// MaxTail bounds the lines asked for.
	MaxTail = 10000
)

// Outcomes counted in Config.Requests.
const (
	OutcomeOK      = "ok"
	OutcomeOffline = "offline"
	OutcomeTimeout = "timeout"
	OutcomeBusy    = "busy"
	OutcomeNode    = "node_error"
	OutcomeFailed  = "send_failed"
	OutcomeGone    = "cancelled"
)

// Publisher sends a message to a node.
type Publisher interface {
	Publish(topic string, payload []byte) error
}

// Config configures a Broker.
type Config struct {
	Publisher Publisher
	// Online reports whether a node is connected now.
	Online func(node string) bool
	Clock  clock.Clock
	Logger *slog.Logger
	// Timeout is how long a request waits (DefaultTimeout when 0).
	Timeout time.Duration
	// MaxWaiting bounds the requests waiting at once (DefaultMaxWaiting
	// when 0).
	MaxWaiting int
	// Requests, when set, counts requests by outcome (one label).
	Requests *prometheus.CounterVec
}

// Broker matches logs requests with their responses. It is safe for
// concurrent use.
type Broker struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex // guards waiting
	waiting map[string]*request
}

type request struct {
	node string
	resp chan *pb.LogsResponse // buffered: one response
}

// New returns a Broker.
func New(cfg Config) *Broker {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxWaiting <= 0 {
		cfg.MaxWaiting = DefaultMaxWaiting
	}
	if cfg.Online == nil {
		cfg.Online = func(string) bool { return true }
	}
	return &Broker{cfg: cfg, log: cfg.Logger.With("component", "logs"), waiting: map[string]*request{}}
}

// Fetch asks node for the last tail lines of workload's output (the
// node's default when tail is 0) and waits for the answer, the timeout or
// ctx.
func (b *Broker) Fetch(ctx context.Context, node, workload string, tail int) (*pb.LogsResponse, error) {
	resp, outcome, err := b.fetch(ctx, node, workload, tail)
	if b.cfg.Requests != nil {
		b.cfg.Requests.WithLabelValues(outcome).Inc()
	}
	return resp, err
}

func (b *Broker) fetch(ctx context.Context, node, workload string, tail int) (*pb.LogsResponse, string, error) {
	if !b.cfg.Online(node) {
		return nil, OutcomeOffline, fmt.Errorf("logs of %s from %s: %w", workload, node, ErrOffline)
	}
	id, err := newID()
	if err != nil {
		return nil, OutcomeFailed, fmt.Errorf("logs of %s from %s: %w", workload, node, err)
	}
	r := &request{node: node, resp: make(chan *pb.LogsResponse, 1)}
	b.mu.Lock()
	if len(b.waiting) >= b.cfg.MaxWaiting {
		b.mu.Unlock()
		return nil, OutcomeBusy, fmt.Errorf("logs of %s from %s: %w (%d)", workload, node, ErrBusy, b.cfg.MaxWaiting)
	}
	b.waiting[id] = r
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
	}()

	now := b.cfg.Clock.Now()
	env := &pb.Envelope{NodeId: node, SentAtMs: now.UnixMilli(), Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_LogsRequest{LogsRequest: &pb.LogsRequest{
			RequestId: id, Workload: workload, TailLines: uint32(min(max(tail, 0), MaxTail)),
		}}}
	p, err := protocol.Marshal(env)
	if err == nil {
		err = b.cfg.Publisher.Publish(protocol.DownTopic(node, protocol.StreamLogs), p)
	}
	if err != nil {
		return nil, OutcomeFailed, fmt.Errorf("logs of %s from %s: send request: %w", workload, node, err)
	}
	timer := b.cfg.Clock.After(b.cfg.Timeout)
	select {
	case resp := <-r.resp:
		if e := resp.GetError(); e != "" {
			return resp, OutcomeNode, fmt.Errorf("logs of %s from %s: %w: %s", workload, node, ErrNode, e)
		}
		return resp, OutcomeOK, nil
	case <-timer:
		return nil, OutcomeTimeout, fmt.Errorf("logs of %s from %s: %w (%s)", workload, node, ErrTimeout, b.cfg.Timeout)
	case <-ctx.Done():
		return nil, OutcomeGone, fmt.Errorf("logs of %s from %s: %w", workload, node, ctx.Err())
	}
}

// Response hands a LogsResponse from node to the request waiting for it.
// A response nobody waits for (late, or from another node than the one
// asked) is dropped.
func (b *Broker) Response(node string, resp *pb.LogsResponse) {
	b.mu.Lock()
	r, ok := b.waiting[resp.GetRequestId()]
	if ok && r.node == node {
		delete(b.waiting, resp.GetRequestId())
	}
	b.mu.Unlock()
	if !ok || r.node != node {
		b.log.Debug("dropping a logs response nobody waits for", "node", node, "request_id", resp.GetRequestId())
		return
	}
	r.resp <- resp
}

// Waiting is the number of requests waiting for an answer.
func (b *Broker) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting)
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("request ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
