package endpoint

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckPublish(t *testing.T) {
	tests := []struct {
		topic string
		want  protocol.Reason // "" allowed
	}{
		{"skyedge/v1/n/n1/up/report", ""},
		{"skyedge/v1/n/n1/up/hello", ""},
		{"skyedge/v1/n/n1/up/bye", ""},
		{"skyedge/v1/n/n2/up/report", protocol.ReasonSpoofed},
		{"skyedge/v1/n/n1x/up/report", protocol.ReasonSpoofed}, // a node whose ID extends n1
		{"skyedge/v1/n/n1/down/ack", protocol.ReasonSpoofed},
		{"skyedge/v1/n/n1/up/unknown", protocol.ReasonBadTopic},
		{"skyedge/v1/n/n1/up/report/extra", protocol.ReasonBadTopic},
		{"skyedge/v1/n/n1/up/", protocol.ReasonBadTopic},
		{"skyedge/v1/n/n1/../n2/up/report", protocol.ReasonBadTopic},
		{"$SYS/broker/version", protocol.ReasonBadTopic},
		{"other", protocol.ReasonBadTopic},
	}
	for _, tt := range tests {
		err := checkPublish("n1", tt.topic)
		if got := reasonOrEmpty(err); got != tt.want {
			t.Errorf("checkPublish(n1, %q) = %v, want reason %q", tt.topic, err, tt.want)
		}
	}
}

func TestCheckSubscribe(t *testing.T) {
	tests := []struct {
		filter string
		want   protocol.Reason
	}{
		{"skyedge/v1/n/n1/down/#", ""},
		{"skyedge/v1/n/n1/down/ack", ""},
		{"skyedge/v1/n/n2/down/#", protocol.ReasonSpoofed},
		{"skyedge/v1/n/n2/down/ack", protocol.ReasonSpoofed},
		{"skyedge/v1/n/n1/up/#", protocol.ReasonBadTopic},
		{"skyedge/v1/n/n1/up/report", protocol.ReasonBadTopic},
		{"skyedge/v1/n/n1/down/+", protocol.ReasonBadTopic},
		{"skyedge/v1/n/+/down/#", protocol.ReasonBadTopic},
		{"skyedge/v1/n/#", protocol.ReasonBadTopic},
		{"#", protocol.ReasonBadTopic},
		{"$share/g/skyedge/v1/n/n1/down/#", protocol.ReasonBadTopic},
	}
	for _, tt := range tests {
		err := checkSubscribe("n1", tt.filter)
		if got := reasonOrEmpty(err); got != tt.want {
			t.Errorf("checkSubscribe(n1, %q) = %v, want reason %q", tt.filter, err, tt.want)
		}
	}
}

func reasonOrEmpty(err error) protocol.Reason {
	if err == nil {
		return ""
	}
	return protocol.ReasonOf(err)
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestDisconnectReason(t *testing.T) {
	tests := []struct {
		name       string
		cause, err error
		want       string
	}{
		{"DISCONNECT packet", packets.CodeDisconnect, nil, ReasonClean},
		{"closed without cause", nil, nil, ReasonClean},
		{"EOF", nil, io.EOF, ReasonConnectionLost},
		{"reset", nil, fmt.Errorf("read: %w", syscall.ECONNRESET), ReasonConnectionLost},
		{"TLS error", nil, errors.New("tls: bad record MAC"), ReasonConnectionLost},
		{"read deadline", nil, fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded), ReasonKeepaliveTimeout},
		{"net timeout", nil, &net.OpError{Op: "read", Err: timeoutErr{}}, ReasonKeepaliveTimeout},
		{"keepalive code", packets.ErrKeepAliveTimeout, io.EOF, ReasonKeepaliveTimeout},
		{"taken over", packets.ErrSessionTakenOver, net.ErrClosed, ReasonTakenOver},
		{"server shutdown", packets.ErrServerShuttingDown, net.ErrClosed, ReasonBridgeShutdown},
		{"not authorized", packets.ErrNotAuthorized, packets.ErrNotAuthorized, ReasonRefused},
		{"protocol violation", nil, packets.ErrProtocolViolationSecondConnect, ReasonRefused},
	}
	for _, tt := range tests {
		if got := disconnectReason(tt.cause, tt.err); got != tt.want {
			t.Errorf("%s: disconnectReason(%v, %v) = %q, want %q", tt.name, tt.cause, tt.err, got, tt.want)
		}
	}
}
