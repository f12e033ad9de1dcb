// Package proc starts, recognises and watches the host processes of exec
// workloads so that they outlive the agent.
//
// A process is started in its own session (setsid), so the agent's death,
// even by SIGKILL, does not signal it, and it leads its own process group,
// which is what Signal addresses. A process is known by its Identity: pid,
// start time in clock ticks since boot (/proc/<pid>/stat field 22) and the
// boot ID. A recorded Identity can be adopted by a later agent only while
// all three still match, so a recycled pid is never mistaken for the
// workload.
//
// Waiting uses a pidfd (Linux 5.3+) through the runtime's poller, so a wait
// can be cancelled and costs no thread; on older kernels it polls /proc.
// Only the parent learns an exit code: an adopted process that is not the
// caller's child exits with an unknown code.
package proc

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
)

// ErrGone is returned by Adopt when the recorded process no longer exists
// or its pid now belongs to another process.
var ErrGone = errors.New("process gone")

// Identity tells one process apart from any later process that reuses its
// pid.
type Identity struct {
	PID int `json:"pid"`
	// StartTicks is the start time in clock ticks since boot.
	StartTicks uint64 `json:"startTicks"`
	BootID     string `json:"bootId"`
}

// String formats the identity for logs.
func (id Identity) String() string {
	return fmt.Sprintf("pid %d (start %d)", id.PID, id.StartTicks)
}

// Exit is how a process ended.
type Exit struct {
	// Known is false when the exit status could not be collected: the
	// process was adopted and is not the caller's child.
	Known bool
	// Code is the exit code; -1 when the process was killed by a signal.
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
}

// Success reports a known exit with code 0.
func (e Exit) Success() bool { return e.Known && e.Signal == 0 && e.Code == 0 }

// String reads like "exit code 3", "killed by signal killed" or "exit
// status unknown".
func (e Exit) String() string {
	switch {
	case !e.Known:
		return "exit status unknown"
	case e.Signal != 0:
		return "killed by signal " + e.Signal.String()
	default:
		return "exit code " + strconv.Itoa(e.Code)
	}
}
