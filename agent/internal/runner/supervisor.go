package runner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// reasonDisconnected is the Reason of a workload the runner holds stopped.
const reasonDisconnected = "disconnected longer than stopAfter"

// retryStop is the wait before trying again to stop an instance that
// could not be stopped (the Docker daemon unreachable).
const retryStop = 5 * time.Second

// supervisor runs one workload: it adopts or starts its instance, watches
// it, restarts it by the restart policy, probes its health, and stops it
// when it is removed, replaced or held by the disconnect policy. One
// goroutine (run) owns everything below the guarded fields, so decisions
// are taken one at a time and statuses leave in order.
type supervisor struct {
	r    *Runner
	name string
	dir  string
	log  *slog.Logger
	wake chan struct{} // cap 1: the guarded fields changed

	// Guarded by r.mu.
	desired  *unit        // the spec to run; nil with removed or when never valid
	invalid  error        // why the only assignment received was refused
	removed  bool         // no longer desired: stop, clean up, finish
	held     bool         // cut off from the cloud longer than stopAfter
	orphanRT spec.Runtime // for an orphan found by label: its runtime
	started  bool         // run was started
	status   Status
	reported bool // status was handed to OnStatus at least once

	// Owned by run.
	inst       instance
	instRT     spec.Runtime
	instCtx    context.Context
	instStop   context.CancelFunc
	instWG     sync.WaitGroup
	probes     chan error // results of the current prober; nil without one
	probeKey   string
	probeStop  context.CancelFunc
	probeWG    sync.WaitGroup
	fails      int // consecutive failed probes
	crashes    int // consecutive restarts without a stable run
	startErrs  int // consecutive failed starts
	restarts   int
	pending    bool // the next start is a restart
	nextStart  time.Time
	final      *final // ended for good, for spec finalHash
	finalHash  string
	grace      time.Duration
	lastLogged string // the last start error logged, to log each once
	finished   bool
}

func (s *supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// want is a snapshot of the guarded desired state.
type want struct {
	u       *unit
	invalid error
	removed bool
	held    bool
}

func (s *supervisor) want() want {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return want{u: s.desired, invalid: s.invalid, removed: s.removed, held: s.held}
}

// run supervises until the workload is removed or ctx is done; then the
// instance keeps running for the next agent to adopt.
func (s *supervisor) run(ctx context.Context) {
	s.update(func(*Status) {}) // the first status, pending
	s.recover(ctx)
	for ctx.Err() == nil && !s.finished {
		s.step(ctx)
	}
	if s.inst != nil {
		s.release()
	}
}

// step takes one decision and waits for the next event.
func (s *supervisor) step(ctx context.Context) {
	w := s.want()
	if w.u != nil {
		s.grace = w.u.spec.StopGracePeriod.Std()
		s.update(func(st *Status) { st.Generation = w.u.gen })
	}
	switch {
	case w.removed:
		s.remove(ctx)
		return
	case w.u == nil:
		if s.inst != nil && !s.stopInstance(ctx, "its assignment was refused") {
			return
		}
		s.update(func(st *Status) {
			st.State, st.Reason = StateFailed, "assignment refused: not run"
			if w.invalid != nil {
				st.LastError = w.invalid.Error()
			}
		})
		s.idle(ctx, time.Time{})
		return
	case w.held && !(s.final != nil && s.finalHash == w.u.hash):
		// (A workload that ended for good has nothing to stop.)
		if s.inst != nil && !s.stopInstance(ctx, reasonDisconnected) {
			return
		}
		s.crashes, s.pending, s.nextStart = 0, false, time.Time{}
		s.update(func(st *Status) { st.State, st.Reason, st.PID = StateStopped, reasonDisconnected, 0 })
		s.idle(ctx, time.Time{})
		return
	case s.inst != nil && s.inst.view().hash != w.u.hash:
		if s.stopInstance(ctx, fmt.Sprintf("replaced by generation %d", w.u.gen)) {
			s.restarts, s.crashes, s.startErrs, s.pending = 0, 0, 0, false
			s.nextStart, s.final = time.Time{}, nil
			s.update(func(st *Status) { st.Restarts = 0 })
		}
		return
	case s.inst == nil:
		if s.final != nil {
			if s.finalHash == w.u.hash {
				s.idle(ctx, time.Time{})
				return
			}
			s.final, s.restarts, s.crashes, s.pending = nil, 0, 0, false
			s.update(func(st *Status) { st.Restarts = 0 })
		}
		if s.r.clock.Now().Before(s.nextStart) {
			s.idle(ctx, s.nextStart)
			return
		}
		s.start(ctx, w.u)
		return
	}
	s.ensureProber(w.u)
	select {
	case <-s.inst.done():
		s.onExit(ctx, w.u, "")
	case err := <-s.probes:
		s.onProbe(ctx, w.u, err)
	case <-s.wake:
	case <-ctx.Done():
	}
}

// idle waits for a change of the desired state, until (when set), or the
// end of ctx.
func (s *supervisor) idle(ctx context.Context, until time.Time) {
	var timer <-chan time.Time
	if !until.IsZero() {
		d := until.Sub(s.r.clock.Now())
		if d <= 0 {
			return
		}
		timer = s.r.clock.After(d)
	}
	select {
	case <-s.wake:
	case <-timer:
	case <-ctx.Done():
	}
}

// recover adopts what an earlier agent left running, or restores how the
// workload ended.
func (s *supervisor) recover(ctx context.Context) {
	rec, err := loadRecord(s.dir)
	if err != nil {
		s.log.Warn("workload state unreadable: not adopting", "error", err)
		s.update(func(st *Status) { st.LastError = err.Error() })
	}
	w := s.want()
	s.r.mu.Lock()
	rt := s.orphanRT
	s.r.mu.Unlock()
	if rec != nil {
		s.restarts, s.crashes, rt = rec.Restarts, rec.Crashes, rec.Runtime
		if rec.Grace > 0 {
			s.grace = rec.Grace.Std()
		}
		s.update(func(st *Status) { st.Restarts = rec.Restarts })
	} else if w.u != nil {
		rt = w.u.spec.Runtime
	}
	if rt == "" {
		return
	}
	u := w.u
	if w.removed || u != nil && u.spec.Runtime != rt {
		u = nil
	}
	drv := s.r.driver(rt)
	inst, err := drv.adopt(ctx, s.name, s.dir, u, rec)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("adopting workload failed", "error", err)
			s.update(func(st *Status) { st.LastError = "adopt: " + err.Error() })
		}
		return
	}
	if inst != nil {
		s.r.count(func(st *Stats) { st.Adoptions++ })
		v := inst.view()
		s.log.Info("workload adopted", "pid", v.pid, "container", shortID(v.containerID), "spec_hash", v.hash)
		if u == nil || u.hash != v.hash {
			u = nil // stale: the loop stops it
		}
		s.attach(ctx, rt, inst, u)
		return
	}
	if rec == nil || u == nil || rec.Hash != u.hash {
		return
	}
	switch {
	case rec.Final != nil:
		s.final, s.finalHash = rec.Final, rec.Hash
		s.update(func(st *Status) {
			st.State, st.ExitCode, st.Reason = rec.Final.State, rec.Final.ExitCode, rec.Final.Reason
		})
	case rec.Process != nil || rec.ContainerID != "":
		// It ran when the agent went away and has ended since.
		s.log.Info("workload ended while the agent was down", "spec_hash", rec.Hash)
		e := exitInfo{detail: "ended while the agent was not running"}
		if !wantsRestart(u.spec.Restart.Policy, false) {
			s.setFinal(u, StateFailed, nil, e.String()+"; restart policy never")
			return
		}
		s.pending = true
	}
}

// start starts an instance of u, or schedules the next attempt.
func (s *supervisor) start(ctx context.Context, u *unit) {
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		s.startFailed(ctx, u, fmt.Errorf("workload directory: %w", err))
		return
	}
	inst, err := s.r.driver(u.spec.Runtime).start(ctx, u, s.dir)
	if err != nil {
		s.startFailed(ctx, u, err)
		return
	}
	s.startErrs, s.lastLogged = 0, ""
	s.r.count(func(st *Stats) { st.Starts++ })
	if s.pending {
		s.restarts++
		s.pending = false
		s.r.count(func(st *Stats) { st.Restarts++ })
	}
	v := inst.view()
	s.log.Info("workload started", "generation", u.gen, "pid", v.pid, "container", shortID(v.containerID), "restarts", s.restarts)
	s.attach(ctx, u.spec.Runtime, inst, u)
}

func (s *supervisor) startFailed(ctx context.Context, u *unit, err error) {
	if ctx.Err() != nil {
		return
	}
	s.startErrs++
	delay := restartDelay(u.spec.Restart, s.startErrs)
	s.nextStart = s.r.clock.Now().Add(delay)
	s.r.count(func(st *Stats) { st.StartFailures++ })
	if msg := err.Error(); msg != s.lastLogged {
		s.lastLogged = msg
		s.log.Warn("workload start failed", "error", err, "retry_in", delay)
	}
	s.update(func(st *Status) {
		st.State, st.PID, st.ContainerID, st.Adopted = StateFailed, 0, "", false
		st.LastError = err.Error()
		st.Reason = fmt.Sprintf("start failed; retrying in %s", delay)
	})
	s.save(u)
}

// attach makes inst the current instance and watches it; u is nil for an
// adopted instance that is not the desired one.
func (s *supervisor) attach(ctx context.Context, rt spec.Runtime, inst instance, u *unit) {
	s.inst, s.instRT, s.fails = inst, rt, 0
	s.instCtx, s.instStop = context.WithCancel(ctx)
	s.instWG.Add(1)
	go func() {
		defer s.instWG.Done()
		inst.watch(s.instCtx)
	}()
	v := inst.view()
	state := StateRunning
	if u != nil {
		s.ensureProber(u)
		if u.spec.Health != nil {
			state = StateStarting
		}
	}
	// Recorded before it is reported: an agent killed in between must
	// find it.
	s.save(u)
	s.update(func(st *Status) {
		st.State, st.Reason = state, v.note
		st.PID, st.ContainerID, st.StartedAt, st.Adopted = v.pid, v.containerID, v.startedAt, v.adopted
		st.Restarts = s.restarts
	})
}

// release stops watching the instance and forgets it; the instance keeps
// running if it still does.
func (s *supervisor) release() {
	s.stopProber()
	s.instStop()
	s.instWG.Wait()
	s.inst.close()
	s.inst = nil
}

// onExit handles the end of the instance: restart after the backoff
// delay, or end for good. cause is set when the runner stopped it for
// failing its health check.
func (s *supervisor) onExit(ctx context.Context, u *unit, cause string) {
	if ctx.Err() != nil {
		return // the watch ended with Run; the instance may run on
	}
	e, _ := s.inst.ended()
	v := s.inst.view()
	s.release()
	now := s.r.clock.Now()
	if now.Sub(v.startedAt) >= s.r.cfg.StableAfter {
		s.crashes = 0
	}
	what := e.String()
	if cause != "" {
		what = cause + ", then " + what
	}
	success := cause == "" && e.Success()
	policy := u.spec.Restart
	if !wantsRestart(policy.Policy, success) {
		state := StateExited
		if !success {
			state = StateFailed
		}
		s.log.Info("workload ended", "exit", what, "restart_policy", policy.Policy)
		s.setFinal(u, state, e.exitCode(), fmt.Sprintf("%s; restart policy %s", what, policy.Policy))
		return
	}
	s.crashes++
	if restartLimitReached(policy, s.crashes) {
		s.log.Warn("workload restart limit reached", "exit", what, "restarts", s.restarts)
		s.setFinal(u, StateFailed, e.exitCode(),
			fmt.Sprintf("%s; gave up after %d restarts in a row (maxRestarts)", what, s.crashes-1))
		return
	}
	delay := restartDelay(policy, s.crashes)
	s.nextStart, s.pending = now.Add(delay), true
	s.log.Info("workload exited", "exit", what, "restart_in", delay)
	s.update(func(st *Status) {
		st.State, st.ExitCode, st.PID = StateExited, e.exitCode(), 0
		st.Reason = fmt.Sprintf("%s; restarting in %s", what, delay)
	})
	s.save(u)
}

// setFinal ends the workload for good until its spec changes.
func (s *supervisor) setFinal(u *unit, state State, code *int, reason string) {
	s.final, s.finalHash = &final{State: state, ExitCode: code, Reason: reason}, u.hash
	s.update(func(st *Status) { st.State, st.ExitCode, st.PID, st.Reason = state, code, 0, reason })
	s.save(u)
}

// halt stops the instance and waits for its end. It returns false when
// the instance could not be stopped, after scheduling another try, or
// when ctx ended.
func (s *supervisor) halt(ctx context.Context) bool {
	err := s.inst.stop(ctx, s.grace)
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		s.log.Warn("stopping workload failed", "error", err, "retry_in", retryStop)
		s.update(func(st *Status) { st.LastError = "stop: " + err.Error() })
		s.idle(ctx, s.r.clock.Now().Add(retryStop))
		return false
	}
	return true
}

// stopInstance stops the instance for reason and reports it stopped.
func (s *supervisor) stopInstance(ctx context.Context, reason string) bool {
	if !s.halt(ctx) {
		return false
	}
	e, _ := s.inst.ended()
	s.release()
	s.log.Info("workload stopped", "reason", reason, "exit", e.String())
	s.update(func(st *Status) {
		st.State, st.ExitCode, st.PID, st.Reason = StateStopped, e.exitCode(), 0, reason
	})
	s.save(nil)
	return true
}

// remove stops a workload no longer desired and deletes its state, logs,
// cgroup and containers.
func (s *supervisor) remove(ctx context.Context) {
	const reason = "removed from the desired set"
	if s.inst != nil && !s.stopInstance(ctx, reason) {
		return
	}
	s.update(func(st *Status) { st.State, st.Reason, st.PID = StateStopped, reason, 0 })
	rt := s.runtime()
	if rt != "" {
		if err := s.r.driver(rt).cleanup(ctx, s.name); err != nil && ctx.Err() == nil {
			s.log.Warn("cleaning up removed workload failed", "error", err)
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.log.Warn("removing workload state failed", "error", err)
	}
	s.finished = s.r.finish(s)
}

// runtime is the runtime of the current instance or of the last spec.
func (s *supervisor) runtime() spec.Runtime {
	if s.inst != nil {
		return s.instRT
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.desired != nil {
		return s.desired.spec.Runtime
	}
	return s.orphanRT
}
