package scheduler

import (
	"fmt"

	"github.com/skyedge/skyedge/protocol/spec"
)

// LatencyFilter applies placement.maxLatency: the round trip from a site
// to the data source must be within the bound. A measured RTT (the site's
// own, the data source's, or the catalog's table) is used when known,
// otherwise an estimate from the great-circle distance; a site with
// neither is refused.
type LatencyFilter struct{}

// Static implements Static.
func (LatencyFilter) Static() bool { return true }

// Name implements Filter.
func (LatencyFilter) Name() string { return "latency" }

// Verdict codes of LatencyFilter: unknown, or over the bound plus the
// RTTSource of the value.
const (
	latencyUnknown = 1
	latencyOver    = 2
)

// Filter implements Filter.
func (LatencyFilter) Filter(c *Cycle, sites []int32) []int32 {
	bound := ms(c.req.Placement.MaxLatency.Std())
	if bound <= 0 || c.req.Placement.DataSource == nil {
		return sites
	}
	out := sites[:0]
	for _, i := range sites {
		rtt, src := c.RTT(i)
		switch {
		case src == RTTUnknown:
			c.Reject(i, Verdict{Code: latencyUnknown})
		case rtt > bound:
			c.Reject(i, Verdict{Code: latencyOver + uint8(src), Value: float32(rtt)})
		default:
			out = append(out, i)
		}
	}
	return out
}

// Summary implements Filter.
func (LatencyFilter) Summary(v Verdict) string {
	if v.Code == latencyUnknown {
		return "latency unknown"
	}
	return "over latency bound"
}

// Reason implements Filter.
func (LatencyFilter) Reason(req *Request, _ *Site, v Verdict) string {
	if v.Code == latencyUnknown {
		return "no measured RTT and no location to estimate one to " + sourceName(req)
	}
	return fmt.Sprintf("%s RTT %.1fms to %s over the %s bound", RTTSource(v.Code-latencyOver), v.Value, sourceName(req), req.Placement.MaxLatency)
}

// ResourcesFilter refuses sites without room for one more replica,
// counting the replicas this placement has already put there. It names
// the exhausted dimension, CPU first.
type ResourcesFilter struct{}

// Local implements Local.
func (ResourcesFilter) Local(*Request) bool { return true }

// Name implements Filter.
func (ResourcesFilter) Name() string { return "resources" }

// Verdict codes of ResourcesFilter.
const (
	overCPU    = 1
	overMemory = 2
)

// Filter implements Filter.
func (ResourcesFilter) Filter(c *Cycle, sites []int32) []int32 {
	x := &c.snap.idx
	capCPU, capMem := x.capCPU, x.capMem
	allocCPU, allocMem := x.allocCPU, x.allocMem
	needCPU, needMem := c.req.Resources.MilliCPU, c.req.Resources.Memory
	st := c.st
	out := sites[:0]
	for _, i := range sites {
		freeCPU, freeMem := capCPU[i]-allocCPU[i], capMem[i]-allocMem[i]
		if st.isTouched(i) {
			d := st.delta[i]
			freeCPU, freeMem = freeCPU-d.MilliCPU, freeMem-d.Memory
		}
		switch {
		case freeCPU < needCPU:
			c.Reject(i, Verdict{Code: overCPU, Value: float32(freeCPU)})
		case freeMem < needMem:
			c.Reject(i, Verdict{Code: overMemory, Value: float32(freeMem)})
		default:
			out = append(out, i)
		}
	}
	return out
}

// Summary implements Filter.
func (ResourcesFilter) Summary(v Verdict) string {
	if v.Code == overMemory {
		return "over memory"
	}
	return "over CPU"
}

// Reason implements Filter.
func (ResourcesFilter) Reason(req *Request, s *Site, v Verdict) string {
	if v.Code == overMemory {
		return fmt.Sprintf("needs %s memory, %s free of %s", spec.FormatBytes(req.Resources.Memory),
			spec.FormatBytes(int64(v.Value)), spec.FormatBytes(s.Capacity.Memory))
	}
	return fmt.Sprintf("needs %s CPU, %s free of %s", spec.FormatMilliCPU(req.Resources.MilliCPU),
		spec.FormatMilliCPU(int64(v.Value)), spec.FormatMilliCPU(s.Capacity.MilliCPU))
}

// SpreadFilter applies placement.spread: a replica may go to a site only
// if its domain (the site's value of the topology label) would then hold
// at most maxSkew replicas more than the least-used domain. Domains are
// those of the sites still eligible when the filter runs, so a domain
// where nothing fits does not hold the others back; sites without the
// label are refused.
type SpreadFilter struct{}

// Local implements Local: a spread depends on every site of a domain.
func (SpreadFilter) Local(req *Request) bool { return req.Placement.Spread == nil }

// Name implements Filter.
func (SpreadFilter) Name() string { return "spread" }

// Verdict codes of SpreadFilter.
const (
	spreadNoLabel = 1
	spreadSkew    = 2
)

// Filter implements Filter.
func (SpreadFilter) Filter(c *Cycle, sites []int32) []int32 {
	sp := c.req.Placement.Spread
	if sp == nil {
		return sites
	}
	col := c.snap.idx.labels[sp.TopologyKey]
	if col == nil {
		for _, i := range sites {
			c.Reject(i, Verdict{Code: spreadNoLabel})
		}
		return sites[:0]
	}
	counts := domainCounts(c.st, col, c.req.Workload)
	eligible := make([]bool, len(col.names))
	out := sites[:0]
	for _, i := range sites {
		if d := col.vals[i]; d < 0 {
			c.Reject(i, Verdict{Code: spreadNoLabel})
		} else {
			eligible[d] = true
			out = append(out, i)
		}
	}
	least := int32(-1)
	for d, ok := range eligible {
		if ok && (least < 0 || counts[d] < least) {
			least = counts[d]
		}
	}
	sites, out = out, out[:0]
	for _, i := range sites {
		after := counts[col.vals[i]] + 1
		if int(after-least) > sp.MaxSkew {
			c.Reject(i, Verdict{Code: spreadSkew, Value: float32(after - least)})
			continue
		}
		out = append(out, i)
	}
	return out
}

// domainCounts counts the workload's live copies per value of col.
func domainCounts(st *state, col *labelColumn, workload string) []int32 {
	counts := make([]int32, len(col.names))
	x := &st.snap.idx
	for _, p := range x.byWorkload[workload] {
		if si := x.placeSite[p]; si >= 0 && !st.isGone(p) {
			if d := col.vals[si]; d >= 0 {
				counts[d]++
			}
		}
	}
	for _, a := range st.added {
		if a.workload == workload {
			if d := col.vals[a.site]; d >= 0 {
				counts[d]++
			}
		}
	}
	return counts
}

// Summary implements Filter.
func (SpreadFilter) Summary(v Verdict) string {
	if v.Code == spreadNoLabel {
		return "missing spread label"
	}
	return "over max skew"
}

// Reason implements Filter.
func (SpreadFilter) Reason(req *Request, s *Site, v Verdict) string {
	sp := req.Placement.Spread
	if v.Code == spreadNoLabel {
		return "site has no label " + sp.TopologyKey + " to spread over"
	}
	return fmt.Sprintf("%s=%s would hold %.0f replicas more than the least-used %s (maxSkew %d)",
		sp.TopologyKey, s.Labels[sp.TopologyKey], v.Value, sp.TopologyKey, sp.MaxSkew)
}
