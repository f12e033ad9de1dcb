package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/internal/pki"
)

// The test binary runs main when asked to, so the tests exercise the real
// command without building it separately.
func TestMain(m *testing.M) {
	if os.Getenv("CLOUDCORE_BRIDGE_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CLOUDCORE_BRIDGE_RUN_MAIN=1")
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestBadConfigurationExits2(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/bridge.yaml"
	if err := os.WriteFile(cfg, []byte("apiVersion: skyedge.io/v1alpha1\nkind: BridgeConfig\nunknownKey: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no certificates", []string{"-data-dir", dir}, "embedded.certFile: required"},
		{"public API without token", []string{"-data-dir", dir, "-cert", "c", "-key", "k", "-ca", "a", "-http", "0.0.0.0:8080"}, "http.listen"},
		{"unknown field in the file", []string{"-config", cfg}, "unknownKey"},
		{"missing file", []string{"-config", dir + "/nope.yaml"}, "no such file"},
		{"unreadable certificate", []string{"-data-dir", dir, "-cert", "c", "-key", "k", "-ca", "a"}, "server TLS"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		cmd := command(tt.args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		if got := exitCode(err); got != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and a message containing %q", tt.name, got, stderr.String(), tt.want)
		}
	}
}

// logWriter collects the bridge's output.
type logWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestRunsUntilSIGTERM(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueFiles(dir, pki.Options{Name: "bridge", Server: true, Hosts: []string{"localhost"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := &logWriter{}
	cmd := command("-data-dir", dir+"/data", "-cert", cert, "-key", key, "-ca", dir+"/"+pki.CACertFile,
		"-mqtt", "127.0.0.1:0", "-http", "127.0.0.1:0", "-log-format", "json")
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), `"msg":"bridge ready"`) {
		select {
		case err := <-done:
			t.Fatalf("bridge exited before ready: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("bridge not ready within 20s:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCode(err); code != 0 {
			t.Errorf("exit status after SIGTERM = %d, want 0\n%s", code, out)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("bridge still running 20s after SIGTERM:\n%s", out)
	}
}
