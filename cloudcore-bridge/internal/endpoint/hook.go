package endpoint

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/skyedge/skyedge/internal/pki"
	"github.com/skyedge/skyedge/protocol"
)

// Listener IDs of the embedded broker.
const (
	listenerTLS   = "tls"
	listenerPlain = "plain"
)

// hook is the embedded broker's authentication, authorisation and ingest
// hook.
type hook struct {
	mqtt.HookBase
	handler Handler
	refused Refusal
	log     *slog.Logger

	// mu serialises connection events and guards latest: the newest
	// authenticated connection of every node. A connection replaced by a
	// newer one (session takeover) ends without marking its node offline.
	mu     sync.Mutex
	latest map[string]*mqtt.Client
}

func newHook(h Handler, refused Refusal, log *slog.Logger) *hook {
	if refused == nil {
		refused = func(string, error) {}
	}
	return &hook{handler: h, refused: refused, log: log, latest: make(map[string]*mqtt.Client)}
}

// ID names the hook in mochi's logs.
func (h *hook) ID() string { return "skyedge" }

// Provides lists the events the hook handles.
func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnPublish, mqtt.OnDisconnect:
		return true
	}
	return false
}

// OnConnectAuthenticate accepts a connection whose client ID is its
// identity and whose last will, if any, is on one of its own up topics.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	id, err := identity(cl)
	if err != nil {
		h.refused("", &protocol.Error{Reason: protocol.ReasonInvalid, Err: fmt.Errorf("connect from %s: %w", cl.Net.Remote, err)})
		return false
	}
	if cl.ID != id {
		h.refused(id, &protocol.Error{Reason: protocol.ReasonSpoofed,
			Err: fmt.Errorf("connect from %s: client ID %q is not the certificate's identity %q", cl.Net.Remote, cl.ID, id)})
		return false
	}
	if cl.Properties.Will.Flag == 1 {
		if err := checkPublish(id, cl.Properties.Will.TopicName); err != nil {
			h.refused(id, fmt.Errorf("connect with last will: %w", err))
			return false
		}
	}
	return true
}

// identity is the authenticated node ID of cl: its certificate's common
// name on the TLS listener, its client ID on the plaintext one.
func identity(cl *mqtt.Client) (string, error) {
	if cl.Net.Listener == listenerPlain {
		return cl.ID, protocol.ValidateNodeID(cl.ID)
	}
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return "", fmt.Errorf("connection is %T, not TLS", cl.Net.Conn)
	}
	cs := tc.ConnectionState()
	if !cs.HandshakeComplete {
		return "", errors.New("TLS handshake not complete")
	}
	return pki.PeerIdentity(cs)
}

// OnACLCheck lets a node publish only to its own up topics and subscribe
// only to its own down topics. mochi also calls it before delivering each
// message to a subscriber.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	check := checkSubscribe
	if write {
		check = checkPublish
	}
	if err := check(cl.ID, topic); err != nil {
		h.refused(cl.ID, err)
		return false
	}
	return true
}

// OnSessionEstablish records cl as its node's newest connection, before
// mochi takes over an older session of the same node.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest[cl.ID] = cl
}

// OnSessionEstablished reports the node connected once its CONNACK is
// sent.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.latest[cl.ID] == cl {
		h.handler.Connected(cl.ID)
	}
}

// OnPublish applies a node's message before mochi sends the PUBACK. A
// rejected message gets no PUBACK and goes nowhere; an applied one is not
// routed either, since nothing but the bridge consumes up topics.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if err := h.handler.Message(cl.ID, pk.TopicName, pk.Payload); err != nil {
		return pk, packets.ErrRejectPacket
	}
	pk.Ignore = true
	return pk, nil
}

// OnDisconnect reports the node offline, unless a newer connection of the
// same node has replaced this one.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if cl.Net.Inline {
		return
	}
	reason := disconnectReason(cl.StopCause(), err)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.latest[cl.ID] != cl {
		h.log.Debug("replaced connection closed", "node", cl.ID, "reason", reason, "remote", cl.Net.Remote)
		return
	}
	delete(h.latest, cl.ID)
	h.handler.Disconnected(cl.ID, reason)
}
