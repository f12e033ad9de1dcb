package runner

import (
	"context"
	"time"

	"github.com/skyedge/skyedge/agent/internal/runner/proc"
)

// driver runs the instances of one runtime.
type driver interface {
	// start starts a new instance of u, its state and logs in dir.
	start(ctx context.Context, u *unit, dir string) (instance, error)
	// adopt takes over what an earlier agent left running for workload
	// name (state in dir): the instance running u's spec hash, or, when u
	// is nil (the workload was removed) or nothing runs it, the one
	// recorded in rec, which the caller then stops. It returns nil when
	// nothing is left.
	adopt(ctx context.Context, name, dir string, u *unit, rec *record) (instance, error)
	// cleanup removes what is left of a removed workload (cgroup,
	// containers).
	cleanup(ctx context.Context, name string) error
	// logs returns the last tail lines of the workload's output.
	logs(ctx context.Context, name, dir string, tail int) ([]string, error)
}

// instance is one run of a workload: a process group or a container.
type instance interface {
	// watch blocks until the instance ends or ctx is done, then closes
	// done. The instance keeps running when ctx ends first.
	watch(ctx context.Context)
	done() <-chan struct{}
	// ended returns how the instance ended, once done is closed; false
	// when the watch ended with its context instead.
	ended() (exitInfo, bool)
	// stop asks the instance to stop (SIGTERM, docker stop), kills it
	// after grace and returns once it ended or ctx is done. It needs a
	// running watch.
	stop(ctx context.Context, grace time.Duration) error
	// exec runs cmd where the instance runs (the host, or inside the
	// container) and fails unless it exits 0: the exec health probe.
	exec(ctx context.Context, cmd []string) error
	view() instanceView
	// close releases what the instance holds (a pidfd, a connection).
	close()
}

// instanceView is what the status and the record say of an instance.
type instanceView struct {
	hash        string
	pid         int
	process     *proc.Identity
	containerID string
	startedAt   time.Time
	adopted     bool
	// note is a standing remark for the status, such as limits that are
	// not enforced.
	note string
}

// exitInfo is how an instance ended.
type exitInfo struct {
	proc.Exit
	oom    bool
	detail string // e.g. "container removed outside the agent"
}

// String reads like "exit code 3 (out of memory)".
func (e exitInfo) String() string {
	s := e.Exit.String()
	if e.oom {
		s += " (out of memory)"
	}
	if e.detail != "" {
		s += " (" + e.detail + ")"
	}
	return s
}

// exitCode returns the code for the status: nil when unknown or killed by
// a signal.
func (e exitInfo) exitCode() *int {
	if !e.Known || e.Signal != 0 {
		return nil
	}
	c := e.Code
	return &c
}
