//go:build linux

package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/agent/internal/runner/internal/reexec"
)

// helperEnv selects a behaviour when the test binary runs as a child.
const helperEnv = "SKYEDGE_PROC_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(helper(h))
	}
	goleak.VerifyTestMain(m)
}

// helper runs a child behaviour and returns its exit code.
func helper(behaviour string) int {
	switch behaviour {
	case "sleep":
		time.Sleep(time.Hour)
	case "exit3":
		return 3
	case "group":
		// A grandchild in the same process group, then sleep.
		c := mustCommand()
		c.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := c.Start(); err != nil {
			return 10
		}
		fmt.Println(c.Process.Pid)
		time.Sleep(time.Hour)
	case "orphan":
		// Start a sleeper in its own session, print its identity and
		// exit, so the sleeper is no child of the test.
		c := mustCommand()
		c.Env = append(os.Environ(), helperEnv+"=sleep")
		p, err := Start(c)
		if err != nil {
			return 11
		}
		json.NewEncoder(os.Stdout).Encode(p.Identity())
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	}
	return 0
}

// mustCommand runs the test binary again (through qemu-user when the
// kernel cannot).
func mustCommand() *exec.Cmd {
	c, err := reexec.Command()
	if err != nil {
		panic(err)
	}
	return c
}

func command(behaviour string) *exec.Cmd {
	c := mustCommand()
	c.Env = append(os.Environ(), helperEnv+"="+behaviour)
	return c
}

func start(t *testing.T, behaviour string) *Process {
	t.Helper()
	p, err := Start(command(behaviour))
	if err != nil {
		t.Fatalf("Start(%s) = %v", behaviour, err)
	}
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Wait(ctx)
	})
	return p
}

func waitExit(t *testing.T, p *Process) Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	return e
}

func TestStartWaitExitCodes(t *testing.T) {
	p := start(t, "exit3")
	if e := waitExit(t, p); e != (Exit{Known: true, Code: 3}) {
		t.Errorf("Wait() = %+v, want exit code 3", e)
	}
	// Wait again returns the same exit.
	if e := waitExit(t, p); e.Code != 3 {
		t.Errorf("second Wait() = %+v, want exit code 3", e)
	}

	p = start(t, "sleep")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, p); e != (Exit{Known: true, Code: -1, Signal: syscall.SIGTERM}) || e.String() != "killed by signal terminated" {
		t.Errorf("Wait() = %+v (%s), want killed by SIGTERM", e, e)
	}
}

func TestWaitCancelLeavesProcessRunning(t *testing.T) {
	p := start(t, "sleep")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait(expiring ctx) = %v, want DeadlineExceeded", err)
	}
	if err := same(p.Identity()); err != nil {
		t.Errorf("process gone after a cancelled Wait: %v", err)
	}
	// A later Wait still sees the exit.
	p.Signal(syscall.SIGKILL)
	if e := waitExit(t, p); e.Signal != syscall.SIGKILL {
		t.Errorf("Wait() = %+v, want killed by SIGKILL", e)
	}
}

func TestSignalReachesGroup(t *testing.T) {
	c := command("group")
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	if _, err := fmt.Fscan(out, &grandchild); err != nil {
		t.Fatal(err)
	}
	gid, err := ReadIdentity(grandchild)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	deadline := time.Now().Add(5 * time.Second)
	for same(gid) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still runs after SIGKILL to the group", grandchild)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdopt(t *testing.T) {
	p := start(t, "sleep")
	id := p.Identity()
	if id.PID == 0 || id.StartTicks == 0 || id.BootID == "" {
		t.Fatalf("Identity() = %+v, want pid, start time and boot id", id)
	}
	for _, tt := range []struct {
		name string
		id   Identity
	}{
		{name: "other start time", id: Identity{PID: id.PID, StartTicks: id.StartTicks + 1, BootID: id.BootID}},
		{name: "earlier boot", id: Identity{PID: id.PID, StartTicks: id.StartTicks, BootID: "00000000-0000-0000-0000-000000000000"}},
		{name: "no such pid", id: Identity{PID: 1 << 30, StartTicks: 1, BootID: id.BootID}},
	} {
		if _, err := Adopt(tt.id); !errors.Is(err, ErrGone) {
			t.Errorf("%s: Adopt(%+v) = %v, want ErrGone", tt.name, tt.id, err)
		}
	}
	a, err := Adopt(id)
	if err != nil {
		t.Fatalf("Adopt(%+v) = %v", id, err)
	}
	if !a.Child() {
		t.Error("Adopt() of an own child: Child() = false")
	}
	a.Signal(syscall.SIGKILL)
	if e := waitExit(t, a); e.Signal != syscall.SIGKILL {
		t.Errorf("adopted child Wait() = %+v, want killed by SIGKILL", e)
	}
}

func TestAdoptOrphanExitUnknown(t *testing.T) {
	out, err := command("orphan").Output()
	if err != nil {
		t.Fatal(err)
	}
	var id Identity
	if err := json.Unmarshal(out, &id); err != nil {
		t.Fatalf("orphan identity %q: %v", out, err)
	}
	p, err := Adopt(id)
	if err != nil {
		t.Fatalf("Adopt(orphan %+v) = %v", id, err)
	}
	if p.Child() {
		t.Error("orphan Child() = true")
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, p); e.Known || e.String() != "exit status unknown" {
		t.Errorf("orphan Wait() = %+v, want unknown exit", e)
	}
}

func TestParseStat(t *testing.T) {
	// Fields 7 to 17, then priority, nice, threads, itrealvalue and starttime (22).
	tail := " 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10"
	tests := []struct {
		name string
		in   string
		want stat
		err  bool
	}{
		{name: "plain", in: "42 (sleep) S 1 42 42" + tail, want: stat{state: 'S', ppid: 1, startTicks: 98765}},
		{name: "name with parentheses and spaces", in: "42 (a) b (c) Z 7 42 42" + tail, want: stat{state: 'Z', ppid: 7, startTicks: 98765}},
		{name: "truncated", in: "42 (x) S 1 2", err: true},
		{name: "no command", in: "42 x S", err: true},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.in))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: parseStat(%q) = %+v, %v; want %+v, error %v", tt.name, tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFindSessionsAndStartTime(t *testing.T) {
	c := command("sleep")
	marker := fmt.Sprintf("test-%d", os.Getpid())
	c.Env = append(c.Env, "SKYEDGE_TEST_MARK="+marker, "SKYEDGE_TEST_OTHER=x")
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		p.Wait(context.Background())
	})
	found, err := FindSessions("SKYEDGE_TEST_MARK", "SKYEDGE_TEST_OTHER", "SKYEDGE_TEST_ABSENT")
	if err != nil {
		t.Fatal(err)
	}
	var got *Session
	for i, s := range found {
		if s.Env["SKYEDGE_TEST_MARK"] == marker {
			got = &found[i]
		}
	}
	if got == nil || got.Identity != p.Identity() || got.Env["SKYEDGE_TEST_OTHER"] != "x" || len(got.Env) != 2 {
		t.Fatalf("FindSessions() = %+v; want %+v with its two variables", found, p.Identity())
	}
	started, err := StartTime(p.Identity())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(started); d < -2*time.Second || d > time.Minute {
		t.Errorf("StartTime() = %v, %v ago; want about now", started, d)
	}
}
