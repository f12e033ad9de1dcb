package controller

import (
	"slices"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
)

// OnePerNodeFilter removes the edge nodes that already run a copy of the
// workload. An agent runs workloads by name, one instance each, so a
// second copy on the same node would be the same process counted twice.
// Cloud regions take any number of copies (each on its own agent).
type OnePerNodeFilter struct{}

// Name implements scheduler.Filter.
func (OnePerNodeFilter) Name() string { return "one-per-node" }

// Local implements scheduler.Local: a site's verdict changes only when a
// copy lands on that site.
func (OnePerNodeFilter) Local(*scheduler.Request) bool { return true }

// Filter implements scheduler.Filter.
func (OnePerNodeFilter) Filter(c *scheduler.Cycle, sites []int32) []int32 {
	copies := c.WorkloadCopies()
	if len(copies) == 0 {
		return sites
	}
	out := sites[:0]
	for _, i := range sites {
		if copies[i] > 0 && c.Site(i).Kind == scheduler.KindEdge {
			c.Reject(i, scheduler.Verdict{Code: 1, Value: float32(copies[i])})
			continue
		}
		out = append(out, i)
	}
	return out
}

// Summary implements scheduler.Filter.
func (OnePerNodeFilter) Summary(scheduler.Verdict) string { return "already runs a copy" }

// Reason implements scheduler.Filter.
func (OnePerNodeFilter) Reason(req *scheduler.Request, s *scheduler.Site, _ scheduler.Verdict) string {
	return "node " + s.ID + " already runs a copy of " + req.Workload + "; a node runs one instance of a workload"
}

// newProfile is the scheduler's default profile with OnePerNodeFilter
// before the resources filter, after the static filters.
func newProfile() *scheduler.Profile {
	p := scheduler.DefaultProfile()
	at := slices.IndexFunc(p.Filters, func(f scheduler.Filter) bool { return f.Name() == "resources" })
	if at < 0 {
		at = len(p.Filters)
	}
	p.Filters = slices.Insert(p.Filters, at, scheduler.Filter(OnePerNodeFilter{}))
	return p
}
