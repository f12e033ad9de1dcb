package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/agent/internal/logtest"
	"github.com/skyedge/skyedge/agent/internal/runner/internal/reexec"
	"github.com/skyedge/skyedge/agent/internal/runner/proc"
	"github.com/skyedge/skyedge/protocol/spec"
)

// The test binary doubles as every child the tests need: with helperEnv
// set it runs a behaviour instead of the tests (the os/exec
// TestHelperProcess pattern), so no outside script is needed.
const (
	helperEnv = "SKYEDGE_RUNNER_HELPER"
	// markerEnv names a file the trap behaviour writes to on SIGTERM.
	markerEnv = "SKYEDGE_RUNNER_MARKER"
	// messageEnv is printed by the print behaviour.
	messageEnv = "SKYEDGE_RUNNER_MESSAGE"
	// agentStateEnv and agentSetEnv configure the agent behaviour.
	agentStateEnv = "SKYEDGE_RUNNER_AGENT_STATE"
	agentSetEnv   = "SKYEDGE_RUNNER_AGENT_SET"
)

func TestMain(m *testing.M) {
	if b := os.Getenv(helperEnv); b != "" {
		os.Exit(helper(b))
	}
	goleak.VerifyTestMain(m)
}

// helper runs one child behaviour and returns its exit code.
func helper(behaviour string) int {
	switch behaviour {
	case "sleep":
		fmt.Println("sleeping")
		time.Sleep(24 * time.Hour)
	case "print":
		fmt.Println("message:", os.Getenv(messageEnv))
		time.Sleep(24 * time.Hour)
	case "crash":
		fmt.Println("crashing")
		return 3
	case "exit0":
		fmt.Println("done")
		return 0
	case "trap":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("trapping SIGTERM")
		<-ch
		os.WriteFile(os.Getenv(markerEnv), []byte("got SIGTERM\n"), 0o600)
		return 0
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(24 * time.Hour)
	case "spam":
		for i := 0; ; i++ {
			fmt.Printf("line %06d %s\n", i, strings.Repeat("x", 50))
			if i%100 == 99 {
				time.Sleep(time.Millisecond)
			}
		}
	case "agent":
		return agentHelper()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper behaviour", behaviour)
		return 2
	}
	return 0
}

// agentHelper runs a Runner in this process, as the agent does, and
// prints every status as a JSON line, until it is killed.
func agentHelper() int {
	var set []Assignment
	if err := json.Unmarshal([]byte(os.Getenv(agentSetEnv)), &set); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	r, err := New(Config{
		StateDir:      os.Getenv(agentStateEnv),
		DisableLimits: true,
		OnStatus: func(s Status) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(s)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r.Apply(set)
	if err := r.Run(context.Background()); err != nil {
		return 1
	}
	return 0
}

// selfArgv is the argv that runs the test binary again: the command of
// exec workloads in tests.
func selfArgv(t testing.TB) []string {
	t.Helper()
	a, err := reexec.Argv()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// execSpec is an exec workload running a helper behaviour, with short
// delays so tests run fast.
func execSpec(t testing.TB, behaviour string) spec.WorkloadSpec {
	argv := selfArgv(t)
	return spec.WorkloadSpec{
		Runtime: spec.RuntimeExec,
		Exec: &spec.ExecSpec{
			Command: argv[0],
			Args:    argv[1:],
			Env:     map[string]string{helperEnv: behaviour},
		},
		Resources: spec.Resources{CPU: "100m", Memory: "64Mi"},
		Restart: spec.Restart{
			Policy:       spec.RestartAlways,
			InitialDelay: spec.Duration(50 * time.Millisecond),
			MaxDelay:     spec.Duration(400 * time.Millisecond),
		},
		StopGracePeriod: spec.Duration(2 * time.Second),
	}
}

// recorder keeps every status handed to OnStatus.
type recorder struct {
	mu   sync.Mutex
	list []Status
}

func (c *recorder) add(s Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, s)
}

// of returns the statuses of workload name, in order.
func (c *recorder) of(name string) []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Status
	for _, s := range c.list {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// states returns the sequence of distinct states workload name went
// through.
func (c *recorder) states(name string) []State {
	var out []State
	for _, s := range c.of(name) {
		if len(out) == 0 || out[len(out)-1] != s.State {
			out = append(out, s.State)
		}
	}
	return out
}

// harness is a Runner running in the background for one test.
type harness struct {
	t      *testing.T
	r      *Runner
	rec    *recorder
	logs   *logtest.Recorder
	cancel context.CancelFunc
	done   chan error
}

// start builds a Runner on dir (t.TempDir() when empty) with mod applied
// to its config and runs it. At the end of the test it stops every
// workload, unless the test dropped the Runner itself.
func start(t *testing.T, dir string, mod func(*Config)) *harness {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	h := &harness{t: t, rec: &recorder{}, logs: logtest.New(nil), done: make(chan error, 1)}
	cfg := Config{
		StateDir:      dir,
		DisableLimits: true,
		Logger:        h.logs.Logger(),
		OnStatus:      h.rec.add,
		StableAfter:   time.Minute,
		CheckInterval: 50 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	h.r = r
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- r.Run(ctx) }()
	t.Cleanup(h.shutdown)
	return h
}

// shutdown stops every workload, then Run.
func (h *harness) shutdown() {
	if h.cancel == nil {
		return
	}
	h.r.Apply(nil)
	deadline := time.Now().Add(30 * time.Second)
	for len(h.r.Statuses()) > 0 {
		if time.Now().After(deadline) {
			h.t.Errorf("workloads not stopped at the end of the test: %+v", h.r.Statuses())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.drop()
}

// drop ends Run without stopping anything, as an agent that is killed.
func (h *harness) drop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run() = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return after its context was cancelled")
	}
}

// status returns the current status of name.
func (h *harness) status(name string) (Status, bool) {
	for _, s := range h.r.Statuses() {
		if s.Name == name {
			return s, true
		}
	}
	return Status{}, false
}

// waitFor polls until name's status satisfies ok, and returns it.
func (h *harness) waitFor(name, what string, timeout time.Duration, ok func(Status) bool) Status {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, found := h.status(name)
		if found && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: waited %v for %s; status %+v, history %v", name, timeout, what, s, h.rec.states(name))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) waitState(name string, want State, timeout time.Duration) Status {
	h.t.Helper()
	return h.waitFor(name, string(want), timeout, func(s Status) bool { return s.State == want })
}

// waitLog polls name's logs until a line contains want.
func (h *harness) waitLog(name, want string, timeout time.Duration) []string {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines, err := h.r.Logs(name, 0)
		if err == nil && slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) }) {
			return lines
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Logs(%s) = %q, %v; want a line with %q", name, lines, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// waitGone polls until pid no longer runs.
func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// last returns the last status handed to OnStatus for name.
func (c *recorder) last(name string) Status {
	all := c.of(name)
	if len(all) == 0 {
		return Status{}
	}
	return all[len(all)-1]
}

// reapOnCleanup kills the process groups of pids at the end of the test
// if they still run, so a failing adoption test leaks nothing. The
// identity is taken now: a recycled pid is never signalled.
func reapOnCleanup(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		id, err := proc.ReadIdentity(pid)
		if err != nil {
			continue
		}
		t.Cleanup(func() {
			if p, err := proc.Adopt(id); err == nil {
				p.Signal(syscall.SIGKILL)
				p.Close()
			}
		})
	}
}
