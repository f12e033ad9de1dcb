package runner

import "time"

// State is where a workload is in its life on this node.
type State string

// States.
const (
	// StatePending: accepted, not started yet.
	StatePending State = "pending"
	// StateStarting: started; its health check has not passed yet.
	StateStarting State = "starting"
	// StateRunning: running, and healthy when it has a health check.
	StateRunning State = "running"
	// StateUnhealthy: its health check failed FailureThreshold times in a
	// row; the runner is restarting it.
	StateUnhealthy State = "unhealthy"
	// StateExited: it ended; Reason says whether and when it restarts.
	StateExited State = "exited"
	// StateFailed: it cannot run (bad spec, start error, Docker absent)
	// or gave up (restart limit, non-zero exit with policy never).
	StateFailed State = "failed"
	// StateStopped: the runner stopped it: removed from the desired set,
	// or held while the node is cut off longer than disconnect.stopAfter.
	StateStopped State = "stopped"
)

// Status is what the node reports about one workload.
type Status struct {
	Name       string
	Generation uint64
	State      State
	// Restarts counts the restarts of the current spec (a new spec hash
	// starts again from 0).
	Restarts int
	// ExitCode is the last exit code; nil while it never exited, when it
	// was killed by a signal, or when it was unknown (an adopted process
	// whose parent is no longer the agent).
	ExitCode  *int
	LastError string
	// StartedAt is when the current or last instance started.
	StartedAt time.Time
	// Since is when State last changed.
	Since       time.Time
	PID         int
	ContainerID string
	// Adopted is true when the instance was started by an earlier agent
	// and taken over, not restarted.
	Adopted bool
	// Reason explains the state in words: why it stopped, when it
	// restarts, that limits are not enforced.
	Reason string
}

// Stats are the runner's counters since New.
type Stats struct {
	Starts        uint64 // instances started (first starts and restarts)
	Restarts      uint64 // restarts after an exit or a failed health check
	Adoptions     uint64 // instances of an earlier agent taken over
	StartFailures uint64 // starts that failed (bad command, Docker absent)
	Rejected      uint64 // assignments refused as invalid or duplicate
}
