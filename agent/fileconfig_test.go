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
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
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
		{name: "report.interval too short", mod: func(f *FileConfig) { f.Report.Interval = 50 * time.Millisecond }, want: "report.interval 50ms: must be between 100ms and 24h0m0s"},
		{name: "report.interval too long", mod: func(f *FileConfig) { f.Report.Interval = 48 * time.Hour }, want: "report.interval 48h0m0s"},
		{name: "dataDir required", mod: func(f *FileConfig) { f.DataDir = "" }, want: "dataDir: required"},
		{name: "log.level", mod: func(f *FileConfig) { f.Log.Level = "verbose" }, want: `log.level "verbose": must be debug, info, warn or error`},
		{name: "log.format", mod: func(f *FileConfig) { f.Log.Format = "xml" }, want: `log.format "xml": must be text or json`},
		{name: "outbox quota too small", mod: func(f *FileConfig) { f.Outbox.Control.Quota = 4 * KiB }, want: "outbox.control.quota 4Ki: must be at least 64Ki"},
		{name: "outbox ttl negative", mod: func(f *FileConfig) { f.Outbox.Event.TTL = -time.Hour }, want: "outbox.event.ttl -1h0m0s: must be 0 (keep until acknowledged) or at least 1m0s"},
		{name: "outbox ttl too short", mod: func(f *FileConfig) { f.Outbox.Telemetry.TTL = 10 * time.Second }, want: "outbox.telemetry.ttl 10s"},
		{name: "outbox ttl zero keeps until acknowledged", mod: func(f *FileConfig) { f.Outbox.Telemetry.TTL = 0 }},
		{name: "outbox maxDisk too small", mod: func(f *FileConfig) { f.Outbox.MaxDisk = 32 * MiB }, want: "outbox.maxDisk 32Mi: must be at least 64Mi"},
		{name: "outbox quotas over half the disk cap", mod: func(f *FileConfig) { f.Outbox.Telemetry.Quota = 200 * MiB },
			want: "outbox quotas total 220Mi: must be at most half of outbox.maxDisk 256Mi (raise maxDisk to 440Mi or lower the quotas)"},
		{name: "outbox large telemetry with its disk", mod: func(f *FileConfig) { f.Outbox.Telemetry.Quota, f.Outbox.MaxDisk = GiB, 3*GiB }},
		{name: "outbox drainProfile", mod: func(f *FileConfig) { f.Outbox.DrainProfile = "fast" }, want: `outbox.drainProfile "fast": must be aws-iot-core or unlimited`},
		{name: "workloads disabled", mod: func(f *FileConfig) { f.Workloads.Enabled = false }},
		{name: "workloads stateDir relative", mod: func(f *FileConfig) { f.Workloads.StateDir = "apps" }, want: `workloads.stateDir "apps": must be an absolute path`},
		{name: "workloads dockerSocket relative", mod: func(f *FileConfig) { f.Workloads.DockerSocket = "docker.sock" }, want: `workloads.dockerSocket "docker.sock": must be an absolute path`},
		{name: "workloads cgroupRoot relative", mod: func(f *FileConfig) { f.Workloads.CgroupRoot = "skyedge.slice" }, want: `workloads.cgroupRoot "skyedge.slice": must be an absolute path`},
		{name: "workloads logMaxSize too small", mod: func(f *FileConfig) { f.Workloads.LogMaxSize = 4 * KiB }, want: "workloads.logMaxSize 4Ki: must be between 64Ki and 1Gi"},
		{name: "workloads logMaxSize too large", mod: func(f *FileConfig) { f.Workloads.LogMaxSize = 2 * GiB }, want: "workloads.logMaxSize 2Gi: must be between"},
		{name: "workloads logFiles zero", mod: func(f *FileConfig) { f.Workloads.LogFiles = 0 }, want: "workloads.logFiles 0: must be between 1 and 100"},
		{name: "workloads logFiles too many", mod: func(f *FileConfig) { f.Workloads.LogFiles = 101 }, want: "workloads.logFiles 101"},
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
		Outbox: OutboxFileConfig{
			Control:      ClassFileConfig{Quota: 2 * MiB, TTL: 336 * time.Hour},
			Event:        ClassFileConfig{Quota: 8 * MiB, TTL: 168 * time.Hour}, // the default TTL
			Telemetry:    ClassFileConfig{Quota: 96 * MiB},
			MaxDisk:      512 * MiB,
			DrainProfile: "unlimited",
		},
		Workloads: WorkloadsFileConfig{
			Enabled: true, StateDir: "/var/lib/skyedge/apps", DockerSocket: "/run/docker.sock",
			CgroupRoot: "/sys/fs/cgroup/skyedge.slice", DisableLimits: true, LogMaxSize: 4 * MiB, LogFiles: 5,
		},
		Log: LogConfig{Level: "info", Format: "json"},
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
	want := OutboxFileConfig{
		Control:      ClassFileConfig{Quota: 4 * MiB, TTL: 7 * 24 * time.Hour},
		Event:        ClassFileConfig{Quota: 16 * MiB, TTL: 7 * 24 * time.Hour},
		Telemetry:    ClassFileConfig{Quota: 32 * MiB, TTL: 3 * 24 * time.Hour},
		MaxDisk:      256 * MiB,
		DrainProfile: "aws-iot-core",
	}
	if diff := cmp.Diff(want, got.Outbox); diff != "" {
		t.Errorf("LoadFile(minimal) outbox defaults (-want +got):\n%s", diff)
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
		{file: "bad-size.yaml", want: `size "32 megabytes": sizes are whole numbers with an optional unit Ki, Mi, Gi, Ti`},
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
	f.Outbox.Telemetry = ClassFileConfig{Quota: 64 * MiB, TTL: 24 * time.Hour}
	f.Outbox.DrainProfile = "unlimited"
	if cfg, err = f.ToConfig(); err != nil {
		t.Fatalf("ToConfig() error = %v", err)
	}
	tel := cfg.Outbox.Policies[outbox.Telemetry]
	if tel.Quota != 64<<20 || tel.TTL != 24*time.Hour || tel.WhenFull != outbox.Compact || cfg.Drain.Profile != drain.Unlimited ||
		cfg.OutboxStorage.MaxDiskBytes != 256<<20 || cfg.Outbox.Policies[outbox.Control].Quota != 4<<20 {
		t.Errorf("ToConfig() outbox = %+v, drain profile %+v, storage %+v; want the file's telemetry policy and profile, defaults elsewhere",
			cfg.Outbox.Policies, cfg.Drain.Profile, cfg.OutboxStorage)
	}
	if w := cfg.Workloads; w.Disabled || w.StateDir != "" || w.DockerSocket != "/var/run/docker.sock" || w.LogMaxBytes != 1<<20 || w.LogFiles != 3 {
		t.Errorf("ToConfig() workloads = %+v, want the defaults", w)
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
	err := fs.Parse([]string{"-node", "truck-043", "-interval", "30s", "-label", "role=tanker", "-label", "axle=3", "-log-format", "json", "-drain-profile", "unlimited",
		"-workloads=false", "-docker-socket", "/run/docker.sock"})
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	broker := f.Cloud.Broker
	flags.Apply(f)
	if f.Node.Name != "truck-043" || f.Report.Interval != 30*time.Second || f.Log.Format != "json" || f.Outbox.DrainProfile != "unlimited" {
		t.Errorf("Apply() = node %q, interval %s, format %q, drain profile %q; want the flags' values",
			f.Node.Name, f.Report.Interval, f.Log.Format, f.Outbox.DrainProfile)
	}
	if f.Workloads.Enabled || f.Workloads.DockerSocket != "/run/docker.sock" {
		t.Errorf("Apply() workloads = %+v, want disabled with the flag's socket", f.Workloads)
	}
	if cfg, err := f.ToConfig(); err != nil || !cfg.Workloads.Disabled {
		t.Errorf("ToConfig() after -workloads=false = %+v, %v; want workloads disabled", cfg.Workloads, err)
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

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr bool
	}{
		{in: "64Mi", want: 64 << 20},
		{in: "64MiB", want: 64 << 20},
		{in: "1Gi", want: 1 << 30},
		{in: "512Ki", want: 512 << 10},
		{in: "2Ti", want: 2 << 40},
		{in: "500k", want: 500_000},
		{in: "500kB", want: 500_000},
		{in: "3M", want: 3_000_000},
		{in: "1G", want: 1_000_000_000},
		{in: "1048576", want: 1 << 20},
		{in: "10B", want: 10},
		{in: " 8Mi ", want: 8 << 20},
		{in: "", wantErr: true},
		{in: "Mi", wantErr: true},
		{in: "1.5Gi", wantErr: true},
		{in: "-1Mi", wantErr: true},
		{in: "64 megabytes", wantErr: true},
		{in: "64mi", wantErr: true},
		{in: "1BB", wantErr: true},
		{in: "99999999999Ti", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
	for _, s := range []Size{0, 1, 1000, KiB, 64 * MiB, 3 * GiB, TiB + KiB} {
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Errorf("ParseSize(%q) = %d, %v; want %d back", s.String(), back, err, s)
		}
	}
}

// TestExampleConfig keeps examples/config/agent.yaml, which README.md
// points operators to, loadable and valid (its certificate files are
// the operator's, so only the file's own rules are checked).
func TestExampleConfig(t *testing.T) {
	f, err := LoadFile("../examples/config/agent.yaml")
	if err != nil {
		t.Fatalf("LoadFile(example) = %v", err)
	}
	for _, e := range strings.Split(fmt.Sprint(f.Validate()), "\n") {
		if e != "<nil>" && !strings.Contains(e, "File") && !strings.Contains(e, "no such file") {
			t.Errorf("example config: %s", e)
		}
	}
}
