package controller

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/api"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/planner"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/protocol/spec"
)

// MaxPinnedSnapshots bounds the fleet snapshots kept alive by the
// explanations of the latest decisions (a few MB each for 10,000 sites).
// Beyond it, the oldest decisions are kept rendered without the verdict of
// every site.
const MaxPinnedSnapshots = 8

// decision is a workload's latest placement decision: the place and
// unschedulable actions of the pass that took it, on that pass's
// snapshot, or once released, its rendering without candidates.
type decision struct {
	req     scheduler.Request
	actions []scheduler.Action
	snap    *scheduler.Snapshot
	at      time.Time
	plan    *apiv1.Plan
}

var _ api.Planner = (*Controller)(nil)

// record keeps what a successful pass decided for the API.
func (c *Controller) record(p *pass) {
	byWorkload := map[string][]scheduler.Action{}
	for _, a := range p.actions {
		if a.Kind == scheduler.ActionPlace || a.Kind == scheduler.ActionUnschedulable {
			byWorkload[a.Workload] = append(byWorkload[a.Workload], a)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, acts := range byWorkload {
		if req := p.reqs[name]; req != nil && !p.skipped[name] {
			c.decisions[name] = &decision{req: *req, actions: acts, snap: p.f.snap, at: p.f.now}
		}
	}
	for name := range c.decisions {
		if p.reqs[name] == nil {
			delete(c.decisions, name)
		}
	}
	for name := range c.unsched {
		if !p.skipped[name] {
			delete(c.unsched, name)
		}
	}
	for name, reasons := range p.unsched {
		if p.reqs[name] != nil {
			c.unsched[name] = unschedulable(reasons)
		}
	}
	c.releaseLocked()
}

// releaseLocked renders the oldest decisions until at most
// MaxPinnedSnapshots snapshots are kept alive. Call it with mu held.
func (c *Controller) releaseLocked() {
	pinned := map[*scheduler.Snapshot]time.Time{}
	for _, d := range c.decisions {
		if d.snap != nil && d.at.After(pinned[d.snap]) {
			pinned[d.snap] = d.at
		}
	}
	if len(pinned) <= MaxPinnedSnapshots {
		return
	}
	snaps := make([]*scheduler.Snapshot, 0, len(pinned))
	for s := range pinned {
		snaps = append(snaps, s)
	}
	slices.SortFunc(snaps, func(a, b *scheduler.Snapshot) int { return pinned[a].Compare(pinned[b]) })
	release := map[*scheduler.Snapshot]bool{}
	for _, s := range snaps[:len(snaps)-MaxPinnedSnapshots] {
		release[s] = true
	}
	for _, d := range c.decisions {
		if release[d.snap] {
			plan := planner.ExplainView(&d.req, d.actions, d.snap, d.at)
			plan.Candidates = []apiv1.Candidate{}
			d.plan, d.snap, d.actions = &plan, nil, nil
		}
	}
}

// Plan places w on the fleet as it is now without applying anything. The
// workload's own copies, if it exists, are left out of the fleet, so the
// plan shows where the document would go on its own.
func (c *Controller) Plan(w *spec.Workload) (apiv1.Plan, error) {
	req, err := scheduler.NewRequest(w)
	if err != nil {
		return apiv1.Plan{}, err
	}
	var copies []workloads.Copy
	for _, cp := range c.cfg.Store.Copies("") {
		if cp.Workload != req.Workload {
			copies = append(copies, cp)
		}
	}
	f, err := c.snapshot(copies)
	if err != nil {
		return apiv1.Plan{}, fmt.Errorf("plan %s: %w", req.Workload, err)
	}
	return planner.PlanView(req.Workload, c.profile.Place(f.snap, req), f.snap, f.now), nil
}

// Explain returns the latest placement decision about a workload: the
// sites chosen in the last pass that placed one of its replicas or found
// no site for one, with the verdict of every site. For a workload with no
// decision since the bridge started, it lists the copies in place.
func (c *Controller) Explain(name string) (apiv1.Plan, error) {
	w, ok := c.cfg.Store.Workload(name)
	if !ok {
		return apiv1.Plan{}, fmt.Errorf("workload %q: %w", name, api.ErrNotFound)
	}
	c.mu.Lock()
	d := c.decisions[name]
	var plan *apiv1.Plan
	if d != nil {
		plan = d.plan
	}
	c.mu.Unlock()
	switch {
	case plan != nil:
		return *plan, nil
	case d != nil:
		return planner.ExplainView(&d.req, d.actions, d.snap, d.at), nil
	}
	return c.placedView(&w), nil
}

// placedView describes the active copies of w as a plan.
func (c *Controller) placedView(w *workloads.Workload) apiv1.Plan {
	p := apiv1.Plan{
		Workload: w.Name(), DecidedAt: w.UpdatedAt, Wanted: w.Spec.Spec.Placement.Replicas,
		Chosen: []apiv1.PlannedReplica{}, Candidates: []apiv1.Candidate{},
		Summary: "no placement decision since the bridge started; the copies in place are listed",
	}
	for _, cp := range c.cfg.Store.Copies(w.Name()) {
		if cp.Stopping {
			continue
		}
		if cp.PlacedAt.After(p.DecidedAt) || p.DecidedAt.IsZero() {
			p.DecidedAt = cp.PlacedAt
		}
		p.Chosen = append(p.Chosen, apiv1.PlannedReplica{
			Slot: cp.Slot, Site: cp.Site, Kind: cp.Kind, Score: cp.Score, CostPerHour: cp.CostPerHour,
			Jurisdiction: cp.Jurisdiction, Residency: cp.Residency,
		})
		p.CostPerHour += cp.CostPerHour
	}
	slices.SortFunc(p.Chosen, func(a, b apiv1.PlannedReplica) int { return cmp.Compare(a.Slot, b.Slot) })
	c.mu.Lock()
	p.Error = c.unsched[w.Name()]
	c.mu.Unlock()
	return p
}

// Sites lists the edge nodes and cloud regions with the copies on each.
func (c *Controller) Sites() apiv1.SiteList {
	copies := c.cfg.Store.Copies("")
	f, err := c.snapshot(copies)
	if err != nil {
		c.log.Error("cannot list sites", "error", err)
		return apiv1.SiteList{Items: []apiv1.Site{}}
	}
	pls := make([]scheduler.Placement, 0, len(copies))
	for i := range copies {
		if !copies[i].Stopping {
			pls = append(pls, copies[i].Placement())
		}
	}
	return planner.SiteViews(f.snap, pls)
}

// Placements is the residency audit, newest first, of one workload when
// workload is not empty.
func (c *Controller) Placements(workload string) apiv1.PlacementList {
	return apiv1.PlacementList{Items: c.cfg.Store.Audit(workload)}
}
