package workloads

import (
	"cmp"
	"math"
	"slices"
	"time"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// StatusOutcome is what applying a status did.
type StatusOutcome struct {
	// Stale: the store holds a newer status of the same outbox; nothing
	// changed.
	Stale bool
	// Orphan: the node reports a workload the bridge does not assign it,
	// in a state where it may run. Its desired set must reach it again.
	Orphan bool
	// Copy is the ID of the copy the status is about, "" when none.
	Copy string
	// Changed: the copy's state changed, or the copy is stopping and the
	// status says nothing runs any more; placement may have to react.
	Changed bool
	// CapacityError: the copy runs in a cloud region (Site) and the node
	// says the region lacked capacity to start it.
	CapacityError bool
	Site          string
}

// StateName is the API name of a status state.
func StateName(s pb.WorkloadStatus_State) string {
	switch s {
	case pb.WorkloadStatus_STATE_PENDING:
		return StatePending
	case pb.WorkloadStatus_STATE_STARTING:
		return StateStarting
	case pb.WorkloadStatus_STATE_RUNNING:
		return StateRunning
	case pb.WorkloadStatus_STATE_UNHEALTHY:
		return StateUnhealthy
	case pb.WorkloadStatus_STATE_EXITED:
		return StateExited
	case pb.WorkloadStatus_STATE_FAILED:
		return StateFailed
	case pb.WorkloadStatus_STATE_STOPPED:
		return StateStopped
	case pb.WorkloadStatus_STATE_REMOVED:
		return StateRemoved
	}
	return StatePending
}

// newStatus converts a status from node.
func newStatus(node, outbox string, seq uint64, ps *pb.WorkloadStatus, at, now time.Time) Status {
	st := Status{
		Workload: ps.GetName(), Node: node, Outbox: outbox, Seq: seq, Generation: ps.GetGeneration(),
		State: StateName(ps.GetState()), Restarts: int(ps.GetRestarts()), LastError: ps.GetLastError(),
		Reason: ps.GetReason(), At: at, ReceivedAt: now, PID: int(ps.GetPid()),
		ContainerID: ps.GetContainerId(), Adopted: ps.GetAdopted(),
	}
	if ps.ExitCode != nil {
		c := int(ps.GetExitCode())
		st.ExitCode = &c
	}
	if ms := ps.GetStartedAtMs(); ms > 0 {
		st.StartedAt = time.UnixMilli(ms).UTC()
	}
	if ms := ps.GetSinceMs(); ms > 0 {
		st.Since = time.UnixMilli(ms).UTC()
	}
	return st
}

// ApplyStatus records a status node produced with sequence number seq of
// its outbox outbox, at its time at, and updates the copy it is about: the
// node's copy of the workload with the newest assignment at or before the
// status's generation. Statuses apply in sequence order: one older than
// the status held for the same outbox changes nothing, so applying a
// status twice is harmless. A status of a workload the node is not
// assigned is an orphan when it says the workload may run, unless the
// node has yet to acknowledge the removal of that workload; one that says
// nothing runs just clears what was held.
func (s *Store) ApplyStatus(node, outbox string, seq uint64, ps *pb.WorkloadStatus, at time.Time) (StatusOutcome, error) {
	var out StatusOutcome
	_, err := s.Update(func(tx *Tx) error {
		out = StatusOutcome{}
		st := newStatus(node, outbox, seq, ps, at, s.clk.Now())
		if old, ok := tx.Status(st.Workload, node); ok && seq > 0 && old.Outbox == outbox && seq <= old.Seq {
			out.Stale = true
			return nil
		}
		var mine []Copy
		for _, c := range tx.Copies(st.Workload) {
			if c.Node == node {
				mine = append(mine, c)
			}
		}
		if len(mine) == 0 {
			if Inactive(st.State) || removalPending(tx, node, st.Workload) {
				// Nothing runs, or the node has yet to acknowledge the
				// removal it is being sent.
				tx.DeleteStatus(st.Workload, node)
				return nil
			}
			st.Orphan, out.Orphan = true, true
			tx.PutStatus(st)
			return nil
		}
		tx.PutStatus(st)
		c, ok := statusCopy(mine, st.Generation)
		if !ok {
			return nil // about an assignment older than every copy here
		}
		out.Copy = c.ID
		w, _ := tx.Workload(c.Workload)
		state, started := copyState(&st, &w.Spec.Spec)
		if c.Stopping && Inactive(st.State) {
			out.Changed = true
		}
		if state != c.State || !started.Equal(c.Started) {
			c.State, c.Started = state, started
			tx.PutCopy(c)
			out.Changed = true
		}
		if st.State == StateFailed && c.Kind == KindCloud && !c.Stopping && IsCapacityError(st.Reason, st.LastError) {
			out.CapacityError, out.Site, out.Changed = true, c.Site, true
		}
		return nil
	})
	return out, err
}

// removalPending reports whether the difference node is owed (from the
// generation it acknowledged) removes name: the node runs it only because
// it has not caught up yet.
func removalPending(tx *Tx, node, name string) bool {
	n := tx.current(node)
	if n == nil || n.Acked >= n.Set.Generation {
		return false
	}
	if _, _, live := n.Set.Get(name); live {
		return false
	}
	for _, m := range n.Set.Diff(n.Acked, math.MaxInt) {
		if m.GetFull() || slices.Contains(m.GetRemoved(), name) {
			return true
		}
	}
	return false
}

// statusCopy picks the copy a status of generation gen is about: the one
// assigned last at or before gen (the newest one when gen is 0).
func statusCopy(mine []Copy, gen uint64) (Copy, bool) {
	slices.SortFunc(mine, func(a, b Copy) int {
		return cmp.Or(cmp.Compare(b.AssignedGeneration, a.AssignedGeneration), cmp.Compare(a.ID, b.ID))
	})
	for _, c := range mine {
		if gen == 0 || c.AssignedGeneration <= gen {
			return c, true
		}
	}
	return Copy{}, false
}

// copyState is the copy state a status means under the workload's spec
// (nil-safe: a deleted workload's spec is empty).
func copyState(st *Status, ws *spec.WorkloadSpec) (string, time.Time) {
	switch st.State {
	case StateRunning:
		started := st.StartedAt
		if started.IsZero() {
			started = st.Since
		}
		return CopyRunning, started
	case StateFailed:
		return CopyFailed, time.Time{}
	case StateExited:
		if endedForGood(ws, st.ExitCode) {
			return CopyFailed, time.Time{}
		}
	}
	return CopyPending, time.Time{}
}

// endedForGood reports whether an exit is final under the restart policy.
func endedForGood(ws *spec.WorkloadSpec, code *int) bool {
	switch ws.Restart.Policy {
	case spec.RestartNever:
		return true
	case spec.RestartOnFailure:
		return code != nil && *code == 0
	}
	return false
}
