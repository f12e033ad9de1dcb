package runner

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/runner/internal/reexec"
	"github.com/skyedge/skyedge/agent/internal/runner/proc"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol/spec"
)

// agentProcess is a Runner in a child process (the agent helper), so a
// test can SIGKILL it as a node's init or the OOM killer would.
type agentProcess struct {
	cmd *exec.Cmd

	mu       sync.Mutex
	statuses map[string]Status
	exited   chan struct{}
}

func startAgent(t testing.TB, dir string, set []Assignment) *agentProcess {
	t.Helper()
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := reexec.Command()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), helperEnv+"=agent", agentStateEnv+"="+dir, agentSetEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProcess{cmd: cmd, statuses: map[string]Status{}, exited: make(chan struct{})}
	go func() {
		defer close(a.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var s Status
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				a.mu.Lock()
				a.statuses[s.Name] = s
				a.mu.Unlock()
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(a.kill)
	return a
}

func (a *agentProcess) status(name string) Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.statuses[name]
}

// kill SIGKILLs the agent and waits for it.
func (a *agentProcess) kill() {
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
}

func TestAdoptionAfterAgentSIGKILL(t *testing.T) {
	dir := t.TempDir()
	set := []Assignment{{Name: "survivor", Generation: 4, Spec: execSpec(t, "sleep")}}
	agent := startAgent(t, dir, set)
	var before Status
	eventually(t, "the agent to start the workload", 20*time.Second, func() bool {
		before = agent.status("survivor")
		return before.State == StateRunning
	})
	reapOnCleanup(t, before.PID)
	agent.kill()
	if !alive(before.PID) {
		t.Fatalf("workload pid %d died with the SIGKILLed agent", before.PID)
	}

	h := start(t, dir, nil)
	h.r.Apply(set)
	st := h.waitState("survivor", StateRunning, 10*time.Second)
	if st.PID != before.PID || !st.Adopted || st.Restarts != 0 || st.Generation != 4 {
		t.Fatalf("after the agent's SIGKILL: %+v; want pid %d adopted, not restarted", st, before.PID)
	}

	// Not the new runner's child: its exit status is unknown, and it is
	// restarted as a failure.
	syscall.Kill(before.PID, syscall.SIGTERM)
	var exited Status
	eventually(t, "the exit of the adopted process", 10*time.Second, func() bool {
		for _, s := range h.rec.of("survivor") {
			if s.State == StateExited {
				exited = s
				return true
			}
		}
		return false
	})
	if exited.ExitCode != nil || !strings.Contains(exited.Reason, "exit status unknown") {
		t.Errorf("exit of an adopted process: ExitCode %v, Reason %q; want nil and an unknown exit status", exited.ExitCode, exited.Reason)
	}
	h.waitFor("survivor", "a restart", 10*time.Second, func(s Status) bool { return s.State == StateRunning && s.Restarts == 1 })
}

func TestStopAfterDisconnect(t *testing.T) {
	start0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start0)
	var (
		mu      sync.Mutex
		contact = start0
	)
	lastContact := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return contact
	}
	h := start(t, "", func(c *Config) {
		c.Clock = fake
		c.LastContact = lastContact
		c.CheckInterval = time.Second
	})
	s := execSpec(t, "sleep")
	s.Disconnect.StopAfter = spec.Duration(10 * time.Minute)
	steady := execSpec(t, "sleep") // no stopAfter: runs through any partition
	done := execSpec(t, "exit0")   // ends for good before the partition
	done.Restart.Policy = spec.RestartNever
	done.Disconnect.StopAfter = s.Disconnect.StopAfter
	h.r.Apply([]Assignment{
		{Name: "bounded", Generation: 1, Spec: s},
		{Name: "steady", Generation: 1, Spec: steady},
		{Name: "done", Generation: 1, Spec: done},
	})
	first := h.waitState("bounded", StateRunning, 10*time.Second)
	steadyPID := h.waitState("steady", StateRunning, 10*time.Second).PID
	h.waitState("done", StateExited, 10*time.Second)

	// A 9-minute partition: nothing happens.
	fake.Advance(9 * time.Minute)
	for range 20 {
		fake.Advance(time.Second)
		time.Sleep(5 * time.Millisecond)
	}
	if st, _ := h.status("bounded"); st.State != StateRunning {
		t.Fatalf("after 9m20s without the cloud: %+v, want running", st)
	}

	// Past stopAfter: the runner stops it itself.
	eventually(t, "the stop after stopAfter", 10*time.Second, func() bool {
		fake.Advance(time.Second)
		st, _ := h.status("bounded")
		return st.State == StateStopped
	})
	st, _ := h.status("bounded")
	if st.Reason != reasonDisconnected {
		t.Errorf("Reason = %q, want %q", st.Reason, reasonDisconnected)
	}
	waitGone(t, first.PID, 5*time.Second)
	if !alive(steadyPID) {
		t.Error("a workload without stopAfter was stopped by the partition")
	}
	if st, _ := h.status("done"); st.State != StateExited {
		t.Errorf("a finished workload during the partition: %+v, want it still exited", st)
	}

	// Contact is back: it starts again, and that is not a restart.
	mu.Lock()
	contact = fake.Now()
	mu.Unlock()
	eventually(t, "the start after contact returned", 10*time.Second, func() bool {
		fake.Advance(time.Second)
		st, _ = h.status("bounded")
		return st.State == StateRunning
	})
	if st.PID == first.PID || st.Restarts != 0 {
		t.Errorf("after contact returned: %+v, want a new instance with 0 restarts", st)
	}
}

func TestColdBootStartsQuickly(t *testing.T) {
	begin := time.Now()
	h := start(t, "", nil)
	h.r.Apply([]Assignment{{Name: "boot", Generation: 1, Spec: execSpec(t, "sleep")}})
	h.waitState("boot", StateRunning, 10*time.Second)
	took := time.Since(begin)
	// The goal is 2 s from agent start; the bound is loose for a loaded
	// machine, the figure is what matters.
	t.Logf("cold boot: New + Apply + Run to running in %v", took)
	if took > 5*time.Second {
		t.Errorf("cold boot took %v", took)
	}
}

func TestHeldByDisconnect(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		now         time.Time
		lastContact time.Time
		stopAfter   time.Duration
		want        bool
	}{
		{name: "no stopAfter", now: t0.Add(100 * time.Hour), lastContact: t0, want: false},
		{name: "within stopAfter", now: t0.Add(10 * time.Minute), lastContact: t0, stopAfter: 10 * time.Minute, want: false},
		{name: "past stopAfter", now: t0.Add(10*time.Minute + time.Second), lastContact: t0, stopAfter: 10 * time.Minute, want: true},
		{name: "contact back", now: t0.Add(time.Hour), lastContact: t0.Add(time.Hour - time.Second), stopAfter: 10 * time.Minute, want: false},
		{name: "never in contact, counted from the runner's start", now: t0.Add(11 * time.Minute), stopAfter: 10 * time.Minute, want: true},
		{name: "never in contact, just booted", now: t0.Add(time.Minute), stopAfter: 10 * time.Minute, want: false},
	}
	for _, tt := range tests {
		if got := heldByDisconnect(tt.now, tt.lastContact, t0, tt.stopAfter); got != tt.want {
			t.Errorf("%s: heldByDisconnect(%v, %v, %v, %v) = %v, want %v", tt.name, tt.now, tt.lastContact, t0, tt.stopAfter, got, tt.want)
		}
	}
}

func TestRestartDelay(t *testing.T) {
	r := spec.Restart{InitialDelay: spec.Duration(time.Second), MaxDelay: spec.Duration(20 * time.Second)}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 20 * time.Second, 20 * time.Second}
	for i, w := range want {
		if got := restartDelay(r, i+1); got != w {
			t.Errorf("restartDelay(%+v, %d) = %v, want %v", r, i+1, got, w)
		}
	}
	if got := restartDelay(r, 1000); got != 20*time.Second {
		t.Errorf("restartDelay(%+v, 1000) = %v, want the cap", r, got)
	}
	tests := []struct {
		policy  spec.RestartPolicyName
		success bool
		want    bool
	}{
		{spec.RestartAlways, true, true},
		{spec.RestartAlways, false, true},
		{spec.RestartOnFailure, true, false},
		{spec.RestartOnFailure, false, true},
		{spec.RestartNever, false, false},
	}
	for _, tt := range tests {
		if got := wantsRestart(tt.policy, tt.success); got != tt.want {
			t.Errorf("wantsRestart(%s, %v) = %v, want %v", tt.policy, tt.success, got, tt.want)
		}
	}
	capped := spec.Restart{MaxRestarts: 3}
	if restartLimitReached(capped, 3) || !restartLimitReached(capped, 4) || restartLimitReached(spec.Restart{}, 1e6) {
		t.Error("restartLimitReached: want a cap after 3 restarts in a row and none for 0")
	}
}

func TestInstanceHash(t *testing.T) {
	base := execSpec(t, "sleep")
	h0, err := instanceHash(&base)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*spec.WorkloadSpec)
		same   bool
	}{
		{name: "same cpu written differently", change: func(s *spec.WorkloadSpec) { s.Resources.CPU = "0.1" }, same: true},
		{name: "restart policy", change: func(s *spec.WorkloadSpec) { s.Restart.Policy = spec.RestartNever }, same: true},
		{name: "stopAfter", change: func(s *spec.WorkloadSpec) { s.Disconnect.StopAfter = spec.Duration(time.Hour) }, same: true},
		{name: "health check", change: func(s *spec.WorkloadSpec) { s.Health = &spec.Health{TCP: &spec.TCPProbe{Address: "127.0.0.1:1"}} }, same: true},
		{name: "argument", change: func(s *spec.WorkloadSpec) { s.Exec.Args = append(s.Exec.Args, "-v") }},
		{name: "environment", change: func(s *spec.WorkloadSpec) { s.Exec.Env = map[string]string{"A": "1"} }},
		{name: "memory", change: func(s *spec.WorkloadSpec) { s.Resources.Memory = "128Mi" }},
	}
	for _, tt := range tests {
		s := execSpec(t, "sleep")
		tt.change(&s)
		h, err := instanceHash(&s)
		if err != nil {
			t.Fatal(err)
		}
		if (h == h0) != tt.same {
			t.Errorf("%s: hash %s vs %s, want same %v", tt.name, h, h0, tt.same)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if r, err := loadRecord(dir); r != nil || err != nil {
		t.Fatalf("loadRecord(empty dir) = %v, %v; want nil, nil", r, err)
	}
	code := 3
	want := &record{
		Name: "w", Generation: 9, Runtime: spec.RuntimeExec, Hash: "abc",
		StartedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Restarts:  2, Crashes: 1, Grace: spec.Duration(5 * time.Second),
		Final: &final{State: StateFailed, ExitCode: &code, Reason: "x"},
	}
	if err := saveRecord(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != recordVersion || got.Final == nil || *got.Final.ExitCode != 3 || got.Hash != "abc" || !got.StartedAt.Equal(want.StartedAt) {
		t.Errorf("loadRecord() = %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files after an atomic write, want 1", len(entries))
	}
	os.WriteFile(dir+"/"+recordFile, []byte("{truncated"), 0o600)
	if _, err := loadRecord(dir); err == nil {
		t.Error("loadRecord(corrupt) = nil error")
	}
}

// startUntracked starts s for workload name as the runner on dir would,
// but writes no record: an agent killed between a start and its record.
func startUntracked(t *testing.T, dir, name string, s spec.WorkloadSpec) int {
	t.Helper()
	r, err := New(Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	u, err := newUnit(Assignment{Name: name, Generation: 1, Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proc.Start(r.exec.command(u, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Identity().PID
	p.Close()
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	return pid
}

func TestExecUntrackedProcessesAreFound(t *testing.T) {
	dir := t.TempDir()
	want := execSpec(t, "sleep")
	stale := execSpec(t, "print")
	first := startUntracked(t, dir, "lost", want)
	dup := startUntracked(t, dir, "lost", want)
	old := startUntracked(t, dir, "lost", stale)
	foreign := startUntracked(t, t.TempDir(), "lost", want) // another agent's

	h := start(t, dir, nil)
	h.r.Apply([]Assignment{{Name: "lost", Generation: 1, Spec: want}})
	st := h.waitState("lost", StateRunning, 10*time.Second)
	if !st.Adopted || (st.PID != first && st.PID != dup) {
		t.Fatalf("status %+v; want one of the untracked processes %d, %d adopted", st, first, dup)
	}
	for _, pid := range []int{first, dup, old} {
		if pid != st.PID {
			waitGone(t, pid, 15*time.Second)
		}
	}
	if !alive(foreign) {
		t.Error("the process of another state directory was stopped")
	}
	if st.StartedAt.IsZero() || time.Since(st.StartedAt) > time.Minute {
		t.Errorf("StartedAt = %v, want the process's start time from /proc", st.StartedAt)
	}
}
