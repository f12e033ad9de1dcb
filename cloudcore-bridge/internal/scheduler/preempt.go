package scheduler

import (
	"cmp"
	"slices"
)

// preempt looks for a full edge node where evicting lower-priority copies
// makes room for one replica of c's request, after a round in which no
// site was feasible. A candidate is an edge node removed only for lack of
// resources (every filter before ResourcesFilter passed it) that then
// also passes the filters after it. Among candidates it picks, like
// kube-scheduler, the one whose most important victim matters least: the
// lowest highest victim priority, then the fewest victims, then the
// lowest sum of victim priorities, then the lowest site ID.
func (p *Profile) preempt(c *Cycle) (site int32, victims []int32, ok bool) {
	req := c.req
	if !req.Placement.Preemption || req.Placement.Priority <= 0 {
		return 0, nil, false
	}
	resFilter := -1
	for k, f := range p.Filters {
		if _, isRes := f.(ResourcesFilter); isRes {
			resFilter = k
			break
		}
	}
	if resFilter < 0 {
		return 0, nil, false
	}
	x := &c.snap.idx
	var cands []int32
	chosen := map[int32][]int32{}
	for i := range c.rec {
		si := int32(i)
		if int(c.rec[i].filter) != resFilter+1 || x.kind[i] != KindEdge {
			continue
		}
		if v, fits := c.victims(si); fits {
			cands = append(cands, si)
			chosen[si] = v
		}
	}
	// The filters after ResourcesFilter, without recording: the sites keep
	// the resources verdict in the explanation.
	c.dry = true
	for k := resFilter + 1; k < len(p.Filters) && len(cands) > 0; k++ {
		c.filter = k
		cands = p.Filters[k].Filter(c, cands)
	}
	c.dry = false
	if len(cands) == 0 {
		return 0, nil, false
	}
	type option struct {
		site            int32
		top, count, sum int
	}
	opts := make([]option, len(cands))
	for k, si := range cands {
		o := option{site: si, count: len(chosen[si])}
		for _, v := range chosen[si] {
			prio := c.snap.placements[v].Priority
			o.top = max(o.top, prio)
			o.sum += prio
		}
		opts[k] = o
	}
	best := slices.MinFunc(opts, func(a, b option) int {
		return cmp.Or(cmp.Compare(a.top, b.top), cmp.Compare(a.count, b.count), cmp.Compare(a.sum, b.sum), cmp.Compare(a.site, b.site))
	})
	return best.site, chosen[best.site], true
}

// victims picks the copies to evict from site i so one replica fits:
// lower-priority copies only, the least important first (lowest priority,
// then the most recently started, then by ID). It reports false when
// evicting all of them would not be enough.
func (c *Cycle) victims(i int32) ([]int32, bool) {
	x := &c.snap.idx
	prio := c.req.Placement.Priority
	var pool []int32
	for _, pi := range x.bySite[i] {
		if c.snap.placements[pi].Priority < prio && !c.st.isGone(pi) {
			pool = append(pool, pi)
		}
	}
	if len(pool) == 0 {
		return nil, false
	}
	slices.SortFunc(pool, func(a, b int32) int {
		pa, pb := &c.snap.placements[a], &c.snap.placements[b]
		return cmp.Or(cmp.Compare(pa.Priority, pb.Priority), pb.Started.Compare(pa.Started), cmp.Compare(pa.ID, pb.ID))
	})
	free := c.Free(i)
	need := c.req.Resources
	for k, pi := range pool {
		free = free.Add(c.snap.placements[pi].Resources)
		if free.MilliCPU >= need.MilliCPU && free.Memory >= need.Memory {
			return pool[:k+1], true
		}
	}
	return nil, false
}
