package runner

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/protocol/spec"
)

func TestExecStartLogsAndStatus(t *testing.T) {
	h := start(t, "", nil)
	s := execSpec(t, "print")
	s.Exec.Env[messageEnv] = "hello from the edge"
	h.r.Apply([]Assignment{{Name: "hello", Generation: 7, Spec: s}})

	st := h.waitState("hello", StateRunning, 10*time.Second)
	if st.PID == 0 || !alive(st.PID) || st.Generation != 7 || st.Adopted || st.StartedAt.IsZero() {
		t.Errorf("running status = %+v, want a live pid, generation 7, not adopted", st)
	}
	h.waitLog("hello", "message: hello from the edge", 10*time.Second)
	if diff := cmp.Diff([]State{StatePending, StateRunning}, h.rec.states("hello")); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if _, err := h.r.Logs("nobody", 10); err == nil {
		t.Error("Logs(unknown workload) = nil error")
	}
	// The agent's own environment does not leak into workloads.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.PID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "SKYEDGE_WORKLOAD=hello\x00") {
		t.Errorf("workload environment %q lacks SKYEDGE_WORKLOAD", env)
	}
}

func TestExecCrashRestartsWithGrowingBackoff(t *testing.T) {
	h := start(t, "", nil)
	s := execSpec(t, "crash")
	s.Restart = spec.Restart{
		Policy:       spec.RestartAlways,
		InitialDelay: spec.Duration(100 * time.Millisecond),
		MaxDelay:     spec.Duration(400 * time.Millisecond),
		MaxRestarts:  4,
	}
	h.r.Apply([]Assignment{{Name: "crasher", Generation: 1, Spec: s}})

	st := h.waitState("crasher", StateFailed, 20*time.Second)
	if st.Restarts != 4 || st.ExitCode == nil || *st.ExitCode != 3 {
		t.Errorf("final status = %+v, want 4 restarts and exit code 3", st)
	}
	if !strings.Contains(st.Reason, "gave up after 4 restarts") {
		t.Errorf("final Reason = %q, want it to say it gave up after 4 restarts", st.Reason)
	}
	var delays []string
	var starts []time.Time
	for _, s := range h.rec.of("crasher") {
		if s.State == StateExited {
			_, d, _ := strings.Cut(s.Reason, "restarting in ")
			delays = append(delays, d)
		}
		if s.State == StateRunning {
			starts = append(starts, s.StartedAt)
		}
	}
	if diff := cmp.Diff([]string{"100ms", "200ms", "400ms", "400ms"}, delays); diff != "" {
		t.Errorf("restart delays (-want +got):\n%s", diff)
	}
	// The delays really are waited for.
	for i := 1; i < len(starts); i++ {
		if gap, min := starts[i].Sub(starts[i-1]), restartDelay(s.Restart, i); gap < min {
			t.Errorf("start %d came %v after the previous one, want at least %v", i, gap, min)
		}
	}
	if got := h.r.Stats(); got.Restarts != 4 || got.Starts != 5 {
		t.Errorf("Stats() = %+v, want 5 starts, 4 restarts", got)
	}
	// A failed workload stays failed across an agent restart.
	dir := h.r.cfg.StateDir
	h.drop()
	h2 := start(t, dir, nil)
	h2.r.Apply([]Assignment{{Name: "crasher", Generation: 1, Spec: s}})
	st = h2.waitState("crasher", StateFailed, 10*time.Second)
	if st.Restarts != 4 || h2.r.Stats().Starts != 0 {
		t.Errorf("after an agent restart: %+v, %d starts; want failed with 4 restarts, not started", st, h2.r.Stats().Starts)
	}
}

func TestExecRestartPolicies(t *testing.T) {
	tests := []struct {
		name      string
		policy    spec.RestartPolicyName
		behaviour string
		want      State
		code      int
		restarts  bool
	}{
		{name: "never after success", policy: spec.RestartNever, behaviour: "exit0", want: StateExited, code: 0},
		{name: "never after failure", policy: spec.RestartNever, behaviour: "crash", want: StateFailed, code: 3},
		{name: "on-failure after success", policy: spec.RestartOnFailure, behaviour: "exit0", want: StateExited, code: 0},
		{name: "on-failure after failure", policy: spec.RestartOnFailure, behaviour: "crash", want: StateFailed, code: 3, restarts: true},
		{name: "always after success", policy: spec.RestartAlways, behaviour: "exit0", want: StateFailed, code: 0, restarts: true},
	}
	h := start(t, "", nil)
	var set []Assignment
	for i, tt := range tests {
		s := execSpec(t, tt.behaviour)
		s.Restart.Policy = tt.policy
		s.Restart.MaxRestarts = 2
		set = append(set, Assignment{Name: fmt.Sprintf("policy-%d", i), Generation: 1, Spec: s})
	}
	h.r.Apply(set)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := set[i].Name
			st := h.waitState(name, tt.want, 20*time.Second)
			if st.ExitCode == nil || *st.ExitCode != tt.code {
				t.Errorf("ExitCode = %v, want %d", st.ExitCode, tt.code)
			}
			if wantRestarts := map[bool]int{false: 0, true: 2}[tt.restarts]; st.Restarts != wantRestarts {
				t.Errorf("Restarts = %d, want %d (reason %q)", st.Restarts, wantRestarts, st.Reason)
			}
		})
	}
}

func TestExecUnhealthyIsRestarted(t *testing.T) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	h := start(t, "", nil)
	s := execSpec(t, "sleep")
	s.Health = &spec.Health{
		HTTP:             &spec.HTTPProbe{URL: srv.URL + "/healthz"},
		Interval:         spec.Duration(50 * time.Millisecond),
		Timeout:          spec.Duration(50 * time.Millisecond),
		FailureThreshold: 3,
	}
	h.r.Apply([]Assignment{{Name: "probed", Generation: 1, Spec: s}})
	first := h.waitState("probed", StateRunning, 10*time.Second)

	failing.Store(true)
	h.waitFor("probed", "a restart", 10*time.Second, func(s Status) bool { return s.Restarts == 1 })
	waitGone(t, first.PID, 5*time.Second)
	hist := h.rec.states("probed")
	if diff := cmp.Diff([]State{StatePending, StateStarting, StateRunning, StateUnhealthy, StateExited, StateStarting}, hist[:min(6, len(hist))]); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	for _, st := range h.rec.of("probed") {
		if st.State == StateExited && !strings.Contains(st.Reason, "health check failed 3 times in a row") {
			t.Errorf("exited Reason = %q, want the health check named", st.Reason)
		}
	}
	failing.Store(false)
	st := h.waitState("probed", StateRunning, 10*time.Second)
	if st.PID == first.PID || !strings.Contains(st.LastError, "HTTP 500") {
		t.Errorf("after recovery: %+v; want a new pid and LastError naming HTTP 500", st)
	}
}

func TestExecLimitsThroughCgroup(t *testing.T) {
	root := fmt.Sprintf("/sys/fs/cgroup/skyedge-test-%d.slice", os.Getpid())
	t.Cleanup(func() { os.Remove(root) }) // after the harness removed the workload's
	h := start(t, "", func(c *Config) { c.DisableLimits, c.CgroupRoot = false, root })
	h.r.Apply([]Assignment{{Name: "limited", Generation: 1, Spec: execSpec(t, "sleep")}})
	st := h.waitState("limited", StateRunning, 10*time.Second)
	if strings.Contains(st.Reason, "limits not enforced") {
		// Not a failure of the runner: this host gives the agent no
		// writable cgroup v2 with the cpu and memory controllers.
		t.Skipf("no writable cgroup v2 on this host, workload runs without limits: %s", st.Reason)
	}
	dir := filepath.Join(root, "limited")
	for file, want := range map[string]string{"memory.max": "67108864", "cpu.max": "10000 100000"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil || !strings.Contains(string(procs), fmt.Sprint(st.PID)) {
		t.Errorf("cgroup.procs = %q, %v; want pid %d", procs, err, st.PID)
	}
}

func TestExecLimitsUnavailableAreReported(t *testing.T) {
	h := start(t, "", func(c *Config) {
		c.DisableLimits = false
		c.CgroupRoot = filepath.Join(t.TempDir(), "not-a-cgroup", "skyedge.slice")
	})
	h.r.Apply([]Assignment{{Name: "unlimited", Generation: 1, Spec: execSpec(t, "sleep")}})
	st := h.waitState("unlimited", StateRunning, 10*time.Second)
	if !strings.Contains(st.Reason, "cpu and memory limits not enforced") {
		t.Errorf("Reason = %q, want it to say limits are not enforced", st.Reason)
	}
	if n := h.logs.Count("workload limits not enforced"); n != 1 {
		t.Errorf("logged the missing cgroup %d times, want once", n)
	}
}

func TestExecLogRotationAndTail(t *testing.T) {
	h := start(t, "", func(c *Config) {
		c.LogMaxBytes = 8 << 10
		c.LogFiles = 3
		c.CheckInterval = 10 * time.Millisecond
	})
	h.r.Apply([]Assignment{{Name: "chatty", Generation: 1, Spec: execSpec(t, "spam")}})
	st := h.waitState("chatty", StateRunning, 10*time.Second)
	log := filepath.Join(h.r.cfg.StateDir, "workloads", "chatty", logName)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(log + ".2"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s.2 never appeared", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(log + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists: LogFiles 3 keeps two rotated files", log)
	}
	lines, err := h.r.Logs("chatty", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 5 {
		t.Fatalf("Logs(chatty, 5) returned %d lines: %q", len(lines), lines)
	}
	re := regexp.MustCompile(`^line (\d{6}) x{50}$`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("tail line %q is not a whole helper line", l)
		}
	}
	// The child kept writing through its own descriptor after rotating.
	if !alive(st.PID) {
		t.Error("the writer died during rotation")
	}
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 1<<20 {
		t.Errorf("live log is %d bytes; rotation at 8 KiB does not keep up", fi.Size())
	}
}

func TestExecStopGracePeriod(t *testing.T) {
	tests := []struct {
		name      string
		behaviour string
		grace     time.Duration
		atLeast   time.Duration
		atMost    time.Duration
		code      *int
		marker    bool
	}{
		{name: "traps SIGTERM and exits", behaviour: "trap", grace: 10 * time.Second, atMost: 5 * time.Second, code: new(int), marker: true},
		{name: "ignores SIGTERM, killed after grace", behaviour: "ignore", grace: 700 * time.Millisecond, atLeast: 700 * time.Millisecond, atMost: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, "", nil)
			marker := filepath.Join(t.TempDir(), "marker")
			s := execSpec(t, tt.behaviour)
			s.Exec.Env[markerEnv] = marker
			s.StopGracePeriod = spec.Duration(tt.grace)
			h.r.Apply([]Assignment{{Name: "graceful", Generation: 1, Spec: s}})
			st := h.waitState("graceful", StateRunning, 10*time.Second)
			// The helper must have installed its handler before the stop.
			h.waitLog("graceful", "SIGTERM", 10*time.Second)

			begin := time.Now()
			h.r.Apply(nil)
			eventually(t, "the stopped status", 30*time.Second, func() bool { return h.rec.last("graceful").State == StateStopped })
			took := time.Since(begin)
			waitGone(t, st.PID, 5*time.Second)
			if took < tt.atLeast || took > tt.atMost {
				t.Errorf("stop took %v, want between %v and %v", took, tt.atLeast, tt.atMost)
			}
			last := h.rec.last("graceful")
			if !cmp.Equal(last.ExitCode, tt.code) {
				t.Errorf("stopped ExitCode = %v, want %v", last.ExitCode, tt.code)
			}
			if last.Reason != "removed from the desired set" {
				t.Errorf("stopped Reason = %q", last.Reason)
			}
			if _, err := os.Stat(marker); (err == nil) != tt.marker {
				t.Errorf("SIGTERM marker written: %v, want %v", err == nil, tt.marker)
			}
		})
	}
}

func TestExecUpdate(t *testing.T) {
	h := start(t, "", nil)
	s1 := execSpec(t, "print")
	s1.Exec.Env[messageEnv] = "v1"
	h.r.Apply([]Assignment{{Name: "app", Generation: 1, Spec: s1}})
	first := h.waitState("app", StateRunning, 10*time.Second)
	h.waitLog("app", "message: v1", 10*time.Second)

	// A change outside the instance hash applies in place.
	s1b := s1
	s1b.Restart.Policy = spec.RestartOnFailure
	s1b.Disconnect.StopAfter = spec.Duration(time.Hour)
	h.r.Apply([]Assignment{{Name: "app", Generation: 2, Spec: s1b}})
	st := h.waitFor("app", "generation 2", 10*time.Second, func(s Status) bool { return s.Generation == 2 })
	if st.PID != first.PID || st.State != StateRunning {
		t.Errorf("after an in-place update: %+v, want the same pid %d running", st, first.PID)
	}

	// A new command replaces the instance.
	s2 := execSpec(t, "print")
	s2.Exec.Env[messageEnv] = "v2"
	h.r.Apply([]Assignment{{Name: "app", Generation: 3, Spec: s2}})
	st = h.waitFor("app", "a new instance", 10*time.Second, func(s Status) bool {
		return s.Generation == 3 && s.State == StateRunning && s.PID != first.PID
	})
	h.waitLog("app", "message: v2", 10*time.Second)
	waitGone(t, first.PID, 5*time.Second)
	if st.Restarts != 0 {
		t.Errorf("Restarts after an update = %d, want 0", st.Restarts)
	}
	stopped := false
	for _, s := range h.rec.of("app") {
		stopped = stopped || s.State == StateStopped && s.Reason == "replaced by generation 3"
	}
	if !stopped {
		t.Errorf("no stopped status for the replaced instance: %v", h.rec.states("app"))
	}
}

func TestExecRefusesInvalidAssignments(t *testing.T) {
	h := start(t, "", nil)
	good := execSpec(t, "sleep")
	bad := execSpec(t, "sleep")
	bad.Resources.Memory = "64MB"
	h.r.Apply([]Assignment{
		{Name: "fine", Generation: 1, Spec: good},
		{Name: "broken", Generation: 1, Spec: bad},
		{Name: "../escape", Generation: 1, Spec: good},
		{Name: "fine", Generation: 1, Spec: good},
	})
	h.waitState("fine", StateRunning, 10*time.Second)
	st := h.waitState("broken", StateFailed, 10*time.Second)
	if !strings.Contains(st.LastError, `spec.resources.memory "64MB"`) {
		t.Errorf("broken LastError = %q, want the field error", st.LastError)
	}
	if _, ok := h.status("../escape"); ok {
		t.Error("a workload with an invalid name got a supervisor")
	}
	// A bad update keeps the running instance and says why.
	first, _ := h.status("fine")
	h.r.Apply([]Assignment{{Name: "fine", Generation: 2, Spec: bad}, {Name: "broken", Generation: 1, Spec: bad}})
	h.r.Apply([]Assignment{{Name: "fine", Generation: 2, Spec: bad}, {Name: "broken", Generation: 1, Spec: bad}})
	st = h.waitFor("fine", "the refusal", 5*time.Second, func(s Status) bool { return strings.Contains(s.LastError, "generation 2 refused") })
	if st.PID != first.PID || st.State != StateRunning {
		t.Errorf("after a refused update: %+v, want pid %d still running", st, first.PID)
	}
	if got := h.r.Stats().Rejected; got != 7 {
		t.Errorf("Stats().Rejected = %d, want 7", got)
	}
	if n := h.logs.Count("assignment refused"); n != 4 {
		t.Errorf("logged %d refusals, want 4 (once per workload and generation)", n)
	}
}

func TestExecAdoptionAfterRunnerDrop(t *testing.T) {
	dir := t.TempDir()
	set := []Assignment{
		{Name: "keep-a", Generation: 1, Spec: execSpec(t, "sleep")},
		{Name: "keep-b", Generation: 1, Spec: execSpec(t, "sleep")},
	}
	h1 := start(t, dir, nil)
	h1.r.Apply(set)
	a := h1.waitState("keep-a", StateRunning, 10*time.Second)
	b := h1.waitState("keep-b", StateRunning, 10*time.Second)
	reapOnCleanup(t, a.PID, b.PID)
	h1.drop()
	if !alive(a.PID) || !alive(b.PID) {
		t.Fatal("workloads died with their runner")
	}

	h2 := start(t, dir, nil)
	h2.r.Apply(set)
	for _, want := range []Status{a, b} {
		st := h2.waitState(want.Name, StateRunning, 10*time.Second)
		if st.PID != want.PID || !st.Adopted || st.Restarts != 0 {
			t.Errorf("%s after a new runner: %+v; want pid %d adopted, not restarted", want.Name, st, want.PID)
		}
		if !st.StartedAt.Equal(want.StartedAt) {
			t.Errorf("%s StartedAt = %v, want the original %v", want.Name, st.StartedAt, want.StartedAt)
		}
	}
	if got := h2.r.Stats(); got.Adoptions != 2 || got.Starts != 0 {
		t.Errorf("Stats() = %+v, want 2 adoptions, 0 starts", got)
	}
	// An adopted instance that dies is restarted like any other.
	syscall.Kill(a.PID, syscall.SIGKILL)
	st := h2.waitFor("keep-a", "a restart", 10*time.Second, func(s Status) bool { return s.Restarts == 1 && s.State == StateRunning })
	if st.PID == a.PID || st.Adopted {
		t.Errorf("after the adopted process died: %+v, want a new, not adopted, instance", st)
	}
}

func TestExecOrphansAreStopped(t *testing.T) {
	dir := t.TempDir()
	h1 := start(t, dir, nil)
	h1.r.Apply([]Assignment{
		{Name: "stays", Generation: 1, Spec: execSpec(t, "sleep")},
		{Name: "goes", Generation: 1, Spec: execSpec(t, "sleep")},
	})
	h1.waitState("stays", StateRunning, 10*time.Second)
	goes := h1.waitState("goes", StateRunning, 10*time.Second)
	reapOnCleanup(t, goes.PID)
	h1.drop()

	// The new agent's desired set no longer has "goes".
	h2 := start(t, dir, nil)
	h2.r.Apply([]Assignment{{Name: "stays", Generation: 2, Spec: execSpec(t, "sleep")}})
	waitGone(t, goes.PID, 10*time.Second)
	eventually(t, "the orphan's state to go", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "workloads", "goes"))
		_, supervised := h2.status("goes")
		return os.IsNotExist(err) && !supervised
	})
	if last := h2.rec.last("goes"); last.State != StateStopped || last.Reason != "removed from the desired set" {
		t.Errorf("orphan's last status = %+v, want stopped, removed from the desired set", last)
	}
	if st, ok := h2.status("stays"); !ok || !st.Adopted {
		t.Errorf("stays = %+v, want adopted", st)
	}
}
