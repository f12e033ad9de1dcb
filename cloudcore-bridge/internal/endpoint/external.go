package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
)

// ExternalConfig configures a bridge that consumes an external broker.
type ExternalConfig struct {
	// Broker is the broker's URL, e.g. "tls://emqx.example.com:8883".
	Broker string
	// ClientID must be unique per bridge replica.
	ClientID string
	// ShareGroup is the shared-subscription group the replicas join.
	ShareGroup string
	// TLS holds the bridge's own client certificate and the broker's CA.
	TLS *tls.Config
	// KeepAlive is the MQTT keepalive towards the broker.
	KeepAlive time.Duration
	// Workers apply messages; a node's messages always go to the same
	// worker, so they are applied in the order the broker delivered them.
	Workers int
	// QueueLen bounds each worker's queue.
	QueueLen int
	// Backoff is the reconnect policy (backoff.DefaultPolicy when zero).
	Backoff backoff.Policy

	Handler Handler
	Refused Refusal
	Logger  *slog.Logger
	Clock   clock.Clock
}

// Defaults of ExternalConfig.
const (
	DefaultKeepAlive = 30 * time.Second
	DefaultWorkers   = 8
	DefaultQueueLen  = 256
	connectTimeout   = 15 * time.Second
)

// ErrNotConnected is returned by External.Publish while the broker is
// unreachable.
var ErrNotConnected = errors.New("not connected to the broker")

// External consumes nodes' messages from an external broker through the
// shared subscription protocol.SharedUpFilter(ShareGroup).
//
// The node's identity is the node named in the topic. That is sound only
// because the broker enforces that a node publishes under its own topics
// (for Mosquitto: use_identity_as_username and an ACL "pattern write
// skyedge/v1/n/%u/up/#"; for AWS IoT Core: a policy on
// ${iot:Connection.Thing.ThingName}); the bridge cannot check a
// certificate it never sees. Connection state comes from the nodes' hello
// and goodbye (including the last will), since only the broker sees
// connections.
type External struct {
	cfg    ExternalConfig
	client paho.Client
	log    *slog.Logger
	seed   maphash.Seed
	queues []chan paho.Message
	lost   chan error
	up     atomic.Bool
	ready  chan struct{}
	once   sync.Once
}

// NewExternal returns an External endpoint; Run connects it.
func NewExternal(cfg ExternalConfig) (*External, error) {
	switch {
	case cfg.Handler == nil:
		return nil, errors.New("external endpoint: no handler")
	case cfg.Broker == "":
		return nil, errors.New("external endpoint: no broker URL")
	case cfg.ClientID == "":
		return nil, errors.New("external endpoint: no client ID")
	case cfg.ShareGroup == "" || strings.ContainsAny(cfg.ShareGroup, "/+#"):
		return nil, fmt.Errorf("external endpoint: share group %q must be non-empty without '/', '+' or '#'", cfg.ShareGroup)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.DefaultPolicy
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Refused == nil {
		cfg.Refused = func(string, error) {}
	}
	x := &External{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "mqtt", "broker", cfg.Broker),
		seed:  maphash.MakeSeed(),
		lost:  make(chan error, 1),
		ready: make(chan struct{}),
	}
	for range cfg.Workers {
		x.queues = append(x.queues, make(chan paho.Message, cfg.QueueLen))
	}
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetTLSConfig(cfg.TLS).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(10 * time.Second).
		SetProtocolVersion(4).
		// Run owns reconnection, with backoff; paho's would fight it.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		// A durable message lost while the bridge is away is resent by the
		// agent's outbox until the bridge acknowledges it; a persistent
		// session would only duplicate that across replicas.
		SetCleanSession(true).
		// onMessage never blocks (it only queues), so paho may call it in
		// order on its own goroutine. With OrderMatters(false) paho would
		// start a goroutine per message and a node's hello, reports and
		// last will could reach its worker queue in any order.
		SetOrderMatters(true).
		// A message is acknowledged to the broker once applied (or
		// rejected), not when it is queued.
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(x.onMessage).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case x.lost <- err:
			default:
			}
		})
	x.client = paho.NewClient(opts)
	return x, nil
}

// Run connects, subscribes and applies messages until ctx is cancelled,
// reconnecting with backoff whenever the broker is lost.
func (x *External) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, q := range x.queues {
		g.Go(func() error { x.work(ctx, q); return nil })
	}
	g.Go(func() error { return x.connectLoop(ctx) })
	return g.Wait()
}

func (x *External) connectLoop(ctx context.Context) error {
	bo := backoff.New(x.cfg.Backoff)
	clk := x.cfg.Clock
	failures, lastErr := 0, ""
	var downSince time.Time
	for {
		start := clk.Now()
		err := x.connect(ctx)
		if ctx.Err() != nil {
			x.client.Disconnect(250)
			return nil
		}
		if err == nil {
			x.up.Store(true)
			x.once.Do(func() { close(x.ready) })
			if failures > 0 {
				x.log.Info("connected to broker", "attempts", failures+1, "down_for", clk.Now().Sub(downSince).Round(time.Millisecond))
			} else {
				x.log.Info("connected to broker", "share_group", x.cfg.ShareGroup)
			}
			failures, lastErr = 0, ""
			select {
			case <-ctx.Done():
				x.up.Store(false)
				x.client.Disconnect(250)
				return nil
			case err = <-x.lost:
			}
			x.up.Store(false)
			bo.Connected(clk.Now().Sub(start))
			downSince = clk.Now()
			x.log.Warn("lost broker connection; reconnecting", "error", err)
		} else {
			if failures == 0 && downSince.IsZero() {
				downSince = start
			}
			failures++
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				x.log.Warn("cannot connect to broker; retrying with backoff", "error", err, "attempt", failures)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-clk.After(bo.Next()):
		}
	}
}

// connect connects and subscribes once.
func (x *External) connect(ctx context.Context) error {
	select { // forget a loss reported for the previous connection
	case <-x.lost:
	default:
	}
	if err := x.wait(ctx, x.client.Connect()); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	filter := protocol.SharedUpFilter(x.cfg.ShareGroup)
	tok := x.client.Subscribe(filter, 1, x.onMessage)
	err := x.wait(ctx, tok)
	if err == nil {
		if st, ok := tok.(*paho.SubscribeToken); ok && st.Result()[filter] > 1 {
			err = fmt.Errorf("broker refused the subscription to %q (check that its ACL lets client %q read %s)",
				filter, x.cfg.ClientID, protocol.AllUpFilter)
		}
	}
	if err != nil {
		x.client.Disconnect(250)
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// wait waits for tok, ctx or connectTimeout.
func (x *External) wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-x.cfg.Clock.After(connectTimeout):
		return errors.New("timed out")
	}
}

// onMessage runs on paho's router goroutine, in the order the broker
// delivered the messages: it only queues the message, never blocking.
func (x *External) onMessage(_ paho.Client, m paho.Message) {
	node := topicNode(m.Topic())
	q := x.queues[maphash.String(x.seed, node)%uint64(len(x.queues))]
	select {
	case q <- m:
	default:
		// Acknowledge anyway: a message never acknowledged holds one of the
		// broker's in-flight slots for this bridge until it reconnects.
		m.Ack()
		x.cfg.Refused(node, &protocol.Error{Reason: ReasonOverloaded,
			Err: fmt.Errorf("message on %q dropped: worker queue of %d full", m.Topic(), x.cfg.QueueLen)})
	}
}

func (x *External) work(ctx context.Context, q chan paho.Message) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-q:
			// Rejections are counted and logged by the handler; the broker
			// already accepted the message, so it is acknowledged either way.
			_ = x.cfg.Handler.Message(topicNode(m.Topic()), m.Topic(), m.Payload())
			m.Ack()
		}
	}
}

// topicNode is the node named by an up topic, or "" for a topic outside
// the layout (which the handler then rejects).
func topicNode(topic string) string {
	t, err := protocol.ParseTopic(topic)
	if err != nil {
		return ""
	}
	return t.Node
}

// Publish sends payload to a node's down topic at QoS 1 without waiting
// for the broker's acknowledgement.
func (x *External) Publish(topic string, payload []byte) error {
	if !x.up.Load() {
		return fmt.Errorf("publish to %s: %w", topic, ErrNotConnected)
	}
	tok := x.client.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
	default:
	}
	return nil
}

// Ready is closed once the first subscription is in place.
func (x *External) Ready() <-chan struct{} { return x.ready }

// Connected reports whether the broker connection and subscription are up.
func (x *External) Connected() bool { return x.up.Load() }
