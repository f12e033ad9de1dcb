// Package uplink is the agent's MQTT link to the cloud: one mutually
// authenticated TLS connection whose client ID is the node ID, kept up by
// a reconnect loop with capped, jittered backoff.
//
// The link owns every retry. paho's auto-reconnect and connect-retry are
// off, and a new paho client is made for every connection, because paho
// warns that a client reused after Disconnect may still have goroutines
// running. Nothing blocks inside a paho callback: incoming messages are
// queued to a goroutine the link owns, and a lost connection is signalled
// on a channel.
//
// On every connect the link registers a last will (Goodbye LOST on
// up/bye), subscribes to the node's down topics and sends a Hello. On a
// clean stop it sends Goodbye SHUTDOWN, then disconnects, so the broker
// discards the will.
package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// ErrNotConnected is returned by Publish while the link is down.
var ErrNotConnected = errors.New("uplink not connected")

// Defaults of Config.
const (
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 30 * time.Second
	DefaultPublishTimeout = 30 * time.Second
	// goodbyeTimeout bounds the clean-shutdown goodbye, so that stopping
	// an agent on a dead link does not hang.
	goodbyeTimeout = 2 * time.Second
	// inboxSize bounds the messages queued from paho to the link's
	// goroutine.
	inboxSize = 256
)

// Config configures a Link.
type Config struct {
	// NodeID is the MQTT client ID and the node of every topic.
	NodeID string
	// Broker is the broker URL (see ParseBroker).
	Broker string
	// AllowPlaintext permits tcp:// and mqtt:// brokers.
	AllowPlaintext bool
	// TLS is the client configuration for TLS brokers; it is cloned, at
	// least TLS 1.2 is required, and an empty ServerName defaults to the
	// broker's host.
	TLS *tls.Config
	// KeepAlive is the MQTT keep-alive; 0 means DefaultKeepAlive.
	KeepAlive time.Duration
	// ConnectTimeout bounds dial, TLS handshake and CONNACK; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// PublishTimeout bounds the wait for a PUBACK when the caller's
	// context has no earlier deadline; 0 means DefaultPublishTimeout.
	PublishTimeout time.Duration
	// Reconnect is the backoff between connection attempts; the zero
	// value means backoff.DefaultPolicy.
	Reconnect backoff.Policy
	// Stamper stamps the envelopes the link makes itself (hello, goodbye,
	// will). Nil means a stamper for NodeID with boot epoch 0.
	Stamper *stamp.Stamper
	// Hello returns the body of the Hello sent after every connect; nil
	// sends an empty one.
	Hello func(ctx context.Context) (*pb.Hello, error)
	// OnMessage receives every valid envelope from the cloud, on the
	// link's own goroutine, one at a time. It must not block for long.
	// paho hands messages over concurrently (OrderMatters=false), so they
	// may arrive out of order; acks are cumulative and tolerate that.
	OnMessage func(*pb.Envelope)
	// OnConnected is called once the link is up and its hello is sent,
	// and OnDisconnected once it is lost or closed, on the link's own
	// goroutine; they must not block. Messages of a connection may reach
	// OnMessage before OnConnected: the cloud can answer the hello before
	// the link has recorded the connection.
	OnConnected    func()
	OnDisconnected func()
	// Dial opens the TCP connection to the broker; nil means a
	// net.Dialer. Tests use it to cut connections.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the link's state changes; nil discards them.
	Logger *slog.Logger
	// Clock times backoff and acknowledgement waits; nil means the real
	// clock.
	Clock clock.Clock
}

// Stats are the link's counters since New.
type Stats struct {
	Connects        uint64 // connections established (hello sent)
	ConnectFailures uint64 // attempts that failed
	Disconnects     uint64 // connections lost
	Published       uint64 // envelopes acknowledged by the broker
	PublishErrors   uint64 // Publish calls that failed while connected (not those whose caller gave up)
	InboundRejected uint64 // messages from the cloud that failed to decode
	InboundDropped  uint64 // messages from the cloud dropped on a full queue
	LastError       string
	LastErrorAt     time.Time
}

// Link is the MQTT link. Create it with New and run it with Run.
type Link struct {
	cfg     Config
	broker  Broker
	tls     *tls.Config
	log     *slog.Logger
	inbox   chan inbound
	running atomic.Bool

	mu     sync.Mutex  // guards the fields below
	client paho.Client // non-nil while connected and greeted
	errMsg string
	errAt  time.Time

	// Per connection: whether its Welcome was logged, and when its hello
	// was produced (Unix ms), for the clock skew estimate.
	welcomed atomic.Bool
	helloAt  atomic.Int64

	connects, connectFailures, disconnects atomic.Uint64
	published, publishErrors               atomic.Uint64
	inboundRejected, inboundDropped        atomic.Uint64
}

// New checks cfg and returns a Link that is not yet connected.
func New(cfg Config) (*Link, error) {
	if err := protocol.ValidateNodeID(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	b, err := ParseBroker(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("uplink: broker %q: %w", cfg.Broker, err)
	}
	var tlsCfg *tls.Config
	switch {
	case b.TLS && cfg.TLS == nil:
		return nil, fmt.Errorf("uplink: broker %q needs a TLS configuration", cfg.Broker)
	case b.TLS:
		tlsCfg = cfg.TLS.Clone()
		tlsCfg.MinVersion = max(tlsCfg.MinVersion, tls.VersionTLS12)
		if tlsCfg.ClientSessionCache == nil {
			// Reconnects resume the TLS session: no certificate signature
			// or chain verification on either side, which is most of a
			// handshake's CPU when a whole fleet returns at once.
			tlsCfg.ClientSessionCache = tls.NewLRUClientSessionCache(2)
		}
		if tlsCfg.ServerName == "" {
			tlsCfg.ServerName = b.Host
		}
	case !cfg.AllowPlaintext:
		return nil, fmt.Errorf("uplink: broker %q is plaintext and plaintext is not allowed", cfg.Broker)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.Reconnect == (backoff.Policy{}) {
		cfg.Reconnect = backoff.DefaultPolicy
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Stamper == nil {
		cfg.Stamper = &stamp.Stamper{NodeID: cfg.NodeID, Clock: cfg.Clock}
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{KeepAlive: cfg.KeepAlive}).DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Link{
		cfg:    cfg,
		broker: b,
		tls:    tlsCfg,
		log:    cfg.Logger.With("component", "uplink", "broker", b.Addr),
		inbox:  make(chan inbound, inboxSize),
	}, nil
}

// Run keeps the link up until ctx is done, then says goodbye and
// disconnects. Cancellation is not an error. Run may be called once.
func (l *Link) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("uplink: Run called twice")
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { l.dispatch(ctx); return nil })
	g.Go(func() error { l.loop(ctx); return nil })
	return g.Wait()
}

// Connected reports whether the link is up and has sent its hello.
func (l *Link) Connected() bool { return l.current() != nil }

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	msg, at := l.errMsg, l.errAt
	l.mu.Unlock()
	return Stats{
		Connects:        l.connects.Load(),
		ConnectFailures: l.connectFailures.Load(),
		Disconnects:     l.disconnects.Load(),
		Published:       l.published.Load(),
		PublishErrors:   l.publishErrors.Load(),
		InboundRejected: l.inboundRejected.Load(),
		InboundDropped:  l.inboundDropped.Load(),
		LastError:       msg,
		LastErrorAt:     at,
	}
}

func (l *Link) current() paho.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.client
}

func (l *Link) setClient(c paho.Client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.client = c
}

func (l *Link) noteError(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errMsg, l.errAt = err.Error(), l.cfg.Clock.Now()
}
