package uplink

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Broker is a parsed broker address.
type Broker struct {
	// Addr is host:port.
	Addr string
	// Host is the host name or IP, the name the server certificate must
	// match unless the TLS configuration overrides it.
	Host string
	// TLS is false only for tcp:// and mqtt:// brokers.
	TLS bool
}

// ErrScheme is returned by ParseBroker for a scheme it does not know.
var ErrScheme = errors.New("scheme must be tls://, ssl:// or mqtts://")

// Default ports: MQTT over TLS (8883, also AWS IoT Core's) and plain MQTT.
const (
	DefaultTLSPort       = 8883
	DefaultPlaintextPort = 1883
)

// ParseBroker parses a broker URL: tls://, ssl:// or mqtts:// for MQTT
// over TLS, tcp:// or mqtt:// for plaintext, with a host and an optional
// port. Whether plaintext is allowed is the caller's decision.
func ParseBroker(raw string) (Broker, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Broker{}, fmt.Errorf("not a URL: %w", err)
	}
	var b Broker
	switch strings.ToLower(u.Scheme) {
	case "tls", "ssl", "mqtts":
		b.TLS = true
	case "tcp", "mqtt":
	case "":
		return Broker{}, fmt.Errorf("no scheme: write tls://host:port")
	default:
		return Broker{}, ErrScheme
	}
	if u.User != nil {
		return Broker{}, fmt.Errorf("user info in the URL is not supported: nodes authenticate with their certificate")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Broker{}, fmt.Errorf("want scheme://host:port with nothing after the port")
	}
	b.Host = u.Hostname()
	if b.Host == "" {
		return Broker{}, fmt.Errorf("no host")
	}
	port := DefaultPlaintextPort
	if b.TLS {
		port = DefaultTLSPort
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Broker{}, fmt.Errorf("port %q: want 1..65535", p)
		}
		port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return Broker{}, fmt.Errorf("empty port: write host:port or leave the port out for %d", port)
	}
	b.Addr = net.JoinHostPort(b.Host, strconv.Itoa(port))
	return b, nil
}
