package endpoint

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/skyedge/skyedge/protocol"
)

// checkPublish says whether node may publish to topic: only its own up
// topics, parsed with the protocol's rules (never string prefixes, so
// "skyedge/v1/n/a/up/../../b" or a node ID that is a prefix of another
// cannot slip through). The error is a *protocol.Error.
func checkPublish(node, topic string) error {
	t, err := protocol.ParseTopic(topic)
	if err != nil {
		return &protocol.Error{Reason: protocol.ReasonBadTopic, Err: fmt.Errorf("publish by %q: %w", node, err)}
	}
	if t.Node != node || t.Dir != protocol.DirUp {
		return &protocol.Error{Reason: protocol.ReasonSpoofed, Err: fmt.Errorf("node %q may not publish to %q", node, topic)}
	}
	return nil
}

// checkSubscribe says whether node may subscribe to filter (or receive a
// message on a topic): exactly its own down filter, or one of its own down
// topics.
func checkSubscribe(node, filter string) error {
	if filter == protocol.DownFilter(node) {
		return nil
	}
	t, err := protocol.ParseTopic(filter)
	if err == nil && t.Node == node && t.Dir == protocol.DirDown {
		return nil
	}
	reason := protocol.ReasonBadTopic
	if other := namedNode(filter); other != "" && other != node {
		reason = protocol.ReasonSpoofed // reaching for another node's topics
	}
	return &protocol.Error{Reason: reason,
		Err: fmt.Errorf("node %q may subscribe only to %q or a topic under it, not %q", node, protocol.DownFilter(node), filter)}
}

// namedNode is the valid node ID a topic or filter names in the SkyEdge
// layout, or "".
func namedNode(filter string) string {
	rest, ok := strings.CutPrefix(filter, protocol.TopicPrefix)
	if !ok {
		return ""
	}
	node, _, _ := strings.Cut(rest, "/")
	if protocol.ValidateNodeID(node) != nil {
		return ""
	}
	return node
}

// disconnectReason maps how mochi ended a connection to a Reason: cause is
// the client's stop cause (set when the broker closed it), err what the
// read loop returned (nil after a DISCONNECT).
func disconnectReason(cause, err error) string {
	var ne net.Error
	switch {
	case errors.Is(cause, packets.ErrSessionTakenOver):
		return ReasonTakenOver
	case errors.Is(cause, packets.ErrServerShuttingDown):
		return ReasonBridgeShutdown
	case errors.Is(cause, packets.ErrKeepAliveTimeout), errors.Is(err, packets.ErrKeepAliveTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		// mochi enforces keepalive with read deadlines.
		return ReasonKeepaliveTimeout
	case isFailure(cause), isFailure(err):
		return ReasonRefused
	case err == nil, errors.Is(cause, packets.CodeDisconnect):
		return ReasonClean
	}
	return ReasonConnectionLost
}

// isFailure reports whether err is an MQTT reason code of a failure, the
// broker's way of closing a connection that broke a rule.
func isFailure(err error) bool {
	var code packets.Code
	return errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code
}
