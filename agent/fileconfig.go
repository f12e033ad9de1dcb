package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/skyedge/skyedge/agent/internal/uplink"
	"github.com/skyedge/skyedge/internal/pki"
	"github.com/skyedge/skyedge/protocol"
)

// The version and kind a configuration file must declare.
const (
	APIVersion = "skyedge.io/v1alpha1"
	Kind       = "AgentConfig"
)

// Bounds of the file configuration.
const (
	// MinKeepAlive and MaxKeepAlive bound cloud.keepAlive. AWS IoT Core
	// accepts 30 s to 1200 s; brokers under SkyEdge's control accept
	// shorter ones, which detect a dead cellular link sooner at the price
	// of more pings.
	MinKeepAlive = 5 * time.Second
	MaxKeepAlive = 20 * time.Minute
	// MinReportInterval and MaxReportInterval bound report.interval.
	MinReportInterval = 100 * time.Millisecond
	MaxReportInterval = 24 * time.Hour
)

// FileConfig is the agent's configuration file:
//
//	apiVersion: skyedge.io/v1alpha1
//	kind: AgentConfig
//	node: {name: truck-042, labels: {role: vehicle, zone: eu-west}}
//	cloud:
//	  broker: tls://bridge.example:8883
//	  caFile: /etc/skyedge/ca.crt
//	  certFile: /etc/skyedge/truck-042.crt
//	  keyFile: /etc/skyedge/truck-042.key
//	  serverName: ""        # overrides the name checked in the broker's certificate
//	  keepAlive: 30s
//	  allowPlaintext: false
//	report: {interval: 10s}
//	dataDir: /var/lib/skyedge
//	outbox:                  # what is kept while offline (see OutboxFileConfig)
//	  control:   {quota: 4Mi,  ttl: 168h}
//	  event:     {quota: 16Mi, ttl: 168h}
//	  telemetry: {quota: 32Mi, ttl: 72h}
//	  maxDisk: 256Mi
//	  drainProfile: aws-iot-core
//	workloads:               # what the node runs (see WorkloadsFileConfig)
//	  enabled: true
//	  dockerSocket: /var/run/docker.sock
//	log: {level: info, format: text}
//
// Durations are Go duration strings (30s, 5m, 1h); sizes are bytes with
// an optional unit (64Mi, 1Gi, 500k; see Size). Unknown fields are
// errors, so a misspelt setting is not silently ignored.
type FileConfig struct {
	APIVersion string              `yaml:"apiVersion"`
	Kind       string              `yaml:"kind"`
	Node       NodeConfig          `yaml:"node"`
	Cloud      CloudConfig         `yaml:"cloud"`
	Report     ReportConfig        `yaml:"report"`
	DataDir    string              `yaml:"dataDir"`
	Outbox     OutboxFileConfig    `yaml:"outbox"`
	Workloads  WorkloadsFileConfig `yaml:"workloads"`
	Log        LogConfig           `yaml:"log"`
}

// NodeConfig is the file's node section.
type NodeConfig struct {
	// Name is the node ID; it must equal the certificate's common name.
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

// CloudConfig is the file's cloud section: how to reach the broker.
type CloudConfig struct {
	Broker         string        `yaml:"broker"`
	CAFile         string        `yaml:"caFile"`
	CertFile       string        `yaml:"certFile"`
	KeyFile        string        `yaml:"keyFile"`
	ServerName     string        `yaml:"serverName"`
	KeepAlive      time.Duration `yaml:"keepAlive"`
	AllowPlaintext bool          `yaml:"allowPlaintext"`
}

// ReportConfig is the file's report section.
type ReportConfig struct {
	Interval time.Duration `yaml:"interval"`
}

// LogConfig is the file's log section.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// DefaultFileConfig returns the defaults a file or the command line
// overrides. It has no node, broker, certificates or data directory.
func DefaultFileConfig() *FileConfig {
	return &FileConfig{
		APIVersion: APIVersion,
		Kind:       Kind,
		Cloud:      CloudConfig{KeepAlive: DefaultKeepAlive},
		Report:     ReportConfig{Interval: DefaultReportInterval},
		Outbox:     defaultOutboxFileConfig(),
		Workloads:  defaultWorkloadsFileConfig(),
		Log:        LogConfig{Level: "info", Format: "text"},
	}
}

// LoadFile reads a configuration file over the defaults. It checks the
// syntax only (unknown fields, durations); call Validate for the rest.
func LoadFile(path string) (*FileConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	f := DefaultFileConfig()
	f.APIVersion, f.Kind = "", "" // the file must say what it is
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("load config %s: the file is empty", path)
		}
		hint := ""
		if strings.Contains(err.Error(), "time.Duration") {
			hint = " (durations are Go duration strings such as 30s, 5m or 1h)"
		}
		return nil, fmt.Errorf("load config %s: %w%s", path, err, hint)
	}
	return f, nil
}

// Validate checks every setting and returns all the problems at once,
// each naming the field and how to fix it.
func (f *FileConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if f.APIVersion != APIVersion {
		add("apiVersion %q: must be %s", f.APIVersion, APIVersion)
	}
	if f.Kind != Kind {
		add("kind %q: must be %s", f.Kind, Kind)
	}
	if f.Node.Name == "" {
		add("node.name: required: the node ID, equal to the common name of the node's certificate (e.g. truck-042)")
	} else if err := protocol.ValidateNodeID(f.Node.Name); err != nil {
		add("node.name: %w", err)
	}
	errs = append(errs, validateLabels("node.labels", f.Node.Labels)...)
	errs = append(errs, f.Cloud.validate()...)
	if iv := f.Report.Interval; iv < MinReportInterval || iv > MaxReportInterval {
		add("report.interval %s: must be between %s and %s", iv, MinReportInterval, MaxReportInterval)
	}
	if f.DataDir == "" {
		add("dataDir: required: a directory the agent may write, e.g. /var/lib/skyedge")
	}
	errs = append(errs, f.Outbox.validate()...)
	errs = append(errs, f.Workloads.validate()...)
	if _, err := parseLevel(f.Log.Level); err != nil {
		add("log.level %q: must be debug, info, warn or error", f.Log.Level)
	}
	if f.Log.Format != "text" && f.Log.Format != "json" {
		add("log.format %q: must be text or json", f.Log.Format)
	}
	return errors.Join(errs...)
}

func (c *CloudConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	b, err := uplink.ParseBroker(c.Broker)
	switch {
	case c.Broker == "":
		add("cloud.broker: required, e.g. tls://bridge.example:8883")
	case errors.Is(err, uplink.ErrScheme):
		add("cloud.broker %q: %v (tcp:// needs cloud.allowPlaintext: true)", c.Broker, err)
	case err != nil:
		add("cloud.broker %q: %v", c.Broker, err)
	case !b.TLS && !c.AllowPlaintext:
		add("cloud.broker %q: plaintext MQTT: use tls://, or set cloud.allowPlaintext: true on a trusted network", c.Broker)
	}
	if err != nil || b.TLS {
		for _, file := range []struct{ field, path, what string }{
			{"cloud.caFile", c.CAFile, "the CA bundle that signed the broker's certificate"},
			{"cloud.certFile", c.CertFile, "the node's certificate"},
			{"cloud.keyFile", c.KeyFile, "the node's private key"},
		} {
			if file.path == "" {
				add("%s: required for a TLS broker: %s", file.field, file.what)
			} else if err := readable(file.path); err != nil {
				add("%s %q: %v", file.field, file.path, err)
			}
		}
	}
	if c.KeepAlive < MinKeepAlive || c.KeepAlive > MaxKeepAlive {
		add("cloud.keepAlive %s: must be between %s and %s (AWS IoT Core accepts 30s to 20m)", c.KeepAlive, MinKeepAlive, MaxKeepAlive)
	}
	if strings.ContainsAny(c.ServerName, " /:") {
		add("cloud.serverName %q: must be a host name, or empty to use the broker's", c.ServerName)
	}
	return errs
}

// readable checks that path is a regular file the agent can open.
func readable(path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read: %w", errors.Unwrap(err))
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory, want a PEM file")
	}
	return nil
}

// ToConfig validates f and converts it into an agent Config, loading the
// certificates. The Logger is left to the caller (see NewLogger).
func (f *FileConfig) ToConfig() (Config, error) {
	if err := f.Validate(); err != nil {
		return Config{}, err
	}
	cfg := DefaultConfig()
	cfg.NodeID = f.Node.Name
	cfg.Labels = f.Node.Labels
	cfg.Broker = f.Cloud.Broker
	cfg.AllowPlaintext = f.Cloud.AllowPlaintext
	cfg.KeepAlive = f.Cloud.KeepAlive
	cfg.ReportInterval = f.Report.Interval
	cfg.DataDir = f.DataDir
	f.Outbox.apply(&cfg)
	f.Workloads.apply(&cfg)
	if b, _ := uplink.ParseBroker(f.Cloud.Broker); b.TLS {
		tlsCfg, err := pki.ClientTLS(f.Cloud.CertFile, f.Cloud.KeyFile, f.Cloud.CAFile, f.Cloud.ServerName)
		if err != nil {
			return Config{}, fmt.Errorf("cloud: %w", err)
		}
		cfg.TLS = tlsCfg
	}
	return cfg, nil
}

// NewLogger returns the logger f.Log describes, writing to w. f must be
// valid.
func (f *FileConfig) NewLogger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(f.Log.Level)
	opts := &slog.HandlerOptions{Level: level}
	if f.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch s {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, fmt.Errorf("unknown level %q", s)
}
