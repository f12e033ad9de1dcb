package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skyedge/skyedge/agent/internal/uplink"
	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// Config configures an Agent. Start from DefaultConfig.
type Config struct {
	// NodeID is the node's identity: the MQTT client ID and the common
	// name of its client certificate.
	NodeID string
	// Labels are sent in every hello; the scheduler matches workloads
	// against them.
	Labels map[string]string
	// Broker is "tls://host:port" (also "ssl://" or "mqtts://"); "tcp://"
	// only when AllowPlaintext is set.
	Broker         string
	AllowPlaintext bool
	// TLS is the client configuration, with the node's certificate
	// (pki.ClientTLS builds it).
	TLS *tls.Config
	// KeepAlive is the MQTT keep-alive.
	KeepAlive time.Duration
	// ReportInterval is the time between resource reports.
	ReportInterval time.Duration
	// DataDir holds the agent's state: the boot epoch and the outbox.
	// Required.
	DataDir string
	// Reconnect is the backoff between connection attempts.
	Reconnect backoff.Policy
	// Version is the agent's version, reported in the hello.
	Version string
	// Logger receives state changes (connected, lost, dropped reports);
	// nil discards them.
	Logger *slog.Logger
	// Clock drives reports, backoff and timestamps; nil means the real
	// clock.
	Clock clock.Clock
	// Source produces facts and samples; nil means the host's own
	// (agent/internal/collect). A fleet simulator sets its own.
	Source Source

	// Outbox holds the durable outbox's policies: per-class quotas, TTLs
	// and when-full rules, the telemetry compaction tiers and the sync
	// interval (how much unsynced telemetry a power cut may take). The
	// agent sets NodeID, BootEpoch, Clock and Logger. Zero fields, and
	// classes whose Policy is zero, take outbox.DefaultConfig's values.
	Outbox outbox.Config
	// OutboxStorage sizes the outbox's Badger database and its disk
	// guard. The agent sets Dir to DataDir/outbox; zero fields take
	// badgerq.DefaultOptions's values.
	OutboxStorage badgerq.Options
	// Drain paces and bounds the sending of the outbox. The agent sets
	// NodeID, BootEpoch, Clock and Logger. Zero fields take
	// drain.DefaultConfig's values; a Profile without a name is
	// drain.AWSIoTCore, whose limits every broker accepts.
	Drain drain.Config
	// WelcomeTimeout is how long the agent waits after a connect for the
	// cloud's Welcome, which says where resending starts. Without one by
	// then it sends its whole outbox (the cloud drops what it already
	// has) rather than stay silent.
	WelcomeTimeout time.Duration
	// Workloads configures the workloads the node runs for the cloud.
	Workloads WorkloadsConfig

	// Dial opens the TCP connection to the broker; nil means a
	// net.Dialer. A fleet simulator binds each node to its own source
	// address with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OpenOutbox opens the outbox instead of the Badger one in
	// DataDir/outbox; cfg is Outbox with the node, boot epoch, clock and
	// logger set. The agent's own state (desired workloads, last contact)
	// then lives in memory. For fleet simulators, which measure the
	// cloud and the link, not thousands of local disks: an in-memory
	// outbox (sync/outbox/memq) loses everything on restart. Nil in
	// production.
	OpenOutbox func(cfg outbox.Config) (outbox.Queue, error)
}

// Defaults of Config.
const (
	DefaultKeepAlive      = 30 * time.Second
	DefaultReportInterval = 10 * time.Second
	DefaultWelcomeTimeout = time.Minute
)

// OutboxDir is the outbox's directory in the data directory.
const OutboxDir = "outbox"

// DefaultConfig returns a Config with every default set; the caller adds
// the node, broker, TLS and data directory.
func DefaultConfig() Config {
	return Config{
		KeepAlive:      DefaultKeepAlive,
		ReportInterval: DefaultReportInterval,
		Reconnect:      backoff.DefaultPolicy,
		Version:        "dev",
		Logger:         slog.New(slog.DiscardHandler),
		Clock:          clock.Real,
		Outbox:         outbox.DefaultConfig(),
		OutboxStorage:  edgeStorage(),
		Drain:          drain.DefaultConfig(),
		WelcomeTimeout: DefaultWelcomeTimeout,
		Workloads:      defaultWorkloads(),
	}
}

// edgeStorage is badgerq's edge profile with the smallest memtable it
// allows. A memtable's arena (1.3 times its size) lives on the Go heap
// and is all resident once reused memory is zeroed for it; at a report
// every 10 s a 4 MiB memtable still holds about two days of writes.
func edgeStorage() badgerq.Options {
	o := badgerq.DefaultOptions("")
	o.MemTableSize = 4 << 20
	return o
}

// fillOutbox gives the zero fields of c the values of d.
func fillOutbox(c *outbox.Config, d outbox.Config) {
	for i, p := range c.Policies {
		if p == (outbox.Policy{}) {
			c.Policies[i] = d.Policies[i]
		}
	}
	if c.Tiers == nil {
		c.Tiers = d.Tiers
	}
	setZero(&c.SyncInterval, d.SyncInterval)
	setZero(&c.MaintainInterval, d.MaintainInterval)
	setZero(&c.ExpireInterval, d.ExpireInterval)
	setZero(&c.MaxGapRanges, d.MaxGapRanges)
}

// fillStorage gives the zero fields of o the values of d.
func fillStorage(o *badgerq.Options, d badgerq.Options) {
	setZero(&o.MinFreeBytes, d.MinFreeBytes)
	setZero(&o.MinFreePercent, d.MinFreePercent)
	setZero(&o.MaxDiskBytes, d.MaxDiskBytes)
	setZero(&o.GCInterval, d.GCInterval)
	setZero(&o.MemTableSize, d.MemTableSize)
	setZero(&o.ValueLogFileSize, d.ValueLogFileSize)
}

// fillDrain gives the zero fields of c the values of d.
func fillDrain(c *drain.Config, d drain.Config) {
	if c.Profile.Name == "" {
		c.Profile = d.Profile
	}
	setZero(&c.MaxInFlight, d.MaxInFlight)
	setZero(&c.AckTimeout, d.AckTimeout)
	setZero(&c.ResumeJitter, d.ResumeJitter)
	setZero(&c.MaxBatchBytes, d.MaxBatchBytes)
	setZero(&c.MaxBatchEnvelopes, d.MaxBatchEnvelopes)
	setZero(&c.PollInterval, d.PollInterval)
	setZero(&c.RetryDelay, d.RetryDelay)
	setZero(&c.MaxRetryDelay, d.MaxRetryDelay)
}

func setZero[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// validate checks c and fills zero values with defaults.
func (c *Config) validate() error {
	d := DefaultConfig()
	if c.KeepAlive == 0 {
		c.KeepAlive = d.KeepAlive
	}
	if c.ReportInterval == 0 {
		c.ReportInterval = d.ReportInterval
	}
	if c.Reconnect == (backoff.Policy{}) {
		c.Reconnect = d.Reconnect
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.WelcomeTimeout == 0 {
		c.WelcomeTimeout = d.WelcomeTimeout
	}
	fillOutbox(&c.Outbox, d.Outbox)
	c.Outbox.Tiers = slices.Clone(c.Outbox.Tiers)
	fillStorage(&c.OutboxStorage, d.OutboxStorage)
	fillDrain(&c.Drain, d.Drain)
	c.Labels = maps.Clone(c.Labels) // the caller may reuse its map
	var errs []error
	if err := protocol.ValidateNodeID(c.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("node ID: %w", err))
	}
	errs = append(errs, validateLabels("labels", c.Labels)...)
	b, err := uplink.ParseBroker(c.Broker)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("broker %q: %w", c.Broker, err))
	case !b.TLS && !c.AllowPlaintext:
		errs = append(errs, fmt.Errorf("broker %q: plaintext MQTT needs AllowPlaintext", c.Broker))
	case b.TLS && c.TLS == nil:
		errs = append(errs, fmt.Errorf("broker %q: TLS configuration missing (build it with pki.ClientTLS)", c.Broker))
	case b.TLS:
		if err := checkCertIdentity(c.TLS, c.NodeID); err != nil {
			errs = append(errs, err)
		}
	}
	if c.KeepAlive < 0 || c.ReportInterval < 0 {
		errs = append(errs, errors.New("KeepAlive and ReportInterval must be positive"))
	}
	if c.WelcomeTimeout < 0 {
		errs = append(errs, errors.New("WelcomeTimeout must be positive"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir: required (the agent keeps its boot epoch and outbox there)"))
	}
	errs = append(errs, c.Workloads.validate()...)
	// The identity fields are the agent's; check the rest as the outbox
	// and the drainer will.
	oc, dc, so := c.Outbox, c.Drain, c.OutboxStorage
	oc.NodeID, dc.NodeID, so.Dir = c.NodeID, c.NodeID, filepath.Join(c.DataDir, OutboxDir)
	if protocol.ValidateNodeID(c.NodeID) == nil {
		for _, err := range []error{oc.Validate(), dc.Validate(), so.Validate()} {
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkCertIdentity checks that the client certificate is the node's:
// the broker and the bridge take the certificate's common name as the
// node's identity and refuse a client ID that differs.
func checkCertIdentity(c *tls.Config, node string) error {
	if len(c.Certificates) == 0 || len(c.Certificates[0].Certificate) == 0 {
		return errors.New("TLS configuration has no client certificate: nodes authenticate with one whose common name is the node ID")
	}
	leaf := c.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
	}
	if cn := leaf.Subject.CommonName; cn != node {
		return fmt.Errorf("client certificate is for node %q (its common name) but the node ID is %q: use the certificate issued for %q, or run as node %q", cn, node, node, cn)
	}
	return nil
}

// validateLabels checks labels against the protocol's limits and the
// Kubernetes label key syntax, which the scheduler's selectors assume.
// field names the setting in errors.
func validateLabels(field string, labels map[string]string) []error {
	var errs []error
	if n := len(labels); n > protocol.MaxLabels {
		errs = append(errs, fmt.Errorf("%s: %d labels, at most %d allowed", field, n, protocol.MaxLabels))
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := validateLabelKey(k); err != nil {
			errs = append(errs, fmt.Errorf("%s key %q: %w", field, k, err))
		}
		if v := labels[k]; len(v) > protocol.MaxLabelLength || strings.ContainsFunc(v, isControl) {
			errs = append(errs, fmt.Errorf("%s.%s: value must be at most %d bytes of printable text", field, k, protocol.MaxLabelLength))
		}
	}
	return errs
}

// validateLabelKey accepts "name" or "prefix/name": a name of 1-63
// characters of [A-Za-z0-9._-] starting and ending alphanumeric, and an
// optional DNS-subdomain prefix (e.g. "skyedge.io/zone").
func validateLabelKey(k string) error {
	if k == "" || len(k) > protocol.MaxLabelLength {
		return fmt.Errorf("must be 1 to %d bytes", protocol.MaxLabelLength)
	}
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	} else if prefix == "" || strings.Contains(name, "/") {
		return errors.New("at most one '/', between a DNS prefix and the name (e.g. skyedge.io/zone)")
	}
	if len(name) > 63 || !validLabelName(name) {
		return errors.New("name must be 1 to 63 characters of a-z, A-Z, 0-9, '-', '_', '.', starting and ending with a letter or digit")
	}
	if hasPrefix {
		for _, part := range strings.Split(prefix, ".") {
			if part == "" || len(part) > 63 || !validLabelName(part) || strings.ContainsAny(part, "_") {
				return fmt.Errorf("prefix %q must be a DNS subdomain (e.g. skyedge.io)", prefix)
			}
		}
	}
	return nil
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(s)-1 || c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
