package scheduler

import (
	"github.com/skyedge/skyedge/protocol/spec"
)

// CostScorer favours the cheapest sites: the estimated dollars per hour
// of one replica (CPU-hours + GiB-hours + expected egress) is scaled so
// the cheapest feasible site scores 100 and the dearest 0.
type CostScorer struct{}

// Static implements Static.
func (CostScorer) Static() bool { return true }

// Name implements Scorer.
func (CostScorer) Name() string { return "cost" }

// Weight implements Scorer.
func (CostScorer) Weight(_ *Request, w spec.Weights) float64 { return w.Cost }

// Score implements Scorer.
func (CostScorer) Score(c *Cycle, sites []int32, out []float32) {
	prices := c.snap.idx.prices
	res, egress := c.req.Resources, c.req.EgressBytesPerHour
	for k, i := range sites {
		out[k] = float32(costPerHour(prices[i], res, egress))
	}
	scaleLowerBetter(out)
}

// LatencyScorer favours the shortest round trip to the data source,
// scaled so the nearest feasible site scores 100 and the farthest 0; a
// site with no RTT known scores 0. It applies only with a data source.
type LatencyScorer struct{}

// Static implements Static.
func (LatencyScorer) Static() bool { return true }

// Name implements Scorer.
func (LatencyScorer) Name() string { return "latency" }

// Weight implements Scorer.
func (LatencyScorer) Weight(req *Request, w spec.Weights) float64 {
	if req.Placement.DataSource == nil {
		return 0
	}
	return w.Latency
}

// Score implements Scorer.
func (LatencyScorer) Score(c *Cycle, sites []int32, out []float32) {
	unknown := false
	for k, i := range sites {
		rtt, src := c.RTT(i)
		if src == RTTUnknown {
			out[k], unknown = -1, true
			continue
		}
		out[k] = float32(rtt)
	}
	if !unknown {
		scaleLowerBetter(out)
		return
	}
	// Scale the known ones, then give the unknown ones the worst score.
	known := make([]float32, 0, len(out))
	for _, v := range out {
		if v >= 0 {
			known = append(known, v)
		}
	}
	scaleLowerBetter(known)
	j := 0
	for k, v := range out {
		if v < 0 {
			out[k] = 0
			continue
		}
		out[k] = known[j]
		j++
	}
}

// scaleLowerBetter maps raw values to 0..100 in place, the lowest to 100
// and the highest to 0; all equal scores 100.
func scaleLowerBetter(v []float32) {
	if len(v) == 0 {
		return
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if hi == lo {
		for k := range v {
			v[k] = 100
		}
		return
	}
	scale := 100 / (hi - lo)
	for k, x := range v {
		if x == lo {
			v[k] = 100 // exactly, whatever the rounding
		} else {
			v[k] = (hi - x) * scale
		}
	}
}

// BalanceScorer favours the least-allocated sites (kube-scheduler's
// LeastAllocated): the mean over CPU and memory of the share left free
// after placing the replica, times 100.
type BalanceScorer struct{}

// Local implements Local.
func (BalanceScorer) Local(*Request) bool { return true }

// Name implements Scorer.
func (BalanceScorer) Name() string { return "balance" }

// Weight implements Scorer.
func (BalanceScorer) Weight(_ *Request, w spec.Weights) float64 { return w.Balance }

// Score implements Scorer.
func (BalanceScorer) Score(c *Cycle, sites []int32, out []float32) {
	x := &c.snap.idx
	capCPU, capMem := x.capCPU, x.capMem
	allocCPU, allocMem := x.allocCPU, x.allocMem
	needCPU, needMem := c.req.Resources.MilliCPU, c.req.Resources.Memory
	st := c.st
	for k, i := range sites {
		cpu, mem := allocCPU[i], allocMem[i]
		if st.isTouched(i) {
			d := st.delta[i]
			cpu, mem = cpu+d.MilliCPU, mem+d.Memory
		}
		out[k] = 50 * (freeShare(capCPU[i], cpu+needCPU) + freeShare(capMem[i], mem+needMem))
	}
}

func freeShare(capacity, used int64) float32 {
	if capacity <= 0 || used >= capacity {
		return 0
	}
	return float32(capacity-used) / float32(capacity)
}

// AffinityScorer applies placement.affinities: a site's score is the sum
// of the weights of the affinities it matches, scaled from the worst
// possible sum (every negative one, 0) to the best (every positive one,
// 100).
type AffinityScorer struct{}

// Static implements Static.
func (AffinityScorer) Static() bool { return true }

// Name implements Scorer.
func (AffinityScorer) Name() string { return "affinity" }

// Weight implements Scorer.
func (AffinityScorer) Weight(req *Request, w spec.Weights) float64 {
	if len(req.Placement.Affinities) == 0 {
		return 0
	}
	return w.Affinity
}

// Score implements Scorer.
func (AffinityScorer) Score(c *Cycle, sites []int32, out []float32) {
	affs := c.req.Placement.Affinities
	type term struct {
		reqs   []compiledReq
		weight float32
	}
	terms := make([]term, len(affs))
	var pos, neg float32
	for k, a := range affs {
		terms[k] = term{compileSelector(&c.snap.idx, a.Selector.Requirements()), float32(a.Weight)}
		if a.Weight > 0 {
			pos += float32(a.Weight)
		} else {
			neg -= float32(a.Weight)
		}
	}
	if pos+neg == 0 {
		for k := range out {
			out[k] = 100
		}
		return
	}
	for k, i := range sites {
		sum := neg
	next:
		for _, t := range terms {
			for r := range t.reqs {
				if !t.reqs[r].match(i) {
					continue next
				}
			}
			sum += t.weight
		}
		out[k] = 100 * sum / (pos + neg)
	}
}
