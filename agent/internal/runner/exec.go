package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/skyedge/skyedge/agent/internal/runner/cgroup"
	"github.com/skyedge/skyedge/agent/internal/runner/logfile"
	"github.com/skyedge/skyedge/agent/internal/runner/proc"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol/spec"
)

// logName is the file of an exec workload's stdout and stderr.
const logName = "output.log"

// defaultPath is the PATH of workloads when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// The environment variables that mark an exec workload's process, so it
// is found again even without its record.
// SKYEDGE_STATE_ID tells apart the workloads of two agents (or two test
// runs) on one host: it is derived from the runner's StateDir.
const (
	envWorkload = "SKYEDGE_WORKLOAD"
	envSpecHash = "SKYEDGE_SPEC_HASH"
	envStateID  = "SKYEDGE_STATE_ID"
)

// execDriver runs host processes.
type execDriver struct {
	clock   clock.Clock
	log     *slog.Logger
	stateID string // marks this runner's processes

	cgRoot      string // "" when limits are disabled
	scanOnce    sync.Once
	untracked   map[string][]proc.Session // by workload; read once per runner
	cgOnce      sync.Once
	cg          *cgroup.Manager // nil when unavailable
	cgNote      string          // why limits are not enforced
	logMaxBytes int64
	logFiles    int
}

// cgroups opens the cgroup root once; when limits cannot be applied it
// logs why, once, and every status says so.
func (d *execDriver) cgroups() (*cgroup.Manager, string) {
	d.cgOnce.Do(func() {
		if d.cgRoot == "" {
			d.cgNote = "cpu and memory limits not enforced: disabled in the agent configuration"
			return
		}
		m, err := cgroup.Open(d.cgRoot)
		if err != nil {
			d.cgNote = "cpu and memory limits not enforced: " + err.Error()
			d.log.Warn("workload limits not enforced", "error", err)
			return
		}
		d.cg = m
	})
	return d.cg, d.cgNote
}

func (d *execDriver) rotator(dir string) logfile.Rotator {
	return logfile.Rotator{Path: filepath.Join(dir, logName), MaxBytes: d.logMaxBytes, Files: d.logFiles}
}

// command builds the process of u: the agent's PATH, SKYEDGE_WORKLOAD,
// SKYEDGE_SPEC_HASH and the spec's environment, nothing else of the
// agent's environment (such as its GOMEMLIMIT).
func (d *execDriver) command(u *unit, dir string, argv ...string) *exec.Cmd {
	e := u.spec.Exec
	if len(argv) == 0 {
		argv = append([]string{e.Command}, e.Args...)
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	env := []string{
		"PATH=" + path,
		envWorkload + "=" + u.name,
		envSpecHash + "=" + u.hash,
		envStateID + "=" + d.stateID,
	}
	if home := os.Getenv("HOME"); home != "" {
		env = append(env, "HOME="+home)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(env, envList(e.Env)...)
	cmd.Dir = e.WorkingDir
	if cmd.Dir == "" {
		cmd.Dir = dir
	}
	return cmd
}

func (d *execDriver) start(_ context.Context, u *unit, dir string) (instance, error) {
	out, err := logfile.Open(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	// The child holds its own descriptor; the agent's copy goes.
	defer out.Close()
	cmd := d.command(u, dir)
	cmd.Stdout, cmd.Stderr = out, out

	cg, note := d.cgroups()
	if cg != nil {
		if err := d.setupCgroup(cg, u); err != nil {
			note = "cpu and memory limits not enforced: " + err.Error()
		}
	}
	p, err := proc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", u.spec.Exec.Command, err)
	}
	if cg != nil && note == "" {
		if err := cg.Add(u.name, p.Identity().PID); err != nil {
			note = "cpu and memory limits not enforced: " + err.Error()
		}
	}
	id := p.Identity()
	return &execInstance{
		d: d, p: p, u: u, dir: dir,
		v:  instanceView{hash: u.hash, pid: id.PID, process: &id, startedAt: d.clock.Now(), note: note},
		ch: make(chan struct{}),
	}, nil
}

func (d *execDriver) setupCgroup(cg *cgroup.Manager, u *unit) error {
	cpu, err := u.spec.Resources.CPU.MilliCPU()
	if err != nil {
		return err
	}
	mem, err := u.spec.Resources.Memory.Bytes()
	if err != nil {
		return err
	}
	return cg.Setup(u.name, cgroup.Limits{MilliCPU: cpu, MemoryBytes: mem})
}

// adopt takes over the recorded process when it still runs. Otherwise it
// looks for processes of the workload whose record was never written (an
// agent killed between a start and its record): the one running u's spec
// is adopted, another one is returned for the caller to stop, and any
// further one is stopped here. Whether the instance runs the wanted spec
// is the caller's check of its hash.
func (d *execDriver) adopt(ctx context.Context, name, dir string, u *unit, rec *record) (instance, error) {
	if rec != nil && rec.Process != nil {
		p, err := proc.Adopt(*rec.Process)
		if err == nil {
			return d.adopted(p, rec.Hash, rec.StartedAt, dir, u), nil
		}
		if !errors.Is(err, proc.ErrGone) {
			return nil, err
		}
	}
	var (
		keep     *proc.Process
		keepHash string
		extra    []*proc.Process
	)
	for _, s := range d.sessions(name) {
		p, err := proc.Adopt(s.Identity)
		if err != nil {
			continue
		}
		hash := s.Env[envSpecHash]
		switch {
		case keep == nil || u != nil && hash == u.hash && keepHash != u.hash:
			if keep != nil {
				extra = append(extra, keep)
			}
			keep, keepHash = p, hash
		default:
			extra = append(extra, p)
		}
	}
	for _, p := range extra {
		d.log.Warn("stopping an untracked duplicate of the workload", "workload", name, "pid", p.Identity().PID)
		i := &execInstance{d: d, p: p, ch: make(chan struct{})}
		go i.watch(ctx)
		_ = i.stop(ctx, spec.DefaultStopGracePeriod)
		<-i.ch
		i.close()
	}
	if keep == nil {
		return nil, nil
	}
	d.log.Info("found an untracked workload process", "workload", name, "pid", keep.Identity().PID, "spec_hash", keepHash)
	started, _ := proc.StartTime(keep.Identity())
	return d.adopted(keep, keepHash, started, dir, u), nil
}

// sessions returns the processes marked as workload name's, from one scan
// of /proc per runner: after it, every process the runner starts is
// recorded.
func (d *execDriver) sessions(name string) []proc.Session {
	d.scanOnce.Do(func() {
		d.untracked = map[string][]proc.Session{}
		found, err := proc.FindSessions(envStateID, envWorkload, envSpecHash)
		if err != nil {
			d.log.Warn("scanning for untracked workload processes failed", "error", err)
			return
		}
		for _, s := range found {
			if s.Env[envStateID] == d.stateID {
				d.untracked[s.Env[envWorkload]] = append(d.untracked[s.Env[envWorkload]], s)
			}
		}
	})
	return d.untracked[name]
}

// sessionNames lists the workloads that have marked processes.
func (d *execDriver) sessionNames() []string {
	d.sessions("")
	var names []string
	for name := range d.untracked {
		names = append(names, name)
	}
	return names
}

func (d *execDriver) adopted(p *proc.Process, hash string, started time.Time, dir string, u *unit) *execInstance {
	id := p.Identity()
	_, note := d.cgroups()
	if u != nil && u.hash != hash {
		u = nil // a stale instance, about to be stopped
	}
	return &execInstance{
		d: d, p: p, u: u, dir: dir,
		v:  instanceView{hash: hash, pid: id.PID, process: &id, startedAt: started, adopted: true, note: note},
		ch: make(chan struct{}),
	}
}

func (d *execDriver) cleanup(_ context.Context, name string) error {
	if cg, _ := d.cgroups(); cg != nil {
		return cg.Remove(name)
	}
	return nil
}

func (d *execDriver) logs(_ context.Context, _, dir string, tail int) ([]string, error) {
	return d.rotator(dir).Tail(tail)
}

// execInstance is a process group started in its own session.
type execInstance struct {
	d   *execDriver
	p   *proc.Process
	u   *unit  // nil when adopted: the probe then runs without the spec's env
	dir string // "" when adopted
	v   instanceView

	ch   chan struct{}
	exit exitInfo
	ok   bool
}

func (i *execInstance) watch(ctx context.Context) {
	defer close(i.ch)
	e, err := i.p.Wait(ctx)
	if err != nil {
		return
	}
	i.exit, i.ok = exitInfo{Exit: e}, true
	if !e.Known {
		i.exit.detail = "adopted process, its parent is no longer the agent"
	}
	// Members of the group that outlive their leader go with it.
	_ = i.p.Signal(syscall.SIGKILL)
}

func (i *execInstance) done() <-chan struct{}   { return i.ch }
func (i *execInstance) ended() (exitInfo, bool) { return i.exit, i.ok }
func (i *execInstance) view() instanceView      { return i.v }
func (i *execInstance) close()                  { i.p.Close() }

func (i *execInstance) stop(ctx context.Context, grace time.Duration) error {
	if err := i.p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-i.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-i.d.clock.After(grace):
	}
	if err := i.p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-i.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exec runs a probe command on the host, in its own process group so a
// timeout kills whatever it started.
func (i *execInstance) exec(ctx context.Context, argv []string) error {
	var cmd *exec.Cmd
	if i.u != nil {
		cmd = i.d.command(i.u, i.dir, argv...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=" + defaultPath}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer stop()
	err := cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("timed out: %w", ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("exited with code %d", ee.ExitCode())
	}
	return err
}
