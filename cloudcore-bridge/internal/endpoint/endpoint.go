// Package endpoint is where node messages enter the bridge: an MQTT
// endpoint that authenticates nodes, enforces their topic permissions and
// hands every message to a Handler. Two implementations share the small
// Endpoint interface:
//
//   - Embedded runs a mochi-mqtt broker inside the bridge (the default):
//     mutual TLS, identity from the certificate, ACLs in a broker hook, and
//     the Handler called before the PUBACK.
//   - External subscribes to a clustered broker (EMQX, VerneMQ, Mosquitto,
//     AWS IoT Core) through a shared subscription, so that several bridge
//     replicas split the fleet's traffic.
//
// The rest of the bridge sees only Handler and Endpoint, so the broker
// library can be replaced without touching ingest.
package endpoint

import (
	"context"

	"github.com/skyedge/skyedge/protocol"
)

// Handler receives what nodes send.
type Handler interface {
	// Message is called for every PUBLISH from a node; identity is the
	// authenticated node ID. A non-nil error rejects the message (it is
	// not applied; the connection stays up).
	Message(identity, topic string, payload []byte) error
	// Disconnected reports that node's connection ended, with one of the
	// Reason constants.
	Disconnected(node string, reason string)
	// Connected reports that node has connected and authenticated.
	Connected(node string)
}

// Endpoint is a running MQTT endpoint.
type Endpoint interface {
	// Run serves until ctx is cancelled; cancellation is not an error.
	Run(ctx context.Context) error
	// Publish sends payload to a node's down topic: at QoS 1, but for
	// the ack stream, which the embedded broker sends at QoS 0.
	Publish(topic string, payload []byte) error
}

// Refusal is told about what the endpoint refused before any Handler call:
// connections whose client ID is not their certificate's identity,
// publishes and subscriptions outside a node's own topics. err is a
// *protocol.Error carrying the reason; identity is empty when unknown.
type Refusal func(identity string, err error)

// Reasons a node went offline, as passed to Handler.Disconnected and kept
// in the registry.
const (
	// ReasonClean: the node sent DISCONNECT, or a Goodbye with
	// REASON_SHUTDOWN.
	ReasonClean = "clean"
	// ReasonKeepaliveTimeout: nothing arrived for 1.5 keepalive periods.
	ReasonKeepaliveTimeout = "keepalive_timeout"
	// ReasonConnectionLost: the connection broke (reset, EOF, TLS error).
	ReasonConnectionLost = "connection_lost"
	// ReasonWill: the broker published the node's last will (a Goodbye
	// with REASON_LOST); used where only the broker sees the connection.
	ReasonWill = "will"
	// ReasonTakenOver: a newer connection with the same identity replaced
	// this one. The node is still online through the new connection, so
	// this reason is logged but never recorded as the node's state.
	ReasonTakenOver = "taken_over"
	// ReasonRefused: the broker closed the connection for a protocol or
	// permission violation (for example an MQTT 3.1.1 QoS 1 publish to
	// another node's topic).
	ReasonRefused = "refused"
	// ReasonBridgeShutdown: the bridge stopped.
	ReasonBridgeShutdown = "bridge_shutdown"
	// ReasonBridgeRestart: the node was online when the bridge last
	// stopped or crashed, and nothing is connected to a bridge that has
	// just started.
	ReasonBridgeRestart = "bridge_restart"
)

// ReasonOverloaded is the rejection reason of a message that arrived while
// the endpoint's queues were full.
const ReasonOverloaded protocol.Reason = "overloaded"
