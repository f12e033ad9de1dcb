package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
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

// The demo's nodes: the edge nodes, and the agent of the catalog region
// azure-germanywestcentral.
var (
	demoEdge   = []string{"truck-042", "sat-7", "factory-7"}
	demoRegion = "azure-germanywestcentral"
	demoCloud  = "cloud-gwc"
)

// TestDemo runs what `make demo` runs — the quickstart with the built
// binaries, as separate processes — and checks that:
//
//   - `skyedge nodes list` shows the four nodes online with live
//     resources within 15 s;
//   - within 30 s more the example workloads run where they should, as
//     `skyedge workloads get NAME -o json` shows: hello-exec on each edge
//     node, sky-residency in azure-germanywestcentral through its agent
//     cloud-gwc, and hello-docker on an edge node (when Docker is
//     available; required under CI=true);
//   - an interrupt deletes the workloads and stops everything: no process
//     the demo's agents started, and no container, outlives the demo.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	bin := t.TempDir()
	buildBinaries(t, bin)
	docker := demoDockerImage(t)
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr, mqttAddr, dir := freeAddr(t), freeAddr(t), t.TempDir()
	demo := exec.Command(filepath.Join(bin, "quickstart"), "-bin", bin, "-dir", dir, "-http", httpAddr, "-mqtt", mqttAddr, "-examples", examples)
	var out lockedBuffer
	demo.Stdout, demo.Stderr = &out, &out
	start := time.Now()
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error // set when exited is closed
	go func() { exitErr = demo.Wait(); close(exited) }()
	var container string // hello-docker's, once seen
	t.Cleanup(func() {
		// After a failure: let the demo clean up as on Ctrl-C, then kill
		// whatever of it is left, so a failed run leaves nothing behind.
		select {
		case <-exited:
		default:
			_ = demo.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(45 * time.Second):
				_ = demo.Process.Kill()
				<-exited
			}
		}
		for _, p := range demoProcesses(dir) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		if container != "" && t.Failed() {
			_ = exec.Command("docker", "rm", "-f", container).Run()
		}
	})
	skyedge := func(args ...string) ([]byte, error) {
		cmd := exec.Command(filepath.Join(bin, "skyedge"), append(args, "--server", "http://"+httpAddr)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		raw, err := cmd.Output()
		if err != nil {
			return raw, fmt.Errorf("skyedge %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return raw, nil
	}
	// wait polls cond every 200 ms until it holds, failing the test after
	// timeout or when the demo exits.
	wait := func(timeout time.Duration, cond func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			ok, what := cond()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v still waiting: %s\ndemo output:\n%s", timeout, what, out.String())
			}
			select {
			case <-exited:
				t.Fatalf("demo exited early: %v\n%s", exitErr, out.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}

	all := append(append([]string{}, demoEdge...), demoCloud)
	wait(15*time.Second, func() (bool, string) {
		var list struct {
			Items []node `json:"items"`
		}
		raw, err := skyedge("nodes", "list", "-o", "json")
		if err != nil || json.Unmarshal(raw, &list) != nil {
			return false, fmt.Sprintf("nodes list: %v", err)
		}
		online := map[string]bool{}
		for _, n := range list.Items {
			online[n.ID] = n.Online && n.LastReport != nil && n.LastReport.MemTotalKiB > 0
		}
		for _, n := range all {
			if !online[n] {
				return false, n + " not online with resources"
			}
		}
		return true, ""
	})
	online := time.Now()
	t.Logf("four nodes online with live resources %v after start", online.Sub(start).Round(time.Millisecond))
	table, err := skyedge("nodes", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range all {
		if !bytes.Contains(table, []byte(name)) {
			t.Errorf("nodes list lacks %s:\n%s", name, table)
		}
	}

	// get reads a workload with the CLI, as an operator would.
	get := func(name string) (apiv1.Workload, error) {
		var w apiv1.Workload
		raw, err := skyedge("workloads", "get", name, "-o", "json")
		if err == nil {
			err = json.Unmarshal(raw, &w)
		}
		return w, err
	}
	// placed waits until name runs on the nodes in want (site = node for
	// an edge node) and on no other, and returns it.
	placed := func(name string, want map[string]string) apiv1.Workload {
		t.Helper()
		var w apiv1.Workload
		wait(30*time.Second-time.Since(online), func() (bool, string) {
			var err error
			if w, err = get(name); err != nil {
				return false, err.Error()
			}
			got := running(w)
			if len(got) != len(want) || w.Running != len(want) {
				return false, fmt.Sprintf("%s: %d replicas running, want %d:%s", name, len(got), len(want), replicaSummary(w))
			}
			for n, site := range want {
				if r, ok := got[n]; !ok || r.Site != site || (r.PID == 0 && r.ContainerID == "") {
					return false, fmt.Sprintf("%s: not running on %s at site %s:%s", name, n, site, replicaSummary(w))
				}
			}
			return true, ""
		})
		return w
	}

	perNode := map[string]string{}
	for _, n := range demoEdge {
		perNode[n] = n
	}
	helloExec := placed("hello-exec", perNode)
	residency := placed("sky-residency", map[string]string{demoCloud: demoRegion})
	var pids []int
	for _, r := range append(helloExec.Replicas, residency.Replicas...) {
		if !alive(r.PID) {
			t.Errorf("%s reports pid %d, which does not exist", r.Node, r.PID)
		}
		pids = append(pids, r.PID)
	}
	if docker {
		container = waitDockerRunning(t, wait, get).Replicas[0].ContainerID
	}
	t.Logf("hello-exec on %v, sky-residency on %s in %s, %v after the nodes were online",
		demoEdge, demoCloud, demoRegion, time.Since(online).Round(time.Millisecond))

	_ = demo.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("demo exit after interrupt: %v\n%s", exitErr, out.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("demo did not stop in 45s after an interrupt:\n%s", out.String())
	}
	t.Logf("demo stopped %v after start", time.Since(start).Round(time.Millisecond))
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("workload process %d outlived the demo", pid)
		}
	}
	if _, err := os.Stat("/proc/self/cwd"); err != nil {
		t.Logf("no /proc (%v): not looking for other processes of the demo", err)
	} else if left := demoProcesses(dir); len(left) > 0 {
		var b strings.Builder
		for _, p := range left {
			fmt.Fprintf(&b, "  %d %s\n", p.pid, p.cmdline)
		}
		t.Errorf("processes of the demo outlived it:\n%sdemo output:\n%s", b.String(), out.String())
	}
	if container != "" {
		state, err := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", container).CombinedOutput()
		if err == nil && strings.TrimSpace(string(state)) != "false" {
			t.Errorf("hello-docker container %s outlived the demo: running=%s", container, state)
		}
	}
}

// waitDockerRunning waits until hello-docker runs on one edge node and
// answers on the port its spec publishes.
func waitDockerRunning(t *testing.T, wait func(time.Duration, func() (bool, string)), get func(string) (apiv1.Workload, error)) apiv1.Workload {
	t.Helper()
	var w apiv1.Workload
	wait(30*time.Second, func() (bool, string) {
		var err error
		if w, err = get("hello-docker"); err != nil {
			return false, err.Error()
		}
		got := running(w)
		if len(got) != 1 || len(w.Replicas) != 1 {
			return false, "hello-docker: want one replica running:" + replicaSummary(w)
		}
		r := w.Replicas[0]
		if r.Site != r.Node || !slices.Contains(demoEdge, r.Node) || r.ContainerID == "" {
			return false, "hello-docker: want it in a container on an edge node:" + replicaSummary(w)
		}
		return true, ""
	})
	resp, err := http.Get("http://127.0.0.1:18080/")
	if err != nil {
		t.Fatalf("hello-docker runs but does not answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from the edge (workload hello-docker)"; !strings.Contains(string(body), want) {
		t.Errorf("GET hello-docker / = %q, want %q", body, want)
	}
	return w
}

// demoDockerImage builds the image skyedge/hello-docker:1 as `make demo`
// does (`make hello-docker-image`) and reports true, or reports false
// when Docker is unusable; under CI=true that fails the test.
func demoDockerImage(t *testing.T) bool {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("docker"); err != nil {
		why = "no docker command in PATH"
	} else if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		why = fmt.Sprintf("docker info: %v: %s", err, lastLine(out))
	} else if _, err := exec.LookPath("make"); err != nil {
		why = "no make command in PATH to build the image"
	}
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker is required under CI=true: %s", why)
		}
		t.Logf("Docker unavailable, the demo's hello-docker is not checked: %s", why)
		return false
	}
	cmd := exec.Command("make", "--no-print-directory", "hello-docker-image")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make hello-docker-image: %v\n%s", err, out)
	}
	return true
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// demoProc is a process of the demo found in /proc.
type demoProc struct {
	pid     int
	cmdline string
}

// demoProcesses lists the processes that belong to the demo in dir, its
// data directory: those running in a directory under it (the exec
// workloads of its agents) and those naming it in their arguments (the
// bridge and the agents). Without /proc it finds none.
func demoProcesses(dir string) []demoProc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	dir = filepath.Clean(dir)
	var found []demoProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cmdline := strings.ReplaceAll(strings.TrimRight(string(raw), "\x00"), "\x00", " ")
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if cwd == dir || strings.HasPrefix(cwd, dir+string(filepath.Separator)) || strings.Contains(cmdline, dir) {
			found = append(found, demoProc{pid, cmdline})
		}
	}
	return found
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
