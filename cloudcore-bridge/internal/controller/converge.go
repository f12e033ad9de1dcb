package controller

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/planner"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/protocol/spec"
)

// converge makes each node's desired set hold exactly the workloads of
// the active copies assigned to it, and records on each copy the
// generation that carries it (or that dropped it, for a stopping copy).
func (p *pass) converge(tx *workloads.Tx) error {
	copies := tx.Copies("")
	want := map[string]map[string]*workloads.Copy{} // node -> workload -> newest active copy
	for i := range copies {
		cp := &copies[i]
		if cp.Stopping || cp.Node == "" {
			continue
		}
		m := want[cp.Node]
		if m == nil {
			m = map[string]*workloads.Copy{}
			want[cp.Node] = m
		}
		if cur := m[cp.Workload]; cur == nil || cp.PlacedAt.After(cur.PlacedAt) {
			m[cp.Workload] = cp
		}
	}
	nodes := tx.SetNodes()
	for node := range want {
		nodes = append(nodes, node)
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	for _, node := range nodes {
		if err := p.sync(tx, node, want[node]); err != nil {
			return err
		}
	}
	for i := range copies {
		cp := copies[i]
		if cp.Node == "" {
			continue
		}
		gen := tx.SetGeneration(cp.Node)
		changed := false
		if cp.Stopping {
			if cp.StopGeneration == 0 {
				cp.StopGeneration, changed = gen, true
			}
		} else if _, g, ok := tx.SetGet(cp.Node, cp.Workload); ok && g != cp.Generation {
			if cp.AssignedGeneration == 0 {
				cp.AssignedGeneration = g
			}
			cp.Generation, changed = g, true
		}
		if want[cp.Node][cp.Workload] != nil && want[cp.Node][cp.Workload].ID == cp.ID {
			if cur := p.specs[cp.Workload]; cur != nil && cp.Revision == p.revision(tx, cp.Workload) && string(cur) != string(cp.SpecJSON) {
				cp.SpecJSON, changed = cur, true
			}
		}
		if changed {
			tx.PutCopy(cp)
		}
	}
	return nil
}

// sync brings node's set to want (workload -> the copy it comes from),
// staging the set only when something changes.
func (p *pass) sync(tx *workloads.Tx, node string, want map[string]*workloads.Copy) error {
	specs := make(map[string][]byte, len(want))
	for name, cp := range want {
		b, err := p.copySpec(tx, cp)
		if err != nil {
			return err
		}
		specs[name] = b
	}
	var puts, removes []string
	for name, b := range specs {
		if cur, _, ok := tx.SetGet(node, name); !ok || string(cur) != string(b) {
			puts = append(puts, name)
		}
	}
	for _, name := range tx.SetNames(node) {
		if _, ok := specs[name]; !ok {
			removes = append(removes, name)
		}
	}
	if len(puts) == 0 && len(removes) == 0 && (len(want) == 0 || tx.HasSet(node)) {
		return nil
	}
	set, err := tx.Set(node)
	if err != nil {
		return err
	}
	slices.Sort(puts)
	slices.Sort(removes)
	for _, name := range puts {
		set.Put(name, specs[name])
	}
	for _, name := range removes {
		set.Remove(name)
	}
	return nil
}

// copySpec is the spec cp's node must run: the workload's current spec
// when cp runs its current revision (placement-only changes reach running
// copies), else the spec cp was placed with.
func (p *pass) copySpec(tx *workloads.Tx, cp *workloads.Copy) ([]byte, error) {
	if w, ok := tx.Workload(cp.Workload); ok && w.Revision == cp.Revision {
		return p.spec(&w)
	}
	if len(cp.SpecJSON) == 0 {
		return nil, fmt.Errorf("copy %s of %s: no spec for revision %s", cp.ID, cp.Workload, cp.Revision)
	}
	return cp.SpecJSON, nil
}

// revision is the current revision of workload ("" when it is gone).
func (p *pass) revision(tx *workloads.Tx, workload string) string {
	w, _ := tx.Workload(workload)
	return w.Revision
}

// spec is the JSON of w's spec, as nodes receive it.
func (p *pass) spec(w *workloads.Workload) ([]byte, error) {
	if b, ok := p.specs[w.Name()]; ok {
		return b, nil
	}
	b, err := json.Marshal(&w.Spec.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode spec of %s: %w", w.Name(), err)
	}
	p.specs[w.Name()] = b
	return b, nil
}

// finish forgets the stopping copies that are done: their node confirmed
// nothing runs, took over a newer copy, or is lost.
func (p *pass) finish(tx *workloads.Tx) {
	for _, cp := range tx.Copies("") {
		if !cp.Stopping {
			continue
		}
		why := p.finished(tx, &cp)
		if why == "" {
			continue
		}
		tx.DeleteCopy(cp.ID)
		if cp.Node != "" && !slices.ContainsFunc(tx.Copies(cp.Workload), func(o workloads.Copy) bool { return o.Node == cp.Node }) {
			tx.DeleteStatus(cp.Workload, cp.Node)
		}
		p.c.log.Info("copy stopped", "workload", cp.Workload, "slot", cp.Slot, "node", cp.Node, "copy", cp.ID, "how", why)
	}
}

// finished says how stopping copy cp is done, or "" while it is not.
func (p *pass) finished(tx *workloads.Tx, cp *workloads.Copy) string {
	if cp.Node == "" {
		return "never assigned to a node"
	}
	if p.nodeLost(cp.Node, p.lostAfter(cp.Workload)) {
		return "node lost"
	}
	if tx.SetGeneration(cp.Node) == 0 {
		return "never sent to its node"
	}
	if tx.Acked(cp.Node) < cp.StopGeneration {
		return ""
	}
	if _, _, live := tx.SetGet(cp.Node, cp.Workload); live {
		return "superseded by a newer copy on the same node"
	}
	st, ok := tx.Status(cp.Workload, cp.Node)
	switch {
	case !ok:
		return "removal acknowledged; the node never reported it"
	case workloads.Inactive(st.State):
		return "node reported it " + st.State
	}
	return ""
}

// nodeLost reports whether a node's copies count as lost under a
// workload's lostAfter: gone from the registry, given up, or offline for
// lostAfter or longer.
func (p *pass) nodeLost(node string, lostAfter time.Duration) bool {
	n := p.f.nodes[node]
	if n == nil {
		return true
	}
	if n.Online {
		return false
	}
	if n.OfflineReason == planner.ReasonRemoved || n.OfflineReason == planner.ReasonDecommissioned {
		return true
	}
	since := n.LastSeen
	if since.IsZero() {
		since = n.FirstSeen
	}
	gone := p.f.now.Sub(since)
	if d := p.c.cfg.NodeLostAfter; d > 0 && gone > d {
		return true
	}
	return gone >= lostAfter
}

// lostAfter is workload's disconnect.lostAfter (the default for a
// workload that is gone).
func (p *pass) lostAfter(workload string) time.Duration {
	if r := p.reqs[workload]; r != nil && r.Disconnect.LostAfter > 0 {
		return r.Disconnect.LostAfter.Std()
	}
	return spec.DefaultLostAfter
}
