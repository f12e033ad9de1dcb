package controller

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/planner"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
)

// pass applies one Reconcile's actions inside a store transaction.
type pass struct {
	c       *Controller
	f       *fleet
	reqs    map[string]*scheduler.Request
	actions []scheduler.Action
	// stopped holds the copies the actions stop.
	stopped map[string]bool
	// active counts the active copies per node and workload, load the
	// active copies per node, as the pass changes them.
	active map[string]map[string]int
	load   map[string]int
	// read is each workload as the pass read it; skipped holds those that
	// changed before the pass applied its actions, whose actions are left
	// to the next pass.
	read    map[string]workloads.Workload
	skipped map[string]bool
	// unsched collects why slots found no site, by workload.
	unsched map[string][]string
	counts  map[string]int
	specs   map[string][]byte
}

func newPass(c *Controller, f *fleet, ws []workloads.Workload, reqs []scheduler.Request, actions []scheduler.Action) *pass {
	p := &pass{c: c, f: f, reqs: make(map[string]*scheduler.Request, len(reqs)), actions: actions,
		read: make(map[string]workloads.Workload, len(ws))}
	for i := range reqs {
		p.reqs[reqs[i].Workload] = &reqs[i]
	}
	for _, w := range ws {
		p.read[w.Name()] = w
	}
	return p
}

// changed reports whether workload differs from what the pass read: the
// actions about it were decided on what no longer is.
func (p *pass) changed(tx *workloads.Tx, workload string) bool {
	now, ok := tx.Workload(workload)
	then, was := p.read[workload]
	return ok != was || ok && (now.Deleting != then.Deleting || !now.UpdatedAt.Equal(then.UpdatedAt))
}

// run is the transaction of the pass; Update calls it once.
func (p *pass) run(tx *workloads.Tx) error {
	p.stopped, p.skipped = map[string]bool{}, map[string]bool{}
	for _, a := range p.actions {
		if p.changed(tx, a.Workload) {
			p.skipped[a.Workload] = true
		}
	}
	p.active, p.load = map[string]map[string]int{}, map[string]int{}
	p.unsched, p.counts, p.specs = map[string][]string{}, map[string]int{}, map[string][]byte{}
	for _, a := range p.actions {
		if a.Kind == scheduler.ActionStop && !p.skipped[a.Workload] {
			p.stopped[a.Placement] = true
		}
	}
	for _, cp := range tx.Copies("") {
		if !cp.Stopping && !p.stopped[cp.ID] && cp.Node != "" {
			p.take(cp.Node, cp.Workload, 1)
		}
	}
	for k := range p.actions {
		a := &p.actions[k]
		if p.skipped[a.Workload] {
			continue
		}
		switch a.Kind {
		case scheduler.ActionPlace:
			if err := p.place(tx, a); err != nil {
				return err
			}
		case scheduler.ActionStop:
			p.stop(tx, a)
		case scheduler.ActionUnschedulable:
			summary := a.Detail
			if a.Explanation != nil {
				summary = a.Explanation.Summary()
			}
			p.unsched[a.Workload] = append(p.unsched[a.Workload], summary)
			p.counts["unschedulable"]++
		}
	}
	p.assignAgents(tx)
	if err := p.converge(tx); err != nil {
		return err
	}
	p.finish(tx)
	for _, w := range tx.Workloads() {
		if w.Deleting && len(tx.Copies(w.Name())) == 0 {
			tx.DeleteWorkload(w.Name())
			p.c.log.Info("workload deleted: every copy has stopped", "workload", w.Name())
		}
	}
	return nil
}

// take adds n active copies of workload on node.
func (p *pass) take(node, workload string, n int) {
	m := p.active[node]
	if m == nil {
		m = map[string]int{}
		p.active[node] = m
	}
	m[workload] += n
	p.load[node] += n
}

func (p *pass) place(tx *workloads.Tx, a *scheduler.Action) error {
	req := p.reqs[a.Workload]
	w, ok := tx.Workload(a.Workload)
	if req == nil || !ok || a.Assignment == nil {
		return nil
	}
	specJSON, err := p.spec(&w)
	if err != nil {
		return err
	}
	as := a.Assignment
	cp := workloads.Copy{
		ID: newCopyID(a.Workload, a.Replica), Workload: a.Workload, Revision: req.Revision, Slot: a.Replica,
		Site: a.Site, Kind: as.Kind.String(), Resources: req.Resources, Priority: req.Placement.Priority,
		State: workloads.CopyPending, Replaces: a.Replaces, PlacedAt: p.f.now,
		Jurisdiction: as.Residency.Jurisdiction, Residency: planner.ResidencyRule(as.Residency),
		CostPerHour: as.CostPerHour, Score: as.Score, SpecJSON: specJSON,
	}
	if as.Kind == scheduler.KindCloud {
		cp.Node, cp.Reason = p.agentFor(a.Site, a.Workload)
	} else {
		// A node runs one instance of a workload: two copies on one node
		// would be one process counted twice.
		if p.active[a.Site][a.Workload] > 0 {
			p.unsched[a.Workload] = append(p.unsched[a.Workload],
				fmt.Sprintf("replica %d: node %s already runs a copy of %s", a.Replica, a.Site, a.Workload))
			p.counts["unschedulable"]++
			return nil
		}
		cp.Node = a.Site
	}
	if cp.Node != "" {
		p.take(cp.Node, cp.Workload, 1)
	}
	if old, ok := tx.Copy(a.Replaces); ok {
		cp.ReplacesNode = old.Node
	}
	tx.PutCopy(cp)
	tx.Audit(planner.AuditRecord(*a, req, p.f.now))
	p.counts["place"]++
	p.c.log.Info("copy placed", "workload", a.Workload, "slot", a.Replica, "site", a.Site, "node", cp.Node,
		"cause", a.Cause, "copy", cp.ID, "replaces", a.Replaces, "residency", cp.Jurisdiction+" "+cp.Residency)
	return nil
}

func (p *pass) stop(tx *workloads.Tx, a *scheduler.Action) {
	cp, ok := tx.Copy(a.Placement)
	if !ok || cp.Stopping {
		return
	}
	cp.Stopping, cp.StopCause, cp.StopAt = true, string(a.Cause), p.f.now
	tx.PutCopy(cp)
	if cp.Node != "" {
		p.take(cp.Node, cp.Workload, -1)
	}
	rec := planner.AuditRecord(*a, p.reqs[a.Workload], p.f.now)
	rec.Kind, rec.Jurisdiction, rec.Rule, rec.CostPerHour = cp.Kind, cp.Jurisdiction, cp.Residency, cp.CostPerHour
	if rec.Revision == "" {
		rec.Revision = cp.Revision
	}
	tx.Audit(rec)
	p.counts["stop"]++
	p.c.log.Info("copy stopping", "workload", a.Workload, "slot", a.Replica, "site", a.Site, "node", cp.Node,
		"cause", a.Cause, "copy", cp.ID, "detail", a.Detail)
}

// agentFor picks the online agent of region site that runs the fewest
// copies and none of workload; "" and the reason when there is none.
func (p *pass) agentFor(site, workload string) (string, string) {
	agents := p.f.agents[site]
	best := ""
	for _, id := range agents {
		if p.active[id][workload] > 0 {
			continue
		}
		if best == "" || p.load[id] < p.load[best] {
			best = id
		}
	}
	switch {
	case best != "":
		return best, ""
	case len(agents) == 0:
		return "", "no online agent serves region " + site + " (agents carry the label " + planner.LabelSite + "=" + site + ")"
	}
	return "", fmt.Sprintf("every online agent of region %s already runs a copy of %s", site, workload)
}

// assignAgents gives an agent to the cloud copies waiting for one, and a
// new one to those whose agent is lost or no longer serves the region.
func (p *pass) assignAgents(tx *workloads.Tx) {
	for _, cp := range tx.Copies("") {
		if cp.Stopping || cp.Kind != workloads.KindCloud {
			continue
		}
		old := cp.Node
		if old != "" {
			if slices.Contains(p.f.agents[cp.Site], old) || !p.agentGone(&cp) {
				continue
			}
			p.take(old, cp.Workload, -1)
		}
		node, reason := p.agentFor(cp.Site, cp.Workload)
		if node == "" && old == "" && reason == cp.Reason {
			continue
		}
		cp.Node, cp.Reason = node, reason
		cp.State, cp.Started, cp.AssignedGeneration, cp.Generation = workloads.CopyPending, time.Time{}, 0, 0
		if node != "" {
			p.take(node, cp.Workload, 1)
		}
		tx.PutCopy(cp)
		if old != "" {
			p.c.log.Info("cloud copy moved to another agent of its region", "workload", cp.Workload, "site", cp.Site,
				"from", old, "to", node, "reason", reason)
			p.counts["move"]++
		}
	}
}

// agentGone reports whether the agent of cloud copy cp no longer counts:
// gone from the registry, serving another region, or offline past the
// workload's lostAfter.
func (p *pass) agentGone(cp *workloads.Copy) bool {
	n := p.f.nodes[cp.Node]
	if n == nil || n.Labels[planner.LabelSite] != cp.Site {
		return true
	}
	return p.nodeLost(cp.Node, p.lostAfter(cp.Workload))
}

// unschedulable formats the reasons of a workload's slots without a
// site: "0/5 sites: 3 wrong jurisdiction", "2 replicas: ...".
func unschedulable(reasons []string) string {
	if len(reasons) == 0 {
		return ""
	}
	counts := map[string]int{}
	var order []string
	for _, r := range reasons {
		if counts[r] == 0 {
			order = append(order, r)
		}
		counts[r]++
	}
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(counts[b], counts[a]) })
	parts := make([]string, len(order))
	for i, r := range order {
		parts[i] = r
		if counts[r] > 1 {
			parts[i] = fmt.Sprintf("%d replicas: %s", counts[r], r)
		}
	}
	return strings.Join(parts, "; ")
}

// newCopyID names a new copy: workload, slot and 8 random hex digits.
func newCopyID(workload string, slot int) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return fmt.Sprintf("%s-%d-%s", workload, slot, hex.EncodeToString(b[:]))
}
