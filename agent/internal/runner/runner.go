package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skyedge/skyedge/agent/internal/runner/cgroup"
	"github.com/skyedge/skyedge/agent/internal/runner/dockerapi"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol/spec"
)

// Defaults of Config.
const (
	DefaultLogMaxBytes   = 1 << 20
	DefaultLogFiles      = 3
	DefaultStableAfter   = 10 * time.Minute
	DefaultCheckInterval = time.Second
)

// ErrUnknownWorkload is returned by Logs for a workload the runner does
// not supervise.
var ErrUnknownWorkload = errors.New("unknown workload")

// Config configures a Runner.
type Config struct {
	// StateDir holds one directory per workload: state.json (what runs:
	// pid and start time, or container ID, and the spec hash) and the
	// output of exec workloads. Required.
	StateDir string
	// DockerSocket is the Docker daemon's socket (default
	// /var/run/docker.sock). Docker is optional: without it, docker
	// workloads fail with a status that says so, and are retried.
	DockerSocket string
	// CgroupRoot is the cgroup v2 directory under which exec workloads
	// get their own cgroup with cpu.max and memory.max (default
	// /sys/fs/cgroup/skyedge.slice).
	CgroupRoot string
	// DisableLimits runs exec workloads without cgroup limits.
	DisableLimits bool
	Logger        *slog.Logger
	Clock         clock.Clock
	// LastContact returns when the agent last heard from the cloud (zero:
	// not since it started). It drives disconnect.stopAfter; nil disables
	// it.
	LastContact func() time.Time
	// OnStatus is called on every change of a workload's status, in order
	// per workload, from the workload's goroutine: it must not block for
	// long nor call the Runner.
	OnStatus func(Status)
	// LogMaxBytes and LogFiles bound a workload's output: the live file
	// rotates at LogMaxBytes and LogFiles files are kept, the live one
	// included (default 1 MiB x 3). Docker's json-file driver gets the
	// same bounds.
	LogMaxBytes int64
	LogFiles    int
	// StableAfter is how long an instance must run for its restart
	// backoff to start again from InitialDelay (default 10 minutes).
	StableAfter time.Duration
	// CheckInterval is how often the disconnect policy and log sizes are
	// checked (default 1 s).
	CheckInterval time.Duration
}

// Runner runs the workloads assigned to this node and keeps them running
// with no cloud at all. Create it with New, give it the desired set with
// Apply (before or after Run), and run it with Run.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	clock   clock.Clock
	created time.Time
	exec    *execDriver
	docker  *dockerDriver
	kick    chan struct{} // cap 1: supervisors to start

	mu      sync.Mutex // guards the fields below
	sups    map[string]*supervisor
	applied bool
	ran     bool
	refused map[string]uint64 // generation of the last refusal logged, per name
	stats   Stats
	rotErrs map[string]string // last rotation error logged, per workload
}

// New checks cfg and builds a runner; nothing starts before Run.
func New(cfg Config) (*Runner, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("runner config: StateDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.LogFiles <= 0 {
		cfg.LogFiles = DefaultLogFiles
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = DefaultStableAfter
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = cgroup.DefaultRoot
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "workloads"), 0o750); err != nil {
		return nil, fmt.Errorf("runner state dir: %w", err)
	}
	log := cfg.Logger.With("component", "runner")
	r := &Runner{
		cfg:     cfg,
		log:     log,
		clock:   cfg.Clock,
		created: cfg.Clock.Now(),
		kick:    make(chan struct{}, 1),
		sups:    map[string]*supervisor{},
		refused: map[string]uint64{},
		rotErrs: map[string]string{},
	}
	r.exec = &execDriver{clock: cfg.Clock, log: log, stateID: stateID(cfg.StateDir), cgRoot: cfg.CgroupRoot, logMaxBytes: cfg.LogMaxBytes, logFiles: cfg.LogFiles}
	if cfg.DisableLimits {
		r.exec.cgRoot = ""
	}
	r.docker = &dockerDriver{c: dockerapi.New(cfg.DockerSocket), stateID: r.exec.stateID, clock: cfg.Clock, log: log, logMaxBytes: cfg.LogMaxBytes, logFiles: cfg.LogFiles}
	return r, nil
}

// stateID names the state directory in the environment of exec
// workloads.
func stateID(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:8])
}

func (r *Runner) driver(rt spec.Runtime) driver {
	if rt == spec.RuntimeDocker {
		return r.docker
	}
	return r.exec
}

func (r *Runner) count(fn func(*Stats)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.stats)
}

// Stats returns the runner's counters.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Apply replaces the desired set: workloads not running yet are started,
// those whose spec hash changed are replaced, changes that do not touch
// the instance (restart policy, health check, grace period, disconnect
// policy, generation) apply in place, and workloads absent from desired
// are stopped and their state deleted. An invalid assignment is refused
// (counted, logged once per generation): a workload already running
// keeps its last valid spec and reports the refusal in LastError.
//
// Apply may be called before Run, with the desired set stored on disk,
// so a node that boots without the cloud starts its workloads at once.
func (r *Runner) Apply(desired []Assignment) {
	now := r.clock.Now()
	var last time.Time
	if r.cfg.LastContact != nil {
		last = r.cfg.LastContact()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = true
	seen := make(map[string]bool, len(desired))
	for _, a := range desired {
		if seen[a.Name] {
			r.refuseLocked(a, errors.New("a second assignment with the same name"), nil)
			continue
		}
		seen[a.Name] = true
		u, err := newUnit(a)
		s := r.sups[a.Name]
		if err != nil {
			r.refuseLocked(a, err, s)
			if s == nil {
				if !validName(a.Name) {
					continue
				}
				s = r.newSupervisorLocked(a.Name)
				s.status.Generation = a.Generation
			}
			if s.desired == nil || s.removed {
				// Nothing valid to keep running.
				s.desired, s.invalid, s.removed = nil, err, false
				s.poke()
			}
			continue
		}
		if s == nil {
			s = r.newSupervisorLocked(a.Name)
		}
		s.desired, s.invalid, s.removed = u, nil, false
		if r.cfg.LastContact != nil {
			s.held = heldByDisconnect(now, last, r.created, u.spec.Disconnect.StopAfter.Std())
		}
		s.poke()
	}
	for name, s := range r.sups {
		if !seen[name] && !s.removed {
			s.removed = true
			s.poke()
		}
	}
	r.kickLocked()
}

// validName checks a name before it names a directory: refused
// assignments with a bad name get no supervisor.
func validName(name string) bool {
	w := spec.Workload{Metadata: spec.Metadata{Name: name}}
	for _, e := range unwrapJoined(w.Validate()) {
		var fe *spec.FieldError
		if errors.As(e, &fe) && fe.Field == "metadata.name" {
			return false
		}
	}
	return true
}

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// refuseLocked counts and logs (once per name and generation) an
// assignment that cannot be run.
func (r *Runner) refuseLocked(a Assignment, err error, s *supervisor) {
	r.stats.Rejected++
	msg := fmt.Sprintf("generation %d refused: %s", a.Generation, strings.ReplaceAll(err.Error(), "\n", "; "))
	if s != nil && s.desired != nil {
		s.status.LastError = msg
	}
	if g, ok := r.refused[a.Name]; ok && g == a.Generation {
		return
	}
	r.refused[a.Name] = a.Generation
	r.log.Warn("assignment refused", "workload", a.Name, "generation", a.Generation, "error", err)
}

func (r *Runner) newSupervisorLocked(name string) *supervisor {
	s := &supervisor{
		r:    r,
		name: name,
		dir:  filepath.Join(r.cfg.StateDir, "workloads", name),
		log:  r.log.With("workload", name),
		wake: make(chan struct{}, 1),
		// Until a spec or a record says otherwise.
		grace: spec.DefaultStopGracePeriod,
		status: Status{
			Name: name, State: StatePending, Since: r.clock.Now(),
		},
	}
	r.sups[name] = s
	return s
}

func (r *Runner) kickLocked() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// finish forgets a removed workload's supervisor, unless the workload
// was desired again meanwhile.
func (r *Runner) finish(s *supervisor) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !s.removed {
		return false
	}
	if r.sups[s.name] == s {
		delete(r.sups, s.name)
	}
	return true
}

// Run supervises the workloads until ctx is done, then returns nil.
//
// When Run returns, the workloads KEEP RUNNING: the agent is restarting
// or upgrading, not the node shutting down. Exec workloads live in their
// own sessions, containers have no tie to the agent, and state.json says
// what runs, so the next agent adopts them instead of starting them
// again. To stop workloads, Apply an empty set and wait for their
// stopped statuses. Run may be called once.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.ran {
		r.mu.Unlock()
		return errors.New("runner: Run called twice")
	}
	r.ran = true
	r.mu.Unlock()
	var g errgroup.Group
	defer r.docker.c.Close()
	defer g.Wait()
	tick := r.clock.NewTicker(r.cfg.CheckInterval)
	defer tick.Stop()
	swept := false
	for {
		r.spawn(ctx, &g)
		if !swept && r.hasApplied() {
			// Only once the desired set is known is anything else an
			// orphan.
			swept = true
			g.Go(func() error { r.sweep(ctx); return nil })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-tick.C():
			r.housekeep()
		}
	}
}

func (r *Runner) hasApplied() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// spawn starts the goroutines of new supervisors.
func (r *Runner) spawn(ctx context.Context, g *errgroup.Group) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sups {
		if !s.started {
			s.started = true
			g.Go(func() error { s.run(ctx); return nil })
		}
	}
}

// sweep finds what earlier agents left of workloads no longer desired (a
// state directory, a labelled container) and hands each to a supervisor
// that stops and removes it.
func (r *Runner) sweep(ctx context.Context) {
	orphans := map[string]spec.Runtime{}
	entries, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "workloads"))
	if err != nil {
		r.log.Warn("listing workload state failed", "error", err)
	}
	for _, e := range entries {
		if e.IsDir() && validName(e.Name()) {
			orphans[e.Name()] = ""
		}
	}
	for _, name := range r.exec.sessionNames() {
		if validName(name) {
			orphans[name] = spec.RuntimeExec
		}
	}
	if _, err := os.Stat(r.docker.c.Socket()); err == nil {
		names, err := r.docker.managed(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("listing managed containers failed", "error", err)
		}
		for _, name := range names {
			if validName(name) {
				orphans[name] = spec.RuntimeDocker
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for name, rt := range orphans {
		if _, ok := r.sups[name]; ok {
			continue
		}
		s := r.newSupervisorLocked(name)
		s.removed, s.orphanRT = true, rt
		n++
	}
	if n > 0 {
		r.log.Info("stopping workloads no longer desired", "count", n)
		r.kickLocked()
	}
}

// housekeep applies the disconnect policy and rotates exec logs.
func (r *Runner) housekeep() {
	now := r.clock.Now()
	var last time.Time
	if r.cfg.LastContact != nil {
		last = r.cfg.LastContact()
	}
	r.mu.Lock()
	var rotate []*supervisor
	for _, s := range r.sups {
		if s.desired != nil && !s.removed && r.cfg.LastContact != nil {
			held := heldByDisconnect(now, last, r.created, s.desired.spec.Disconnect.StopAfter.Std())
			if held != s.held {
				s.held = held
				s.log.Info("disconnect policy", "held_stopped", held, "last_contact", last)
				s.poke()
			}
		}
		rotate = append(rotate, s)
	}
	r.mu.Unlock()
	for _, s := range rotate {
		rot := r.exec.rotator(s.dir)
		_, err := rot.Rotate()
		r.mu.Lock()
		if err != nil && r.rotErrs[s.name] != err.Error() {
			r.log.Warn("log rotation failed", "workload", s.name, "error", err)
		}
		if err != nil {
			r.rotErrs[s.name] = err.Error()
		} else {
			delete(r.rotErrs, s.name)
		}
		r.mu.Unlock()
	}
}

// Statuses returns the status of every supervised workload, by name.
func (r *Runner) Statuses() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.sups))
	for _, s := range r.sups {
		out = append(out, s.status)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Logs returns the last tail lines of a workload's stdout and stderr
// (every line kept when tail <= 0), oldest first.
func (r *Runner) Logs(name string, tail int) ([]string, error) {
	r.mu.Lock()
	s := r.sups[name]
	r.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("logs of %q: %w", name, ErrUnknownWorkload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.mu.Lock()
	rt := s.orphanRT
	if s.desired != nil {
		rt = s.desired.spec.Runtime
	}
	r.mu.Unlock()
	lines, err := r.driver(rt).logs(ctx, name, s.dir, tail)
	if err != nil {
		return nil, fmt.Errorf("logs of %q: %w", name, err)
	}
	return lines, nil
}
