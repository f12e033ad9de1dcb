package bridge

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validFile is a valid embedded-mode file configuration.
func validFile() FileConfig {
	f := DefaultFileConfig()
	f.DataDir = "/var/lib/skyedge-bridge"
	f.Embedded.CertFile, f.Embedded.KeyFile, f.Embedded.CAFile = "bridge.crt", "bridge.key", "ca.crt"
	return f
}

// validExternal is a valid external-mode file configuration.
func validExternal() FileConfig {
	f := validFile()
	f.Mode = "external"
	f.External.Broker = "tls://broker.example.com:8883"
	f.External.CertFile, f.External.KeyFile, f.External.CAFile = "bridge.crt", "bridge.key", "ca.crt"
	return f
}

func TestFileConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		base   func() FileConfig
		change func(*FileConfig)
		want   string // substring of the error; "" for valid
	}{
		{"embedded defaults are valid", validFile, func(*FileConfig) {}, ""},
		{"external is valid", validExternal, func(*FileConfig) {}, ""},
		{"wrong apiVersion", validFile, func(f *FileConfig) { f.APIVersion = "v1" }, `apiVersion: "v1" is not supported`},
		{"wrong kind", validFile, func(f *FileConfig) { f.Kind = "AgentConfig" }, `kind: "AgentConfig"`},
		{"no data dir", validFile, func(f *FileConfig) { f.DataDir = "" }, "dataDir: required"},
		{"unknown mode", validFile, func(f *FileConfig) { f.Mode = "cluster" }, `mode: "cluster" is not a mode`},
		{"bad MQTT address", validFile, func(f *FileConfig) { f.Embedded.Listen = "8883" }, "embedded.listen:"},
		{"bad plaintext address", validFile, func(f *FileConfig) { f.Embedded.PlainListen = "localhost" }, "embedded.plainListen:"},
		{"plaintext on the TLS port", validFile, func(f *FileConfig) { f.Embedded.Listen, f.Embedded.PlainListen = ":8883", ":8883" }, "embedded.plainListen: same address"},
		{"embedded without cert", validFile, func(f *FileConfig) { f.Embedded.CertFile = "" }, "embedded.certFile: required"},
		{"embedded without key", validFile, func(f *FileConfig) { f.Embedded.KeyFile = "" }, "embedded.keyFile: required"},
		{"embedded without CA", validFile, func(f *FileConfig) { f.Embedded.CAFile = "" }, "embedded.caFile: required"},
		{"external without broker", validExternal, func(f *FileConfig) { f.External.Broker = "" }, "external.broker: required"},
		{"external broker not a URL", validExternal, func(f *FileConfig) { f.External.Broker = "broker:8883" }, "external.broker:"},
		{"external broker in plaintext", validExternal, func(f *FileConfig) { f.External.Broker = "tcp://broker:1883" }, "over TLS only"},
		{"external without cert", validExternal, func(f *FileConfig) { f.External.CertFile = "" }, "external.certFile: required"},
		{"external without key", validExternal, func(f *FileConfig) { f.External.KeyFile = "" }, "external.keyFile: required"},
		{"external without CA", validExternal, func(f *FileConfig) { f.External.CAFile = "" }, "external.caFile: required"},
		{"bad client ID", validExternal, func(f *FileConfig) { f.External.ClientID = "Bridge/1" }, "external.clientID:"},
		{"bad share group", validExternal, func(f *FileConfig) { f.External.ShareGroup = "a/b" }, "external.shareGroup:"},
		{"keepalive too short", validExternal, func(f *FileConfig) { f.External.KeepAlive = time.Second }, "external.keepAlive:"},
		{"too many workers", validExternal, func(f *FileConfig) { f.External.Workers = 5000 }, "external.workers:"},
		{"bad HTTP address", validFile, func(f *FileConfig) { f.HTTP.Listen = "localhost" }, "http.listen:"},
		{"HTTP off loopback without auth", validFile, func(f *FileConfig) { f.HTTP.Listen = "0.0.0.0:8080" }, "http.listen: 0.0.0.0:8080 is reachable from other hosts"},
		{"HTTP on all interfaces without auth", validFile, func(f *FileConfig) { f.HTTP.Listen = ":8080" }, "no authentication"},
		{"HTTP off loopback with token", validFile, func(f *FileConfig) {
			f.HTTP.Listen, f.HTTP.Token = "0.0.0.0:8080", "0123456789abcdef0123"
		}, ""},
		{"HTTP off loopback with token file", validFile, func(f *FileConfig) { f.HTTP.Listen, f.HTTP.TokenFile = "0.0.0.0:8080", "/etc/token" }, ""},
		{"HTTP off loopback with mutual TLS", validFile, func(f *FileConfig) {
			f.HTTP.Listen, f.HTTP.CertFile, f.HTTP.KeyFile, f.HTTP.ClientCAFile = "10.0.0.1:8443", "a.crt", "a.key", "ca.crt"
		}, ""},
		{"HTTP disabled", validFile, func(f *FileConfig) { f.HTTP.Listen = "" }, ""},
		{"short token", validFile, func(f *FileConfig) { f.HTTP.Token = "secret" }, "http.token: 6 characters is too short"},
		{"token and token file", validFile, func(f *FileConfig) { f.HTTP.Token, f.HTTP.TokenFile = "0123456789abcdef0123", "/t" }, "keep one"},
		{"HTTP cert without key", validFile, func(f *FileConfig) { f.HTTP.CertFile = "a.crt" }, "set both"},
		{"HTTP client CA without cert", validFile, func(f *FileConfig) { f.HTTP.ClientCAFile = "ca.crt" }, "http.clientCAFile:"},
		{"flush interval too long", validFile, func(f *FileConfig) { f.Registry.FlushInterval = time.Minute }, "registry.flushInterval:"},
		{"reconcile interval too short", validFile, func(f *FileConfig) { f.Workloads.ReconcileInterval = time.Millisecond }, "workloads.reconcileInterval:"},
		{"reconcile interval default", validFile, func(f *FileConfig) { f.Workloads.ReconcileInterval = 0 }, ""},
		{"logs timeout too long", validFile, func(f *FileConfig) { f.Workloads.LogsTimeout = time.Hour }, "workloads.logsTimeout:"},
		{"node lost after too short", validFile, func(f *FileConfig) { f.Workloads.NodeLostAfter = time.Second }, "workloads.nodeLostAfter:"},
		{"node lost after a day", validFile, func(f *FileConfig) { f.Workloads.NodeLostAfter = 24 * time.Hour }, ""},
		{"bad log level", validFile, func(f *FileConfig) { f.Log.Level = "verbose" }, "log.level:"},
		{"bad log format", validFile, func(f *FileConfig) { f.Log.Format = "xml" }, "log.format:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.base()
			tt.change(&f)
			err := f.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	f := validFile()
	f.DataDir, f.Embedded.CertFile, f.Log.Format = "", "", "xml"
	err := f.Validate()
	for _, want := range []string{"dataDir:", "embedded.certFile:", "log.format:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `apiVersion: skyedge.io/v1alpha1
kind: BridgeConfig
dataDir: /data
mode: external
external:
  broker: tls://emqx:8883
  keepAlive: 45s
  certFile: b.crt
  keyFile: b.key
  caFile: ca.crt
registry:
  flushInterval: 500ms
workloads:
  catalogFile: /etc/skyedge/clouds.yaml
  reconcileInterval: 5s
`)
	f, err := LoadFile(good)
	if err != nil {
		t.Fatalf("LoadFile(good) = %v", err)
	}
	if f.External.KeepAlive != 45*time.Second || f.Registry.FlushInterval != 500*time.Millisecond {
		t.Errorf("durations = %v, %v; want 45s, 500ms", f.External.KeepAlive, f.Registry.FlushInterval)
	}
	if f.Workloads.CatalogFile != "/etc/skyedge/clouds.yaml" || f.Workloads.ReconcileInterval != 5*time.Second || f.Workloads.LogsTimeout != 10*time.Second {
		t.Errorf("workloads section = %+v, want the file's catalog and interval, the default logs timeout", f.Workloads)
	}
	if f.HTTP.Listen != "127.0.0.1:8080" || f.External.ShareGroup != "skyedge-bridge" {
		t.Errorf("defaults not kept under the file: http %q share group %q", f.HTTP.Listen, f.External.ShareGroup)
	}
	if err := f.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}

	typo := write("typo.yaml", "apiVersion: skyedge.io/v1alpha1\nkind: BridgeConfig\ndatadir: /data\n")
	if _, err := LoadFile(typo); err == nil || !strings.Contains(err.Error(), "field datadir not found") {
		t.Errorf("LoadFile(unknown field) = %v, want an error naming the field", err)
	}
	bad := write("bad.yaml", "external:\n  keepAlive: soon\n")
	if _, err := LoadFile(bad); err == nil {
		t.Errorf("LoadFile(bad duration) = nil error")
	}
}

func TestSetFlags(t *testing.T) {
	f := DefaultFileConfig()
	for flag, v := range map[string]string{
		"data-dir": "/d", "mode": "external", "mqtt": ":1", "mqtt-plain": ":2", "cert": "c", "key": "k", "ca": "a",
		"broker": "tls://b:1", "share-group": "g", "http": ":3", "http-token": "t", "log-level": "debug", "log-format": "json",
		"catalog": "clouds.yaml",
	} {
		if err := f.Set(flag, v); err != nil {
			t.Errorf("Set(%q) = %v", flag, err)
		}
	}
	got := []string{f.DataDir, f.Mode, f.Embedded.Listen, f.Embedded.PlainListen, f.Embedded.CertFile, f.External.KeyFile,
		f.External.CAFile, f.External.Broker, f.External.ShareGroup, f.HTTP.Listen, f.HTTP.Token, f.Log.Level, f.Log.Format,
		f.Workloads.CatalogFile}
	want := []string{"/d", "external", ":1", ":2", "c", "k", "a", "tls://b:1", "g", ":3", "t", "debug", "json", "clouds.yaml"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after Set: %q, want %q", got, want)
	}
	if err := f.Set("nope", "x"); err == nil {
		t.Errorf("Set(nope) = nil, want an error")
	}
}

func TestNewRefusesUnauthenticatedPublicAPI(t *testing.T) {
	p := newPKI(t)
	cfg := embeddedConfig(t, p)
	cfg.HTTPAddr = "0.0.0.0:0"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "no authentication") {
		t.Fatalf("New(public API without token) = %v, want refused", err)
	}
	cfg.HTTPToken = "0123456789abcdef-token"
	b := start(t, cfg)
	addr := strings.Replace(b.HTTPAddr(), "0.0.0.0", "127.0.0.1", 1)
	addr = strings.Replace(addr, "[::]", "127.0.0.1", 1)
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {cfg.HTTPToken, 200}} {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+addr+"/api/v1/nodes", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET /api/v1/nodes with token %q = %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestExampleConfig keeps examples/config/bridge.yaml, which README.md
// points operators to, loadable and valid.
func TestExampleConfig(t *testing.T) {
	f, err := LoadFile("../../examples/config/bridge.yaml")
	if err != nil {
		t.Fatalf("LoadFile(example) = %v", err)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("example config does not validate: %v", err)
	}
}
