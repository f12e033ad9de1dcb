package runner

import (
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// The decisions of the supervisor, as pure functions of their inputs.

// restartDelay is the wait before the n-th consecutive restart (n >= 1):
// InitialDelay doubling up to MaxDelay.
func restartDelay(r spec.Restart, n int) time.Duration {
	d, maxd := r.InitialDelay.Std(), r.MaxDelay.Std()
	if d <= 0 {
		d = spec.DefaultRestartInitialDelay
	}
	if maxd < d {
		maxd = d
	}
	for i := 1; i < n && d < maxd; i++ {
		d *= 2
	}
	return min(d, maxd)
}

// wantsRestart says whether policy restarts an instance that ended,
// successfully (exit code 0) or not. An unknown exit status (an adopted
// process) and a failed health check count as failures: restarting a
// service that may have failed is the safe side.
func wantsRestart(policy spec.RestartPolicyName, success bool) bool {
	switch policy {
	case spec.RestartNever:
		return false
	case spec.RestartOnFailure:
		return !success
	default:
		return true
	}
}

// restartLimitReached says whether the n-th consecutive restart exceeds
// MaxRestarts (0: no cap). The count is of restarts since the instance
// last ran stably, so a service that fails once a month is not given up
// on after MaxRestarts months.
func restartLimitReached(r spec.Restart, n int) bool {
	return r.MaxRestarts > 0 && n > r.MaxRestarts
}

// heldByDisconnect says whether a workload must be kept stopped at now
// because the node has been without the cloud longer than stopAfter.
// lastContact is when the agent last heard from the cloud; when it never
// has since it started, silence is counted from since (the runner's
// start).
func heldByDisconnect(now, lastContact, since time.Time, stopAfter time.Duration) bool {
	if stopAfter <= 0 {
		return false
	}
	if lastContact.IsZero() {
		lastContact = since
	}
	return now.Sub(lastContact) > stopAfter
}
