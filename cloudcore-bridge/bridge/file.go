package bridge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/skyedge/skyedge/internal/pki"
)

// Identity of the configuration file format.
const (
	APIVersion = "skyedge.io/v1alpha1"
	Kind       = "BridgeConfig"
)

// FileConfig is the bridge's YAML configuration file:
//
//	apiVersion: skyedge.io/v1alpha1
//	kind: BridgeConfig
//	dataDir: /var/lib/skyedge-bridge
//	mode: embedded                  # or external
//	embedded:
//	  listen: ":8883"
//	  certFile: /etc/skyedge/bridge.crt
//	  keyFile: /etc/skyedge/bridge.key
//	  caFile: /etc/skyedge/ca.crt
//	external:
//	  broker: tls://emqx.example.com:8883
//	  shareGroup: skyedge-bridge
//	  keepAlive: 30s
//	http:
//	  listen: 127.0.0.1:8080
//	  tokenFile: /etc/skyedge/api-token
//	registry:
//	  flushInterval: 100ms          # nodes are acknowledged after each flush
//	workloads:
//	  catalogFile: /etc/skyedge/clouds.yaml  # cloud regions; omit for edge only
//	  reconcileInterval: 2s         # placement passes when nothing changes
//	  logsTimeout: 10s              # how long a logs request waits for its node
//	  nodeLostAfter: 0s             # give up silent nodes; 0: each workload's lostAfter
//	log:
//	  level: info                   # debug, info, warn, error
//	  format: text                  # text, json
type FileConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	DataDir    string `yaml:"dataDir"`
	Mode       string `yaml:"mode"`
	Embedded   struct {
		Listen      string `yaml:"listen"`
		PlainListen string `yaml:"plainListen"`
		CertFile    string `yaml:"certFile"`
		KeyFile     string `yaml:"keyFile"`
		CAFile      string `yaml:"caFile"`
	} `yaml:"embedded"`
	External struct {
		Broker     string        `yaml:"broker"`
		ClientID   string        `yaml:"clientID"`
		ShareGroup string        `yaml:"shareGroup"`
		CertFile   string        `yaml:"certFile"`
		KeyFile    string        `yaml:"keyFile"`
		CAFile     string        `yaml:"caFile"`
		KeepAlive  time.Duration `yaml:"keepAlive"`
		Workers    int           `yaml:"workers"`
	} `yaml:"external"`
	HTTP struct {
		Listen    string `yaml:"listen"`
		Token     string `yaml:"token"`
		TokenFile string `yaml:"tokenFile"`
		// CertFile and KeyFile serve the API over TLS; ClientCAFile
		// also requires client certificates signed by that CA.
		CertFile     string `yaml:"certFile"`
		KeyFile      string `yaml:"keyFile"`
		ClientCAFile string `yaml:"clientCAFile"`
	} `yaml:"http"`
	Registry struct {
		FlushInterval time.Duration `yaml:"flushInterval"`
	} `yaml:"registry"`
	Workloads struct {
		CatalogFile       string        `yaml:"catalogFile"`
		ReconcileInterval time.Duration `yaml:"reconcileInterval"`
		LogsTimeout       time.Duration `yaml:"logsTimeout"`
		NodeLostAfter     time.Duration `yaml:"nodeLostAfter"`
	} `yaml:"workloads"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
}

// DefaultFileConfig is the file configuration of DefaultConfig.
func DefaultFileConfig() FileConfig {
	d := DefaultConfig()
	var f FileConfig
	f.APIVersion, f.Kind = APIVersion, Kind
	f.DataDir, f.Mode = d.DataDir, d.Mode
	f.Embedded.Listen = d.Embedded.ListenAddr
	f.External.ShareGroup, f.External.KeepAlive = d.External.ShareGroup, d.External.KeepAlive
	f.HTTP.Listen = d.HTTPAddr
	f.Workloads.ReconcileInterval, f.Workloads.LogsTimeout = d.ReconcileInterval, d.LogsTimeout
	f.Log.Level, f.Log.Format = "info", "text"
	return f
}

// LoadFile reads a configuration file over DefaultFileConfig. Unknown
// fields are errors, so that a misspelt key is not silently ignored.
func LoadFile(path string) (FileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return FileConfig{}, fmt.Errorf("load config: %w", err)
	}
	f := DefaultFileConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return FileConfig{}, fmt.Errorf("load config %s: %w", path, err)
	}
	return f, nil
}

// Set overrides one setting by its command-line flag name. -cert, -key
// and -ca set the certificate of whichever mode runs.
func (f *FileConfig) Set(flag, value string) error {
	switch flag {
	case "data-dir":
		f.DataDir = value
	case "mode":
		f.Mode = value
	case "mqtt":
		f.Embedded.Listen = value
	case "mqtt-plain":
		f.Embedded.PlainListen = value
	case "cert":
		f.Embedded.CertFile, f.External.CertFile = value, value
	case "key":
		f.Embedded.KeyFile, f.External.KeyFile = value, value
	case "ca":
		f.Embedded.CAFile, f.External.CAFile = value, value
	case "broker":
		f.External.Broker = value
	case "share-group":
		f.External.ShareGroup = value
	case "http":
		f.HTTP.Listen = value
	case "http-token":
		f.HTTP.Token, f.HTTP.TokenFile = value, ""
	case "catalog":
		f.Workloads.CatalogFile = value
	case "log-level":
		f.Log.Level = value
	case "log-format":
		f.Log.Format = value
	default:
		return fmt.Errorf("no setting for flag -%s", flag)
	}
	return nil
}

// Validate checks every rule and returns all problems found, joined; each
// names the field and how to fix it.
func (f FileConfig) Validate() error {
	var errs []error
	if f.APIVersion != APIVersion {
		errs = append(errs, fmt.Errorf("apiVersion: %q is not supported; want %q", f.APIVersion, APIVersion))
	}
	if f.Kind != Kind {
		errs = append(errs, fmt.Errorf("kind: %q is not a bridge configuration; want %q", f.Kind, Kind))
	}
	if _, err := parseLevel(f.Log.Level); err != nil {
		errs = append(errs, err)
	}
	if f.Log.Format != "text" && f.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q; want text or json", f.Log.Format))
	}
	if f.HTTP.Token != "" && f.HTTP.TokenFile != "" {
		errs = append(errs, errors.New("http.token and http.tokenFile are both set; keep one (tokenFile keeps the secret out of this file)"))
	}
	if (f.HTTP.CertFile == "") != (f.HTTP.KeyFile == "") {
		errs = append(errs, errors.New("http.certFile and http.keyFile: set both to serve TLS, or neither"))
	}
	if f.HTTP.ClientCAFile != "" && f.HTTP.CertFile == "" {
		errs = append(errs, errors.New("http.clientCAFile: mutual TLS needs http.certFile and http.keyFile too"))
	}
	cfg := f.shape()
	if f.HTTP.TokenFile != "" {
		cfg.HTTPToken = "(from tokenFile)" // checked when the file is read
	}
	if f.HTTP.ClientCAFile != "" {
		cfg.HTTPTLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// shape is f as a Config, without reading any file.
func (f FileConfig) shape() Config {
	c := DefaultConfig()
	c.DataDir, c.Mode = f.DataDir, f.Mode
	c.Embedded = EmbeddedConfig{
		ListenAddr: f.Embedded.Listen, PlainAddr: f.Embedded.PlainListen,
		CertFile: f.Embedded.CertFile, KeyFile: f.Embedded.KeyFile, CAFile: f.Embedded.CAFile,
	}
	c.External = ExternalConfig{
		Broker: f.External.Broker, ClientID: f.External.ClientID, ShareGroup: f.External.ShareGroup,
		CertFile: f.External.CertFile, KeyFile: f.External.KeyFile, CAFile: f.External.CAFile,
		KeepAlive: f.External.KeepAlive, Workers: f.External.Workers,
	}
	c.HTTPAddr, c.HTTPToken = f.HTTP.Listen, f.HTTP.Token
	c.FlushInterval = f.Registry.FlushInterval
	c.CatalogFile = f.Workloads.CatalogFile
	c.ReconcileInterval, c.LogsTimeout = f.Workloads.ReconcileInterval, f.Workloads.LogsTimeout
	c.NodeLostAfter = f.Workloads.NodeLostAfter
	return c
}

// Config validates f and converts it into a Config logging to w. It reads
// the API's token file and TLS files.
func (f FileConfig) Config(w io.Writer) (Config, error) {
	if err := f.Validate(); err != nil {
		return Config{}, err
	}
	c := f.shape()
	c.Logger = f.Logger(w)
	if f.HTTP.TokenFile != "" {
		b, err := os.ReadFile(f.HTTP.TokenFile)
		if err != nil {
			return Config{}, fmt.Errorf("http.tokenFile: %w", err)
		}
		c.HTTPToken = strings.TrimSpace(string(b))
	}
	if f.HTTP.CertFile != "" {
		var err error
		if f.HTTP.ClientCAFile != "" {
			c.HTTPTLS, err = pki.ServerTLS(f.HTTP.CertFile, f.HTTP.KeyFile, f.HTTP.ClientCAFile)
		} else {
			var cert tls.Certificate
			cert, err = tls.LoadX509KeyPair(f.HTTP.CertFile, f.HTTP.KeyFile)
			c.HTTPTLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		}
		if err != nil {
			return Config{}, fmt.Errorf("http.certFile: %w", err)
		}
	}
	if err := c.Validate(); err != nil { // the token file's content
		return Config{}, err
	}
	return c, nil
}

// Logger builds the logger the file asks for, writing to w.
func (f FileConfig) Logger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(f.Log.Level)
	opts := &slog.HandlerOptions{Level: level}
	if f.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level: %q; want debug, info, warn or error", s)
}
