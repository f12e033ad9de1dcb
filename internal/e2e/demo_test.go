package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// buildBinaries builds the three binaries and the quickstart into dir, as
// `make build` does.
func buildBinaries(t *testing.T, dir string) {
	t.Helper()
	for name, pkg := range map[string]string{
		"skyedge-agent":    "./agent/cmd/skyedge-agent",
		"cloudcore-bridge": "./cloudcore-bridge/cmd/cloudcore-bridge",
		"skyedge":          "./cmd/skyedge",
		"quickstart":       "./examples/quickstart",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDemo runs what `make demo` runs — the quickstart with the built
// binaries, as separate processes — and checks that `skyedge nodes list`
// shows three online nodes with live resources within 15 s, and that an
// interrupt stops everything cleanly.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	bin := t.TempDir()
	buildBinaries(t, bin)
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	demo := exec.Command(filepath.Join(bin, "quickstart"), "-bin", bin, "-dir", t.TempDir(), "-http", httpAddr, "-mqtt", mqttAddr)
	var out bytes.Buffer
	demo.Stdout, demo.Stderr = &out, &out
	start := time.Now()
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- demo.Wait() }()
	t.Cleanup(func() {
		if demo.ProcessState == nil {
			_ = demo.Process.Kill()
			<-done
		}
	})

	var list struct {
		Items []node `json:"items"`
	}
	for {
		cli := exec.Command(filepath.Join(bin, "skyedge"), "nodes", "list", "-o", "json", "--server", "http://"+httpAddr)
		raw, err := cli.Output()
		online := 0
		if err == nil && json.Unmarshal(raw, &list) == nil {
			for _, n := range list.Items {
				if n.Online && n.LastReport != nil && n.LastReport.MemTotalKiB > 0 {
					online++
				}
			}
		}
		if online == 3 {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("after 15s, %d of 3 nodes online with resources; demo output:\n%s", online, out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("demo exited early: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("three nodes online with live resources %v after start", time.Since(start).Round(time.Millisecond))

	table, err := exec.Command(filepath.Join(bin, "skyedge"), "nodes", "list", "--server", "http://"+httpAddr).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"truck-042", "sat-7", "factory-7"} {
		if !bytes.Contains(table, []byte(name)) {
			t.Errorf("nodes list lacks %s:\n%s", name, table)
		}
	}

	_ = demo.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exit after interrupt: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not stop in 30s after an interrupt:\n%s", out.String())
	}
}
