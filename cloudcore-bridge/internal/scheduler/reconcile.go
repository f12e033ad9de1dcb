package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// ActionKind is what an Action asks for.
type ActionKind uint8

// Action kinds.
const (
	// ActionPlace starts a new copy of Workload's replica slot on Site.
	ActionPlace ActionKind = iota + 1
	// ActionStop stops the copy Placement on Site.
	ActionStop
	// ActionUnschedulable reports a replica slot that needs a copy and has
	// no site; the Explanation says why. Nothing is to be done but wait.
	ActionUnschedulable
)

// String implements fmt.Stringer.
func (k ActionKind) String() string {
	switch k {
	case ActionPlace:
		return "place"
	case ActionStop:
		return "stop"
	case ActionUnschedulable:
		return "unschedulable"
	}
	return fmt.Sprintf("action(%d)", uint8(k))
}

// Cause says why an action is needed. Callers may branch on it.
type Cause string

// Causes.
const (
	CausePending        Cause = "pending"           // a slot without a copy: new, scaled up, or waiting for capacity
	CauseDisconnected   Cause = "node-disconnected" // replacement while the node is disconnected (disconnect.replace)
	CauseNodeLost       Cause = "node-lost"         // the node is lost: past lostAfter, given up, or removed
	CauseCapacityError  Cause = "capacity-error"    // a cloud region could not start a pending copy
	CauseReconcile      Cause = "reconcile"         // a node returned; the reconcile policy keeps another copy
	CauseSpecChanged    Cause = "spec-changed"      // the copy runs an older revision
	CausePolicyViolated Cause = "policy-violated"   // the copy's site no longer satisfies a standing filter
	CauseScaleDown      Cause = "scale-down"        // the slot is beyond placement.replicas
	CauseDeleted        Cause = "workload-deleted"  // the workload no longer exists
	CausePreempted      Cause = "preempted"         // evicted for a higher-priority workload
)

// Action is one step that converges the fleet on the workloads.
type Action struct {
	Kind     ActionKind
	Cause    Cause
	Workload string
	// Replica is the slot the action concerns.
	Replica int
	// Site is where the new copy goes (place) or where the copy runs
	// (stop).
	Site string
	// Placement is the ID of the copy to stop.
	Placement string
	// Replaces is, for a place, the copy the new one takes over from; the
	// caller records it in the new copy's Placement.Replaces so that the
	// reconcile policy can choose between them if both end up running.
	Replaces string
	// Detail explains the action in a sentence.
	Detail string
	// Assignment describes a place: score, cost, residency.
	Assignment *Assignment
	// Explanation covers every site for a place or unschedulable action.
	Explanation *Explanation
}

// String implements fmt.Stringer.
func (a Action) String() string {
	switch a.Kind {
	case ActionPlace:
		return fmt.Sprintf("place %s[%d] on %s (%s): %s", a.Workload, a.Replica, a.Site, a.Cause, a.Detail)
	case ActionStop:
		return fmt.Sprintf("stop %s (%s[%d] on %s, %s): %s", a.Placement, a.Workload, a.Replica, a.Site, a.Cause, a.Detail)
	}
	return fmt.Sprintf("%s %s[%d] (%s): %s", a.Kind, a.Workload, a.Replica, a.Cause, a.Detail)
}

// Reconcile returns the actions that bring current (every copy that
// exists, in place of snap's placements) in line with workloads (every
// workload that exists), with DefaultProfile. See Profile.Reconcile.
func Reconcile(snap *Snapshot, workloads []Request, current []Placement) ([]Action, error) {
	return defaultProfile.Reconcile(snap, workloads, current)
}

// Reconcile returns the actions that bring current in line with
// workloads. It is pure and idempotent over its inputs: until the caller
// applies the actions and passes the new copies, it returns the same
// ones. Workloads go in priority order (then by name), and every action
// counts against the capacity the earlier ones took or freed.
//
// For each replica slot of each workload:
//   - a copy on a node that is disconnected for less than the workload's
//     lostAfter is unknown, and nothing moves, unless disconnect.replace
//     asks for a replacement now (the original is kept);
//   - a copy on a lost node (past lostAfter, given up by the registry, or
//     gone from the snapshot) is stopped and replaced;
//   - a pending copy in a cloud region that reported a capacity error is
//     stopped and fails over to the next best site, the region staying
//     out until its CapacityErrorUntil;
//   - when a returning node leaves two running copies in a slot, the
//     workload's reconcile policy (keep-original, keep-replacement,
//     best-score, longest-running) chooses the one that stays;
//   - a copy of an older revision, or whose site no longer satisfies a
//     Standing filter, is replaced (the new copy placed before the old
//     stops; if no site is found the old one keeps running);
//   - an empty slot is placed, so pending work starts once capacity
//     frees up;
//   - copies beyond the replica count, or of deleted workloads, stop.
//
// It fails only on malformed input: placements without an ID or listed
// twice, or a workload listed twice.
func (p *Profile) Reconcile(snap *Snapshot, workloads []Request, current []Placement) ([]Action, error) {
	ws, err := snap.withPlacements(current)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	reqs := slices.Clone(workloads)
	slices.SortStableFunc(reqs, func(a, b Request) int {
		return cmp.Or(cmp.Compare(b.Placement.Priority, a.Placement.Priority), cmp.Compare(a.Workload, b.Workload))
	})
	known := make(map[string]bool, len(reqs))
	var errs []error
	for _, r := range reqs {
		if known[r.Workload] {
			errs = append(errs, fmt.Errorf("workload %q listed twice", r.Workload))
		}
		known[r.Workload] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	r := &reconciler{p: p, snap: ws, st: newState(ws)}
	for i := range ws.placements {
		if pl := &ws.placements[i]; !known[pl.Workload] {
			r.stop(int32(i), CauseDeleted, "workload "+pl.Workload+" no longer exists")
		}
	}
	for k := range reqs {
		r.workload(&reqs[k])
	}
	return r.actions, nil
}

type reconciler struct {
	p       *Profile
	snap    *Snapshot
	st      *state
	actions []Action
}

// copyHealth is a copy's condition under its workload's disconnect policy.
type copyHealth uint8

const (
	healthOK      copyHealth = iota
	healthUnknown            // node disconnected for less than lostAfter
	healthLost               // node lost, or removed
	healthFailed             // pending in a region with a capacity error
)

func (r *reconciler) health(req *Request, pi int32) (copyHealth, string) {
	pl := &r.snap.placements[pi]
	si := r.snap.idx.placeSite[pi]
	if si < 0 {
		return healthLost, "site " + pl.Site + " no longer exists"
	}
	site := &r.snap.sites[si]
	if site.Kind == KindEdge {
		switch site.Link {
		case LinkLost:
			return healthLost, "node " + site.ID + " is lost"
		case LinkDisconnected:
			gone := r.snap.now.Sub(site.DisconnectedSince)
			if gone >= req.lostAfter() {
				return healthLost, fmt.Sprintf("node %s disconnected for %s, past lostAfter %s", site.ID, gone, req.lostAfter())
			}
			return healthUnknown, fmt.Sprintf("node %s disconnected for %s, lost after %s", site.ID, gone, req.lostAfter())
		}
	}
	if pl.State == StatePending && r.snap.idx.cooling[si] {
		return healthFailed, "region " + site.ID + " reported a capacity error; retried after " +
			site.CapacityErrorUntil.UTC().Format(time.RFC3339)
	}
	return healthOK, ""
}

func (r *reconciler) workload(req *Request) {
	x := &r.snap.idx
	replicas := max(req.Placement.Replicas, 0)
	slots := make([][]int32, replicas)
	for _, pi := range x.byWorkload[req.Workload] {
		if r.st.isGone(pi) {
			continue
		}
		slot := r.snap.placements[pi].Replica
		if slot < 0 || slot >= replicas {
			r.stop(pi, CauseScaleDown, fmt.Sprintf("slot %d is beyond %d replicas", slot, replicas))
			continue
		}
		slots[slot] = append(slots[slot], pi)
	}
	for slot, copies := range slots {
		r.slot(req, slot, copies)
	}
}

func (r *reconciler) slot(req *Request, slot int, copies []int32) {
	var ok, unknown []int32
	cause, replaces, why := CausePending, "", "replica has no copy"
	for _, pi := range copies {
		h, detail := r.health(req, pi)
		switch h {
		case healthLost:
			r.stop(pi, CauseNodeLost, detail)
			cause, replaces, why = CauseNodeLost, r.snap.placements[pi].ID, detail
		case healthFailed:
			r.stop(pi, CauseCapacityError, detail)
			cause, replaces, why = CauseCapacityError, r.snap.placements[pi].ID, detail
		case healthUnknown:
			unknown = append(unknown, pi)
			why = detail
		default:
			ok = append(ok, pi)
		}
	}
	if len(ok) > 1 {
		keep := r.choose(req, ok)
		kept := &r.snap.placements[keep]
		for _, pi := range ok {
			if pi != keep {
				r.stop(pi, CauseReconcile, fmt.Sprintf("both copies run; reconcile %s keeps %s on %s",
					req.Disconnect.Reconcile, kept.ID, kept.Site))
			}
		}
		ok = []int32{keep}
	}
	if len(ok) == 1 {
		pi := ok[0]
		if rev := r.snap.placements[pi].Revision; rev != req.Revision {
			r.replace(req, slot, pi, CauseSpecChanged, fmt.Sprintf("copy runs revision %s, workload is at %s", rev, req.Revision))
		} else if why, bad := r.violates(req, pi); bad {
			r.replace(req, slot, pi, CausePolicyViolated, why)
		}
		return
	}
	if len(unknown) > 0 {
		if !req.Disconnect.Replace {
			return // wait for the node, or for lostAfter
		}
		orig := &r.snap.placements[unknown[0]]
		r.place(req, slot, CauseDisconnected, orig.ID, why+"; replacement placed, original kept as unknown")
		return
	}
	r.place(req, slot, cause, replaces, why)
}

// choose applies the reconcile policy to the running copies of one slot.
func (r *reconciler) choose(req *Request, ok []int32) int32 {
	pls := r.snap.placements
	// originalFirst orders originals (replacing nothing) before
	// replacements, then by ID: the tie-breaker of every policy.
	originalFirst := func(a, b int32) int {
		ra, rb := pls[a].Replaces != "", pls[b].Replaces != ""
		if ra != rb {
			if ra {
				return 1
			}
			return -1
		}
		return cmp.Compare(pls[a].ID, pls[b].ID)
	}
	cands := slices.Clone(ok)
	switch req.Disconnect.Reconcile {
	case spec.ReconcileKeepReplacement:
		slices.SortFunc(cands, func(a, b int32) int {
			ra, rb := pls[a].Replaces != "", pls[b].Replaces != ""
			if ra != rb {
				if ra {
					return -1
				}
				return 1
			}
			return cmp.Compare(pls[a].ID, pls[b].ID)
		})
	case spec.ReconcileLongestRunning:
		slices.SortFunc(cands, func(a, b int32) int {
			za, zb := pls[a].Started.IsZero(), pls[b].Started.IsZero()
			if za != zb {
				if za {
					return 1
				}
				return -1
			}
			return cmp.Or(pls[a].Started.Compare(pls[b].Started), originalFirst(a, b))
		})
	case spec.ReconcileKeepOriginal:
		slices.SortFunc(cands, originalFirst)
	default: // best-score, the default
		scores := r.copyScores(req, cands)
		slices.SortFunc(cands, func(a, b int32) int {
			return cmp.Or(cmp.Compare(scores[b], scores[a]), originalFirst(a, b))
		})
	}
	return cands[0]
}

// copyScores scores each copy's site for req as if the copy were placed
// anew: all of the copies' resources are handed back while scoring.
func (r *reconciler) copyScores(req *Request, copies []int32) map[int32]float64 {
	var sites []int32
	for _, pi := range copies {
		r.st.remove(pi)
		sites = append(sites, r.snap.idx.placeSite[pi])
	}
	slices.Sort(sites)
	sites = slices.Compact(sites)
	c := &Cycle{snap: r.snap, st: r.st, req: req, dry: true}
	ex := r.p.newExplanation(r.snap, req, nil)
	r.p.score(c, ex, sites)
	bySite := make(map[int32]float64, len(sites))
	for j, si := range sites {
		bySite[si] = float64(ex.totals[j])
	}
	out := make(map[int32]float64, len(copies))
	for _, pi := range copies {
		r.st.restore(pi)
		out[pi] = bySite[r.snap.idx.placeSite[pi]]
	}
	return out
}

// violates reports whether a running copy's site fails a Standing filter.
func (r *reconciler) violates(req *Request, pi int32) (string, bool) {
	si := r.snap.idx.placeSite[pi]
	c := &Cycle{snap: r.snap, st: r.st, req: req, dry: true}
	for k, f := range r.p.Filters {
		if s, ok := f.(Standing); !ok || !s.Standing() {
			continue
		}
		c.filter = k
		if len(f.Filter(c, []int32{si})) == 0 {
			return f.Name() + ": " + f.Reason(req, &r.snap.sites[si], c.last), true
		}
	}
	return "", false
}

// replace places a new copy for slot and stops copy pi, whose resources
// the new copy may reuse; if no site is found pi keeps running.
func (r *reconciler) replace(req *Request, slot int, pi int32, cause Cause, why string) {
	r.st.remove(pi)
	if !r.place(req, slot, cause, r.snap.placements[pi].ID, why) {
		r.st.restore(pi)
		return
	}
	r.stop(pi, cause, why)
}

// place places one copy for slot and records the actions; it reports
// whether a site was found.
func (r *reconciler) place(req *Request, slot int, cause Cause, replaces, why string) bool {
	one := *req
	one.Placement.Replicas = 1
	d := r.p.place(r.st, &one)
	if !d.Complete() {
		r.actions = append(r.actions, Action{
			Kind: ActionUnschedulable, Cause: cause, Workload: req.Workload, Replica: slot, Replaces: replaces,
			Detail: why + "; no site: " + d.Explanation.Summary(), Explanation: d.Explanation,
		})
		return false
	}
	a := d.Assignments[0]
	for _, v := range d.Victims {
		pi, _ := slices.BinarySearchFunc(r.snap.placements, v.Placement, func(p Placement, id string) int { return cmp.Compare(p.ID, id) })
		r.record(int32(pi), CausePreempted, "evicted for "+req.Workload+" at priority "+fmt.Sprint(req.Placement.Priority))
	}
	r.actions = append(r.actions, Action{
		Kind: ActionPlace, Cause: cause, Workload: req.Workload, Replica: slot, Site: a.Site, Replaces: replaces,
		Detail: why, Assignment: &a, Explanation: d.Explanation,
	})
	return true
}

// stop removes copy pi and records the stop.
func (r *reconciler) stop(pi int32, cause Cause, why string) {
	r.st.remove(pi)
	r.record(pi, cause, why)
}

func (r *reconciler) record(pi int32, cause Cause, why string) {
	pl := &r.snap.placements[pi]
	r.actions = append(r.actions, Action{
		Kind: ActionStop, Cause: cause, Workload: pl.Workload, Replica: pl.Replica, Site: pl.Site,
		Placement: pl.ID, Detail: why,
	})
}
