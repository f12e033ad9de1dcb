package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// These tests build the real binary and run it, as an operator would.

const wait = 60 * time.Second

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// agentBinary builds the agent, or returns SKYEDGE_AGENT_BIN when set, to
// measure a binary built elsewhere (make build strips it).
func agentBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("SKYEDGE_AGENT_BIN"); bin != "" {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go toolchain not found; the end-to-end tests build the agent binary")
		}
		t.Skip("go toolchain not found; the end-to-end tests build the agent binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skyedge-agent-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "skyedge-agent")
		cmd := exec.Command(goBin, "build", "-ldflags", "-X main.version=e2e-test", "-o", binary, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=", "GOARCH=", "GOARM=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestDependencies keeps the edge binary lean: nothing server-side and
// no test helpers may be linked in (the target is 15 MB stripped on
// arm64 and armv7, and small RSS on small devices). Badger is the one
// storage engine it carries, for the outbox.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/mochi-mqtt/", "github.com/prometheus/",
		"github.com/skyedge/skyedge/cloudcore-bridge", "github.com/skyedge/skyedge/agent/internal/brokertest",
		"github.com/skyedge/skyedge/agent/internal/logtest", "testing", "net/http/pprof",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(dep, f+"/")) {
				t.Errorf("skyedge-agent depends on %s", dep)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(agentBinary(t), "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "skyedge-agent e2e-test" {
		t.Errorf("skyedge-agent -version = %q, %v, want \"skyedge-agent e2e-test\"", out, err)
	}
}

func TestBadConfigExits2(t *testing.T) {
	bin := agentBinary(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "flags only", args: []string{"-broker", "http://x", "-interval", "50ms"},
			want: []string{"node.name: required", `cloud.broker "http://x": scheme must be`, "report.interval 50ms", "dataDir: required"}},
		{name: "unknown field", args: []string{"-config", "../../testdata/bad-unknown-field.yaml"}, want: []string{"field keepalive not found"}},
		{name: "missing file", args: []string{"-config", "nonexistent.yaml"}, want: []string{"no such file"}},
		{name: "unknown flag", args: []string{"-colour"}, want: []string{"flag provided but not defined: -colour"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := exec.Command(bin, tt.args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("skyedge-agent %v = %v, want exit status 2", tt.args, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("skyedge-agent %v stderr = %q, want it to contain %q", tt.args, stderr.String(), w)
				}
			}
		})
	}
}

func TestRunAgainstBroker(t *testing.T) {
	bin := agentBinary(t)
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	ca, cert, key := b.ClientFiles("truck-042")
	dir := t.TempDir()
	config := filepath.Join(dir, "agent.yaml")
	yaml := fmt.Sprintf(`apiVersion: skyedge.io/v1alpha1
kind: AgentConfig
node: {name: truck-042, labels: {role: vehicle}}
cloud: {broker: %s, caFile: %s, certFile: %s, keyFile: %s}
report: {interval: 10s}
dataDir: %s
log: {level: debug, format: json}
`, b.URL(), ca, cert, key, filepath.Join(dir, "state"))
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-config", config, "-interval", "1s", "-label", "zone=eu-west")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("agent stderr:\n%s", stderr.String())
		}
	})

	brokertest.WaitFor(t, wait, "3 reports at the cloud", func() bool { return cloud.Count("truck-042") >= 3 })
	hello := b.Envelopes(protocol.UpTopic("truck-042", protocol.StreamHello))[0].GetHello()
	if hello.GetAgentVersion() != "e2e-test" || hello.GetReportIntervalMs() != 1000 || hello.GetLabels()["zone"] != "eu-west" || hello.GetLabels()["role"] != "vehicle" {
		t.Errorf("hello = %v, want version e2e-test, the flag's 1 s interval and both labels", hello)
	}
	if rss, err := vmRSS(cmd.Process.Pid); err == nil {
		t.Logf("agent RSS after 3 reports: %d KiB", rss)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "outbox", "MANIFEST")); err != nil {
		t.Errorf("no outbox database in the data directory: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("agent exit after SIGTERM = %v, want status 0", err)
		}
	case <-time.After(wait):
		t.Fatal("agent did not exit after SIGTERM")
	}
	bye := protocol.UpTopic("truck-042", protocol.StreamBye)
	brokertest.WaitFor(t, wait, "goodbye", func() bool { return len(b.Envelopes(bye)) == 1 })
	if got := b.Envelopes(bye)[0].GetGoodbye().GetReason(); got != pb.Goodbye_REASON_SHUTDOWN {
		t.Errorf("goodbye reason = %v, want REASON_SHUTDOWN", got)
	}
	if !strings.Contains(stderr.String(), `"msg":"connected"`) {
		t.Errorf("agent log has no JSON \"connected\" record:\n%s", stderr.String())
	}
}

// vmRSS reads a process's resident set size in KiB.
func vmRSS(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("no VmRSS line")
}
