package agent

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/internal/pki"
)

// certFiles makes a CA and a certificate for node in a temporary
// directory and returns the paths of the CA, certificate and key.
func certFiles(t *testing.T, node string) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	c, err := pki.InitCA(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = c.IssueFiles(dir, pki.Options{Name: node}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, pki.CACertFile), cert, key
}

// validFile is a configuration that passes Validate.
func validFile(t *testing.T) *FileConfig {
	t.Helper()
	ca, cert, key := certFiles(t, "truck-042")
	f := DefaultFileConfig()
	f.Node = NodeConfig{Name: "truck-042", Labels: map[string]string{"role": "vehicle", "skyedge.io/zone": "eu-west"}}
	f.Cloud.Broker = "tls://bridge.example:8883"
	f.Cloud.CAFile, f.Cloud.CertFile, f.Cloud.KeyFile = ca, cert, key
	f.DataDir = t.TempDir()
	return f
}

func TestValidate(t *testing.T) {
	tooMany := map[string]string{}
	for i := range 65 {
		tooMany[fmt.Sprintf("k%d", i)] = "v"
	}
	tests := []struct {
		name string
		mod  func(f *FileConfig)
		want string // a substring of the error; "" for valid
	}{
		{name: "valid", mod: func(*FileConfig) {}},
		{name: "apiVersion", mod: func(f *FileConfig) { f.APIVersion = "v1" }, want: `apiVersion "v1": must be skyedge.io/v1alpha1`},
		{name: "kind", mod: func(f *FileConfig) { f.Kind = "Agent" }, want: `kind "Agent": must be AgentConfig`},
		{name: "node.name required", mod: func(f *FileConfig) { f.Node.Name = "" }, want: "node.name: required"},
		{name: "node.name syntax", mod: func(f *FileConfig) { f.Node.Name = "Truck-042" }, want: `node.name: invalid node ID "Truck-042": upper-case letters are not allowed (use "truck-042")`},
		{name: "labels count", mod: func(f *FileConfig) { f.Node.Labels = tooMany }, want: "node.labels: 65 labels, at most 64 allowed"},
		{name: "label key syntax", mod: func(f *FileConfig) { f.Node.Labels = map[string]string{"bad key": "x"} }, want: `node.labels key "bad key": name must be`},
		{name: "label key prefix", mod: func(f *FileConfig) { f.Node.Labels = map[string]string{"Not_DNS/zone": "x"} }, want: `prefix "Not_DNS" must be a DNS subdomain`},
		{name: "label value length", mod: func(f *FileConfig) { f.Node.Labels = map[string]string{"note": strings.Repeat("x", 254)} }, want: "node.labels.note: value must be at most 253 bytes"},
		{name: "broker required", mod: func(f *FileConfig) { f.Cloud.Broker = "" }, want: "cloud.broker: required"},
		{name: "broker scheme", mod: func(f *FileConfig) { f.Cloud.Broker = "http://x" }, want: `cloud.broker "http://x": scheme must be tls://, ssl:// or mqtts:// (tcp:// needs cloud.allowPlaintext: true)`},
		{name: "broker host", mod: func(f *FileConfig) { f.Cloud.Broker = "tls://:8883" }, want: `cloud.broker "tls://:8883": no host`},
		{name: "broker port", mod: func(f *FileConfig) { f.Cloud.Broker = "tls://bridge.example:88830" }, want: `port "88830": want 1..65535`},
		{name: "plaintext not allowed", mod: func(f *FileConfig) { f.Cloud.Broker = "tcp://bridge.example:1883" }, want: "set cloud.allowPlaintext: true"},
		{name: "plaintext allowed needs no certificates", mod: func(f *FileConfig) {
			f.Cloud.Broker, f.Cloud.AllowPlaintext = "tcp://bridge.example:1883", true
			f.Cloud.CAFile, f.Cloud.CertFile, f.Cloud.KeyFile = "", "", ""
		}},
		{name: "caFile required", mod: func(f *FileConfig) { f.Cloud.CAFile = "" }, want: "cloud.caFile: required for a TLS broker"},
		{name: "certFile required", mod: func(f *FileConfig) { f.Cloud.CertFile = "" }, want: "cloud.certFile: required for a TLS broker"},
		{name: "keyFile required", mod: func(f *FileConfig) { f.Cloud.KeyFile = "" }, want: "cloud.keyFile: required for a TLS broker"},
		{name: "certFile readable", mod: func(f *FileConfig) { f.Cloud.CertFile = "/nonexistent/truck.crt" }, want: `cloud.certFile "/nonexistent/truck.crt": cannot read: no such file or directory`},
		{name: "keyFile not a directory", mod: func(f *FileConfig) { f.Cloud.KeyFile = f.DataDir }, want: "is a directory"},
		{name: "serverName", mod: func(f *FileConfig) { f.Cloud.ServerName = "bridge.example:8883" }, want: "cloud.serverName"},
		{name: "keepAlive too short", mod: func(f *FileConfig) { f.Cloud.KeepAlive = 2 * time.Second }, want: "cloud.keepAlive 2s: must be between 5s and 20m0s"},
		{name: "keepAlive too long", mod: func(f *FileConfig) { f.Cloud.KeepAlive = time.Hour }, want: "cloud.keepAlive 1h0m0s: must be between"},
		{name: "report.interval too short", mod: func(f *FileConfig) { f.Report.Interval = 500 * time.Millisecond }, want: "report.interval 500ms: must be between 1s and 24h0m0s"},
		{name: "report.interval too long", mod: func(f *FileConfig) { f.Report.Interval = 48 * time.Hour }, want: "report.interval 48h0m0s"},
		{name: "dataDir required", mod: func(f *FileConfig) { f.DataDir = "" }, want: "dataDir: required"},
		{name: "log.level", mod: func(f *FileConfig) { f.Log.Level = "verbose" }, want: `log.level "verbose": must be debug, info, warn or error`},
		{name: "log.format", mod: func(f *FileConfig) { f.Log.Format = "xml" }, want: `log.format "xml": must be text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := validFile(t)
			tt.mod(f)
			err := f.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate() = nil, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateCollectsAllErrors(t *testing.T) {
	f := validFile(t)
	f.Node.Name, f.DataDir, f.Log.Format = "", "", "xml"
	err := f.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want 3 errors")
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Errorf("Validate() reported %d lines, want 3:\n%v", n, err)
	}
}

func TestLoadFile(t *testing.T) {
	got, err := LoadFile("testdata/agent.yaml")
	if err != nil {
		t.Fatalf("LoadFile() error = %v", err)
	}
	want := &FileConfig{
		APIVersion: APIVersion,
		Kind:       Kind,
		Node:       NodeConfig{Name: "truck-042", Labels: map[string]string{"role": "vehicle", "zone": "eu-west", "skyedge.io/fleet": "north"}},
		Cloud: CloudConfig{
			Broker: "tls://bridge.example:8883", CAFile: "/etc/skyedge/ca.crt",
			CertFile: "/etc/skyedge/truck-042.crt", KeyFile: "/etc/skyedge/truck-042.key", KeepAlive: 45 * time.Second,
		},
		Report:  ReportConfig{Interval: 15 * time.Second},
		DataDir: "/var/lib/skyedge",
		Log:     LogConfig{Level: "info", Format: "json"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadFile() mismatch (-want +got):\n%s", diff)
	}
	// With certificates that exist, the example is valid.
	got.Cloud.CAFile, got.Cloud.CertFile, got.Cloud.KeyFile = certFiles(t, "truck-042")
	if err := got.Validate(); err != nil {
		t.Errorf("example Validate() = %v", err)
	}
}

func TestLoadFileDefaults(t *testing.T) {
	got, err := LoadFile("testdata/minimal.yaml")
	if err != nil {
		t.Fatalf("LoadFile() error = %v", err)
	}
	if got.Cloud.KeepAlive != DefaultKeepAlive || got.Report.Interval != DefaultReportInterval || got.Log != (LogConfig{"info", "text"}) {
		t.Errorf("LoadFile(minimal) = keepAlive %s, interval %s, log %+v; want the defaults", got.Cloud.KeepAlive, got.Report.Interval, got.Log)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{file: "bad-unknown-field.yaml", want: "field keepalive not found"},
		{file: "bad-duration.yaml", want: "durations are Go duration strings"},
		{file: "bad-bare-number.yaml", want: "durations are Go duration strings"},
		{file: "empty.yaml", want: "the file is empty"},
		{file: "missing.yaml", want: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadFile(%s) = %v, want an error containing %q", tt.file, err, tt.want)
			}
		})
	}
}

func TestLoadFileNeedsAPIVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte("node: {name: truck-042}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile() error = %v", err)
	}
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "apiVersion") || !strings.Contains(err.Error(), "kind") {
		t.Errorf("Validate() of a file without apiVersion and kind = %v, want both named", err)
	}
}

func TestToConfig(t *testing.T) {
	f := validFile(t)
	f.Report.Interval = 15 * time.Second
	cfg, err := f.ToConfig()
	if err != nil {
		t.Fatalf("ToConfig() error = %v", err)
	}
	if cfg.NodeID != "truck-042" || cfg.Broker != f.Cloud.Broker || cfg.ReportInterval != 15*time.Second ||
		cfg.KeepAlive != DefaultKeepAlive || cfg.DataDir != f.DataDir || cfg.Labels["role"] != "vehicle" {
		t.Errorf("ToConfig() = %+v, want the file's settings", cfg)
	}
	if cfg.TLS == nil || len(cfg.TLS.Certificates) != 1 || cfg.TLS.RootCAs == nil {
		t.Fatalf("ToConfig().TLS = %+v, want the node certificate and the CA", cfg.TLS)
	}
	if _, err := New(cfg); err != nil {
		t.Errorf("New(ToConfig()) error = %v", err)
	}

	f.Cloud.KeyFile = f.Cloud.CAFile // readable, but not the certificate's key
	if _, err := f.ToConfig(); err == nil {
		t.Errorf("ToConfig() with a mismatched key = nil error")
	}
}

func TestFlags(t *testing.T) {
	f := validFile(t)
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	flags := RegisterFlags(fs)
	err := fs.Parse([]string{"-node", "truck-043", "-interval", "30s", "-label", "role=tanker", "-label", "axle=3", "-log-format", "json"})
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	broker := f.Cloud.Broker
	flags.Apply(f)
	if f.Node.Name != "truck-043" || f.Report.Interval != 30*time.Second || f.Log.Format != "json" {
		t.Errorf("Apply() = node %q, interval %s, format %q; want the flags' values", f.Node.Name, f.Report.Interval, f.Log.Format)
	}
	if f.Cloud.Broker != broker || f.Log.Level != "info" {
		t.Errorf("Apply() changed settings whose flags were not given: broker %q, level %q", f.Cloud.Broker, f.Log.Level)
	}
	want := map[string]string{"role": "tanker", "axle": "3", "skyedge.io/zone": "eu-west"}
	if diff := cmp.Diff(want, f.Node.Labels); diff != "" {
		t.Errorf("Apply() labels mismatch (-want +got):\n%s", diff)
	}

	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	RegisterFlags(fs)
	if err := fs.Parse([]string{"-label", "novalue"}); err == nil {
		t.Errorf("Parse(-label novalue) = nil error, want key=value required")
	}
}
