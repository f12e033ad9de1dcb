package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/skyedge/skyedge/protocol"
)

// EmbeddedConfig configures the embedded broker.
type EmbeddedConfig struct {
	// ListenAddr is the mutual-TLS listener's address, e.g. ":8883".
	ListenAddr string
	// PlainAddr, when set, adds a plaintext listener on which a node's
	// identity is its client ID, unauthenticated. For development only.
	PlainAddr string
	// TLS must require and verify client certificates.
	TLS *tls.Config
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet.
	ConnectTimeout time.Duration

	Handler Handler
	// Refused, when set, is told about refused connections, publishes and
	// subscriptions.
	Refused Refusal
	// HandshakeFailed, when set, is told about failed TLS handshakes.
	HandshakeFailed func(remote net.Addr, err error)
	// HandshakeDone, when set, is told about each completed TLS
	// handshake and whether it resumed an earlier session (a reconnecting
	// node that skips the certificate signature and verification).
	HandshakeDone func(resumed bool)
	Logger        *slog.Logger
}

// DefaultConnectTimeout is the default EmbeddedConfig.ConnectTimeout.
const DefaultConnectTimeout = 10 * time.Second

// maxPacketSize is the largest MQTT packet the broker reads. It is well
// above protocol.MaxPayload so that an oversized payload reaches ingest,
// which rejects it with a counted reason while the connection stays up;
// only a packet beyond this hard limit closes the connection.
const maxPacketSize = 8 * protocol.MaxPayload

// Embedded is an MQTT broker inside the bridge.
type Embedded struct {
	cfg   EmbeddedConfig
	srv   *mqtt.Server
	log   *slog.Logger
	ready chan struct{}

	addr, plainAddr string // set before ready is closed
}

// NewEmbedded returns an embedded broker; Run starts it.
func NewEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Handler == nil {
		return nil, errors.New("embedded endpoint: no handler")
	}
	if cfg.TLS == nil || cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("embedded endpoint: TLS config must require and verify client certificates")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tlsCfg := cfg.TLS.Clone()
	tlsCfg.MinVersion = max(tlsCfg.MinVersion, tls.VersionTLS12)
	cfg.TLS = tlsCfg

	log := cfg.Logger.With("component", "mqtt")
	caps := mqtt.NewDefaultServerCapabilities()
	// Each pending write holds a packet; mochi's 8192 per client costs far
	// too much memory across thousands of TLS connections.
	caps.MaximumClientWritesPending = 128
	// Downlink messages (acks, desired state) awaiting a node's PUBACK,
	// and QoS 1 messages a node may have unacknowledged towards the
	// bridge (AWS IoT Core allows 100).
	caps.MaximumInflight = 256
	caps.ReceiveMaximum = 256
	caps.MaximumQos = protocol.MaxQoS
	caps.MaximumPacketSize = maxPacketSize
	// Persistent sessions of vanished nodes are dropped after an hour
	// (AWS IoT Core's default), not kept forever.
	caps.MaximumSessionExpiryInterval = 3600
	caps.MaximumMessageExpiryInterval = 3600
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.TopicAliasMaximum = 16

	e := &Embedded{
		cfg:   cfg,
		log:   log,
		ready: make(chan struct{}),
		srv: mqtt.New(&mqtt.Options{
			Capabilities: caps,
			InlineClient: true,
			// $SYS topics are refreshed (with a runtime.ReadMemStats) every
			// interval; nodes may not read them anyway.
			SysTopicResendInterval: 60,
			// mochi logs every refused connection and failed packet at
			// warning level; the hook counts and logs those once per node.
			Logger: slog.New(levelFloor{log.Handler(), slog.LevelError}),
		}),
	}
	if err := e.srv.AddHook(newHook(cfg.Handler, cfg.Refused, log), nil); err != nil {
		return nil, fmt.Errorf("embedded endpoint: %w", err)
	}
	return e, nil
}

// Run binds the listeners, serves until ctx is cancelled, then disconnects
// every client (each reported with ReasonBridgeShutdown) and returns nil.
func (e *Embedded) Run(ctx context.Context) error {
	tl, err := net.Listen("tcp", e.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("mqtt listen %s: %w", e.cfg.ListenAddr, err)
	}
	l := newConnListener(tl, e.cfg.TLS, e.cfg.ConnectTimeout, e.cfg.HandshakeFailed, e.cfg.HandshakeDone)
	if err := e.srv.AddListener(listeners.NewNet(listenerTLS, l)); err != nil {
		l.Close()
		return fmt.Errorf("mqtt listener: %w", err)
	}
	e.addr = l.Addr().String()
	if e.cfg.PlainAddr != "" {
		pl, err := net.Listen("tcp", e.cfg.PlainAddr)
		if err != nil {
			_ = e.srv.Close()
			return fmt.Errorf("mqtt plaintext listen %s: %w", e.cfg.PlainAddr, err)
		}
		l := newConnListener(pl, nil, e.cfg.ConnectTimeout, nil, nil)
		if err := e.srv.AddListener(listeners.NewNet(listenerPlain, l)); err != nil {
			l.Close()
			_ = e.srv.Close()
			return fmt.Errorf("mqtt plaintext listener: %w", err)
		}
		e.plainAddr = l.Addr().String()
		e.log.Warn("plaintext MQTT listener enabled: node identities on it are unauthenticated client IDs; use it for development only",
			"address", e.plainAddr)
	}
	if err := e.srv.Serve(); err != nil {
		_ = e.srv.Close()
		return fmt.Errorf("mqtt serve: %w", err)
	}
	e.log.Info("MQTT listening", "address", e.addr)
	close(e.ready)
	<-ctx.Done()
	_ = e.srv.Close() // returns once every client's connection has ended
	return nil
}

// Publish sends payload to a node's down topic, at QoS 1 but for the ack
// stream. A node that is not connected or not subscribed does not receive
// it.
//
// Acks and Welcomes (the ack stream) go at QoS 0: each states the node's
// whole applied set, so a later one supersedes it, and one is lost only
// with its connection, whose next hello is answered by a Welcome with the
// same state, or with a queue of pending writes so full that the node
// is not reading. At QoS 1 every ack costs the broker the node's PUBACK
// (a TLS read) and an in-flight entry, about as much as the report it
// acknowledges.
func (e *Embedded) Publish(topic string, payload []byte) error {
	var qos byte = 1
	if strings.HasSuffix(topic, ackSuffix) {
		qos = 0
	}
	if err := e.srv.Publish(topic, payload, false, qos); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// ackSuffix ends the topics of the ack stream.
const ackSuffix = "/" + protocol.DirDown + "/" + protocol.StreamAck

// Ready is closed once the listeners are bound.
func (e *Embedded) Ready() <-chan struct{} { return e.ready }

// Addr is the TLS listener's bound address, once Ready.
func (e *Embedded) Addr() string { return e.addr }

// PlainAddr is the plaintext listener's bound address, once Ready, or "".
func (e *Embedded) PlainAddr() string { return e.plainAddr }

// levelFloor drops records below a level.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(as), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
}
