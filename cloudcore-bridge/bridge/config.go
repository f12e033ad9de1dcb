package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/controller"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logs"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler/catalog"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
)

// Modes of the MQTT endpoint.
const (
	ModeEmbedded = "embedded"
	ModeExternal = "external"
)

// Config configures a Bridge. Start from DefaultConfig.
type Config struct {
	// DataDir holds the bridge's Badger store.
	DataDir string
	// Mode is ModeEmbedded (the default) or ModeExternal.
	Mode     string
	Embedded EmbeddedConfig
	External ExternalConfig

	// HTTPAddr is the API's listen address; "" disables the API.
	HTTPAddr string
	// HTTPToken is the API's bearer token. It is required when HTTPAddr is
	// not a loopback address, unless HTTPTLS requires client certificates.
	HTTPToken string
	// HTTPTLS, when set, serves the API over TLS.
	HTTPTLS *tls.Config

	// FlushInterval is the registry's write-behind interval
	// (registry.DefaultFlushInterval, 100 ms, when 0). Nodes are
	// acknowledged after each flush, so it is also the longest an applied
	// message waits for its ack, and what agents' ack timeouts build on.
	FlushInterval time.Duration

	// CatalogFile is the cloud catalog (examples/clouds.yaml): the cloud
	// regions workloads may be placed in. "" places on edge nodes only.
	// Catalog, when set, is used instead of the file.
	CatalogFile string
	Catalog     *catalog.Catalog
	// ReconcileInterval is how often the placement controller converges
	// the fleet when nothing triggers it earlier (controller.DefaultInterval,
	// 2 s, when 0).
	ReconcileInterval time.Duration
	// LogsTimeout is how long a workload logs request waits for its node
	// (logs.DefaultTimeout, 10 s, when 0).
	LogsTimeout time.Duration
	// NodeLostAfter, when positive, gives up a node offline for longer,
	// whatever its workloads' disconnect.lostAfter; 0 leaves it to them.
	NodeLostAfter time.Duration

	Logger *slog.Logger
	Clock  clock.Clock
	// NoopIngest accepts and discards every message. It exists for
	// benchmarks, to measure the broker alone.
	NoopIngest bool
}

// EmbeddedConfig configures the embedded MQTT broker.
type EmbeddedConfig struct {
	// ListenAddr is the mutual-TLS listener (":8883" when empty).
	ListenAddr string
	// PlainAddr, when set, adds a plaintext listener where a node's
	// identity is its unauthenticated client ID. Development only.
	PlainAddr string
	// CertFile, KeyFile and CAFile are the server certificate, its key
	// and the CA that signs node certificates. TLS, when set, is used
	// instead; it must require and verify client certificates.
	CertFile, KeyFile, CAFile string
	TLS                       *tls.Config
}

// ExternalConfig configures the connection to an external broker.
type ExternalConfig struct {
	// Broker is the broker's URL: tls://, ssl:// or mqtts://host:port.
	Broker string
	// ClientID defaults to the common name of the bridge's certificate;
	// give every replica its own.
	ClientID string
	// ShareGroup is the shared-subscription group ("skyedge-bridge").
	ShareGroup string
	// CertFile, KeyFile and CAFile are the bridge's client certificate,
	// its key and the CA of the broker. TLS, when set, is used instead.
	CertFile, KeyFile, CAFile string
	TLS                       *tls.Config
	// KeepAlive is the MQTT keepalive (30 s when 0).
	KeepAlive time.Duration
	// Workers is the number of goroutines applying messages (8 when 0).
	Workers int
}

// DefaultConfig is the configuration of a bridge with an embedded broker
// on :8883 and the API on localhost:8080.
func DefaultConfig() Config {
	return Config{
		DataDir:  "/var/lib/skyedge-bridge",
		Mode:     ModeEmbedded,
		Embedded: EmbeddedConfig{ListenAddr: ":8883"},
		External: ExternalConfig{ShareGroup: "skyedge-bridge", KeepAlive: 30 * time.Second},
		HTTPAddr: "127.0.0.1:8080",

		ReconcileInterval: controller.DefaultInterval,
		LogsTimeout:       logs.DefaultTimeout,

		Logger: slog.New(slog.DiscardHandler),
		Clock:  clock.Real,
	}
}

// withDefaults fills the fields whose zero value means "the default".
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Embedded.ListenAddr == "" {
		c.Embedded.ListenAddr = d.Embedded.ListenAddr
	}
	if c.External.ShareGroup == "" {
		c.External.ShareGroup = d.External.ShareGroup
	}
	if c.External.KeepAlive == 0 {
		c.External.KeepAlive = d.External.KeepAlive
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = registry.DefaultFlushInterval
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = d.ReconcileInterval
	}
	if c.LogsTimeout == 0 {
		c.LogsTimeout = d.LogsTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	return c
}

// Validate checks c (after defaults) and returns every problem found,
// joined. Fields are named by their path in the YAML file (FileConfig).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("dataDir", "required: a directory the bridge may write its store to, e.g. /var/lib/skyedge-bridge")
	}
	switch c.Mode {
	case ModeEmbedded:
		e := c.Embedded
		if err := checkAddr(e.ListenAddr); err != nil {
			bad("embedded.listen", "%v; want host:port such as :8883", err)
		}
		if e.PlainAddr != "" {
			if err := checkAddr(e.PlainAddr); err != nil {
				bad("embedded.plainListen", "%v; want host:port such as 127.0.0.1:1883, or leave it empty", err)
			} else if e.PlainAddr == e.ListenAddr && !strings.HasSuffix(e.PlainAddr, ":0") {
				bad("embedded.plainListen", "same address as embedded.listen; give the plaintext listener its own port")
			}
		}
		if e.TLS != nil {
			if e.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
				bad("embedded.tls", "must require and verify client certificates (tls.RequireAndVerifyClientCert)")
			}
		} else {
			requireFiles(bad, "embedded", e.CertFile, e.KeyFile, e.CAFile,
				"issue a server certificate with `skyedge certs issue --server --host <name>`")
		}
	case ModeExternal:
		x := c.External
		if x.Broker == "" {
			bad("external.broker", "required in external mode, e.g. tls://broker.example.com:8883")
		} else if u, err := url.Parse(x.Broker); err != nil || u.Host == "" {
			bad("external.broker", "%q is not a URL; want tls://host:port", x.Broker)
		} else if s := u.Scheme; s != "tls" && s != "ssl" && s != "mqtts" {
			bad("external.broker", "scheme %q: the bridge talks to brokers over TLS only; use tls://%s", s, u.Host)
		}
		if x.TLS == nil {
			requireFiles(bad, "external", x.CertFile, x.KeyFile, x.CAFile,
				"issue the bridge a client certificate with `skyedge certs issue <name>`")
		}
		if x.ClientID != "" {
			if err := protocol.ValidateNodeID(x.ClientID); err != nil {
				bad("external.clientID", "%v", err)
			}
		}
		if strings.ContainsAny(x.ShareGroup, "/+#$ ") {
			bad("external.shareGroup", "%q may not contain '/', '+', '#', '$' or spaces", x.ShareGroup)
		}
		if x.KeepAlive < 5*time.Second || x.KeepAlive > 20*time.Minute {
			bad("external.keepAlive", "%v is out of range; want 5s to 20m (30s is a good start)", x.KeepAlive)
		}
		if x.Workers < 0 || x.Workers > 1024 {
			bad("external.workers", "%d is out of range; want 1 to 1024, or 0 for the default", x.Workers)
		}
	default:
		bad("mode", "%q is not a mode; want %q or %q", c.Mode, ModeEmbedded, ModeExternal)
	}
	if c.HTTPAddr != "" {
		mtls := c.HTTPTLS != nil && c.HTTPTLS.ClientAuth == tls.RequireAndVerifyClientCert
		switch host, err := checkHTTPAddr(c.HTTPAddr); {
		case err != nil:
			bad("http.listen", "%v; want host:port such as 127.0.0.1:8080, or empty to disable the API", err)
		case !isLoopback(host) && c.HTTPToken == "" && !mtls:
			bad("http.listen", "%s is reachable from other hosts but the API has no authentication: set http.token (or http.tokenFile), or http.clientCAFile for mutual TLS, or listen on 127.0.0.1", c.HTTPAddr)
		}
	}
	if c.HTTPToken != "" && len(c.HTTPToken) < 16 {
		bad("http.token", "%d characters is too short to guess-proof; use at least 16 (e.g. `openssl rand -hex 32`)", len(c.HTTPToken))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > 10*time.Second {
		bad("registry.flushInterval", "%v is out of range; want 10ms to 10s (100ms is a good start: every ack waits for a flush)", c.FlushInterval)
	}
	if c.ReconcileInterval < 100*time.Millisecond || c.ReconcileInterval > 5*time.Minute {
		bad("workloads.reconcileInterval", "%v is out of range; want 100ms to 5m (2s is a good start)", c.ReconcileInterval)
	}
	if c.LogsTimeout < time.Second || c.LogsTimeout > 5*time.Minute {
		bad("workloads.logsTimeout", "%v is out of range; want 1s to 5m (10s is a good start)", c.LogsTimeout)
	}
	if c.NodeLostAfter != 0 && (c.NodeLostAfter < time.Minute || c.NodeLostAfter > 365*24*time.Hour) {
		bad("workloads.nodeLostAfter", "%v is out of range; want 1m to 8760h, or 0 to leave it to each workload's disconnect.lostAfter", c.NodeLostAfter)
	}
	return errors.Join(errs...)
}

func requireFiles(bad func(string, string, ...any), section, cert, key, ca, how string) {
	if cert == "" {
		bad(section+".certFile", "required; %s", how)
	}
	if key == "" {
		bad(section+".keyFile", "required: the key of %s.certFile", section)
	}
	if ca == "" {
		bad(section+".caFile", "required: the CA certificate to verify peers with (`skyedge certs init` makes one)")
	}
}

func checkAddr(addr string) error {
	_, _, err := splitPort(addr)
	return err
}

func checkHTTPAddr(addr string) (string, error) {
	host, _, err := splitPort(addr)
	return host, err
}

func splitPort(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", addr, err)
	}
	if port == "" {
		return "", "", fmt.Errorf("%q: missing port", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return "", "", fmt.Errorf("%q: bad port %q", addr, port)
	}
	return host, port, nil
}

// isLoopback reports whether host only accepts local connections. An
// empty host or an unspecified address listens on every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
