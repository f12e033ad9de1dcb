package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent"
	"github.com/skyedge/skyedge/cloudcore-bridge/bridge"
	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/internal/pki"
)

// fleetPKI is a throwaway CA with a server certificate for the bridge.
type fleetPKI struct {
	dir    string
	caFile string
	ca     *pki.CA
}

func newPKI(t testing.TB) *fleetPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.InitCA(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := &fleetPKI{dir: dir, caFile: filepath.Join(dir, pki.CACertFile), ca: ca}
	if _, _, err := ca.IssueFiles(dir, pki.Options{Name: "bridge", Server: true, Hosts: []string{"localhost", "127.0.0.1"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return p
}

// files issues (once) a client certificate for name and returns its paths.
func (p *fleetPKI) files(t testing.TB, name string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if _, err := os.Stat(cert); err == nil {
		return cert, key
	}
	if _, _, err := p.ca.IssueFiles(p.dir, pki.Options{Name: name}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (p *fleetPKI) clientTLS(t testing.TB, name string) *tls.Config {
	t.Helper()
	cert, key := p.files(t, name)
	conf, err := pki.ClientTLS(cert, key, p.caFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runningBridge is a bridge running in-process until the test ends.
type runningBridge struct {
	*bridge.Bridge
	stop func()
}

func startBridge(t testing.TB, p *fleetPKI, dataDir string, mutate func(*bridge.Config)) *runningBridge {
	t.Helper()
	cfg := bridge.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Embedded.ListenAddr = "127.0.0.1:0"
	cfg.Embedded.CertFile = filepath.Join(p.dir, "bridge.crt")
	cfg.Embedded.KeyFile = filepath.Join(p.dir, "bridge.key")
	cfg.Embedded.CAFile = p.caFile
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Logger = testLogger(t).With("process", "bridge")
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := bridge.New(cfg)
	if err != nil {
		t.Fatalf("bridge.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("bridge stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("bridge not ready in 30s")
	}
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bridge.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("bridge did not stop in 30s")
		}
	}
	t.Cleanup(stop)
	return &runningBridge{Bridge: b, stop: stop}
}

// runningAgent is an agent running in-process.
type runningAgent struct {
	*agent.Agent
	stop func()
}

func startAgent(t testing.TB, p *fleetPKI, name, broker string, labels map[string]string, mutate func(*agent.Config)) *runningAgent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.NodeID = name
	cfg.Labels = labels
	cfg.Broker = "tls://" + broker
	cfg.TLS = p.clientTLS(t, name)
	cfg.DataDir = filepath.Join(t.TempDir(), name)
	cfg.ReportInterval = 200 * time.Millisecond
	cfg.Reconnect = backoff.Policy{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond, ResetAfter: time.Second}
	cfg.Logger = testLogger(t).With("process", name)
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent.New(%s): %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %s Run: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent %s did not stop in 30s", name)
		}
	}
	t.Cleanup(stop)
	return &runningAgent{Agent: a, stop: stop}
}

// node is the part of the API's node record the tests look at.
type node struct {
	ID            string            `json:"id"`
	Online        bool              `json:"online"`
	OfflineReason string            `json:"offlineReason"`
	Labels        map[string]string `json:"labels"`
	AgentVersion  string            `json:"agentVersion"`
	Facts         struct {
		Arch     string `json:"arch"`
		CPUCores uint32 `json:"cpuCores"`
	} `json:"facts"`
	LastReport *struct {
		CPUCores    uint32 `json:"cpuCores"`
		MemTotalKiB uint64 `json:"memTotalKiB"`
	} `json:"lastReport"`
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: decode %s: %v", url, body, err)
		}
	}
	return resp.StatusCode
}

func nodes(t testing.TB, httpAddr string) map[string]node {
	t.Helper()
	var list struct {
		Items []node `json:"items"`
	}
	getJSON(t, "http://"+httpAddr+"/api/v1/nodes", &list)
	m := map[string]node{}
	for _, n := range list.Items {
		m[n.ID] = n
	}
	return m
}

// eventually polls cond until it holds or the deadline passes; cond says
// what it is waiting for.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, what := cond()
		if ok {
			return
		}
		last = what
		time.Sleep(25 * time.Millisecond) // polling interval, not a wait for an event
	}
	t.Fatalf("after %v still waiting: %s", timeout, last)
}

// metric returns the sum of the samples of a Prometheus metric whose
// name and labels start with prefix, e.g. `skyedge_bridge_rejected_total{reason="malformed"`.
func metric(t testing.TB, httpAddr, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
