package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/skyedge/skyedge/agent/internal/runner"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox"
)

// maxStatusText bounds the free-text fields of a status (last error,
// reason) so a status stays small in the outbox's control quota.
const maxStatusText = 1024

// statusQueue carries workload statuses from the runner's goroutines to
// the outbox without blocking them. It holds at most one status per
// workload: when the outbox falls behind, a newer status replaces the
// one waiting (the latest wins, and the latest is never dropped), so the
// queue is bounded by the number of workloads.
type statusQueue struct {
	desired func(name string) bool // whether name is in the desired set
	wake    chan struct{}

	mu      sync.Mutex // guards the fields below
	pending map[string]*pb.WorkloadStatus
	order   []string // names with a pending status, oldest first

	queued, refused, failed, coalesced atomic.Uint64
}

func newStatusQueue(desired func(string) bool) *statusQueue {
	return &statusQueue{desired: desired, wake: make(chan struct{}, 1), pending: map[string]*pb.WorkloadStatus{}}
}

// put is the runner's OnStatus: it converts s and queues it. A workload
// stopped while not in the desired set is being removed from the node,
// and is reported as removed: the cloud forgets it.
func (q *statusQueue) put(s runner.Status) {
	ps := statusProto(s)
	if s.State == runner.StateStopped && !q.desired(s.Name) {
		ps.State = pb.WorkloadStatus_STATE_REMOVED
	}
	q.mu.Lock()
	if _, waiting := q.pending[s.Name]; waiting {
		q.coalesced.Add(1)
	} else {
		q.order = append(q.order, s.Name)
	}
	q.pending[s.Name] = ps
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes and returns the oldest pending status.
func (q *statusQueue) take() (*pb.WorkloadStatus, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return nil, false
	}
	name := q.order[0]
	q.order = q.order[1:]
	ps := q.pending[name]
	delete(q.pending, name)
	return ps, true
}

// len is the number of statuses waiting.
func (q *statusQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// statusLoop appends queued statuses to the outbox until ctx is done.
// Statuses are durable (control class): they reach the cloud after any
// outage, in order per workload.
func (w *workloads) statusLoop(ctx context.Context) {
	q := w.statuses
	var failing bool
	for {
		ps, ok := q.take()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		env := w.stamper.Stamp(&pb.Envelope{Body: &pb.Envelope_Status{Status: ps}})
		seq, err := w.publish(ctx, env)
		switch {
		case seq != 0:
			q.queued.Add(1)
		case errors.Is(err, outbox.ErrFull):
			// Counted by the outbox too, and reported to the cloud in a
			// gap marker.
			q.refused.Add(1)
		case errors.Is(err, ErrNotRunning) || ctx.Err() != nil:
			return
		default:
			q.failed.Add(1)
		}
		switch {
		case err != nil && !failing:
			w.log.Warn("workload status not queued", "workload", ps.GetName(), "state", ps.GetState().String(), "error", err)
		case err == nil && failing:
			w.log.Info("workload statuses queued again")
		}
		failing = err != nil
	}
}

// statusProto converts a runner status into its protocol message.
func statusProto(s runner.Status) *pb.WorkloadStatus {
	ps := &pb.WorkloadStatus{
		Name:        s.Name,
		Generation:  s.Generation,
		State:       stateProto(s.State),
		Restarts:    uint32(max(s.Restarts, 0)),
		LastError:   clip(s.LastError),
		StartedAtMs: unixMs(s.StartedAt),
		SinceMs:     unixMs(s.Since),
		Pid:         uint32(max(s.PID, 0)),
		ContainerId: clip(s.ContainerID),
		Adopted:     s.Adopted,
		Reason:      clip(s.Reason),
	}
	if s.ExitCode != nil {
		c := int32(*s.ExitCode)
		ps.ExitCode = &c
	}
	return ps
}

func stateProto(s runner.State) pb.WorkloadStatus_State {
	switch s {
	case runner.StatePending:
		return pb.WorkloadStatus_STATE_PENDING
	case runner.StateStarting:
		return pb.WorkloadStatus_STATE_STARTING
	case runner.StateRunning:
		return pb.WorkloadStatus_STATE_RUNNING
	case runner.StateUnhealthy:
		return pb.WorkloadStatus_STATE_UNHEALTHY
	case runner.StateExited:
		return pb.WorkloadStatus_STATE_EXITED
	case runner.StateFailed:
		return pb.WorkloadStatus_STATE_FAILED
	case runner.StateStopped:
		return pb.WorkloadStatus_STATE_STOPPED
	}
	return pb.WorkloadStatus_STATE_UNSPECIFIED
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// clip makes s valid UTF-8 (protobuf strings must be) of at most
// maxStatusText bytes.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxStatusText {
		return s
	}
	s = s[:maxStatusText-3]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1] // cut inside a multi-byte rune
	}
	return s + "..."
}
