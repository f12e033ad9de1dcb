package scheduler

import (
	"github.com/skyedge/skyedge/protocol/spec"
)

// Filter removes the sites a request cannot use, like a kube-scheduler
// filter plugin. Filters run in profile order over the survivors of the
// previous one, so a site is charged to the first filter that removes it.
//
// A filter works on a batch of sites so that thousands of sites cost one
// call, not thousands: it calls Cycle.Reject for each site it removes and
// returns the others, in their order (filtering in place is fine).
// Explanations are made only when read, from the Verdict the filter left.
type Filter interface {
	// Name is short and stable: "jurisdiction".
	Name() string
	Filter(c *Cycle, sites []int32) []int32
	// Summary is the verdict's short, constant label for counts: "over
	// CPU", "wrong jurisdiction".
	Summary(v Verdict) string
	// Reason explains a verdict on site in a sentence.
	Reason(req *Request, site *Site, v Verdict) string
}

// Standing marks a filter whose verdict a running copy must keep
// satisfying: when a copy's site stops passing it (the placement policy
// changed, a label was removed), Reconcile moves the copy. Filters about
// momentary state (link, free capacity, cooldown, spread, measured
// latency) are not standing, so a copy is never moved because of them.
type Standing interface {
	Standing() bool
}

// Static marks a plugin whose verdicts or scores depend only on the
// snapshot and the request (and, for a scorer, the set of sites scored
// together), not on what the same placement has already taken or evicted.
// Place runs the leading static filters of a profile once per call rather
// than once per replica; a plugin without the mark is run every time.
type Static interface {
	Static() bool
}

// Local marks a plugin whose verdict or score for a site depends only on
// the snapshot, the request and that site's own allocation: not on where
// earlier replicas went elsewhere, and, for a scorer, not on the other
// sites scored with it. ResourcesFilter and BalanceScorer are Local;
// SpreadFilter is Local only for requests without a spread.
type Local interface {
	Local(req *Request) bool
}

// Scorer rates the sites that passed every filter. Scores are 0..100,
// higher is better; the total is the weighted mean of the scorers with a
// positive weight.
type Scorer interface {
	// Name is short and stable: "cost".
	Name() string
	// Weight is the scorer's weight for a request under weights w (the
	// request's resolved objective); 0 leaves the scorer out.
	Weight(req *Request, w spec.Weights) float64
	// Score writes the score of sites[i] to out[i].
	Score(c *Cycle, sites []int32, out []float32)
}

// Verdict is a filter's finding about one site, kept to a few bytes so a
// placement over 50,000 sites allocates little: Code is the filter's own
// kind of finding, Value a number for the explanation (the free CPU, the
// RTT). Anything static about the site is read from the site when the
// explanation is made.
type Verdict struct {
	Code  uint8
	Value float32
}

// siteRecord is the outcome of the last round for one site: 8 bytes.
type siteRecord struct {
	filter uint8 // 0: passed every filter; k: removed by filter k-1
	code   uint8 // verdict code, or recordPreempt for a feasible site
	value  float32
}

func (r siteRecord) verdict() Verdict { return Verdict{Code: r.code, Value: r.value} }

const recordPreempt = 1

// Cycle is one placement in progress: the snapshot, the request and what
// has been decided so far. Filters and scorers read it; they must not keep
// it past the call.
type Cycle struct {
	snap   *Snapshot
	st     *state
	req    *Request
	filter int
	dry    bool    // evaluating hypotheticals: Reject keeps only the last verdict
	last   Verdict // the last verdict rejected in dry mode
	rec    []siteRecord
	lat    latencyCache
}

// Snapshot returns the snapshot being placed on.
func (c *Cycle) Snapshot() *Snapshot { return c.snap }

// Request returns the request being placed.
func (c *Cycle) Request() *Request { return c.req }

// Site returns site i of the snapshot.
func (c *Cycle) Site(i int32) *Site { return &c.snap.sites[i] }

// Free returns what site i has free, counting what this placement has
// taken or freed so far.
func (c *Cycle) Free(i int32) Resources {
	x := &c.snap.idx
	cpu, mem := c.st.alloc(i)
	return Resources{x.capCPU[i] - cpu, x.capMem[i] - mem}
}

// WorkloadCopies counts, by site, the live copies of the request's
// workload: those of the snapshot this computation has not stopped or
// preempted, plus those it has placed so far.
func (c *Cycle) WorkloadCopies() map[int32]int {
	x := &c.snap.idx
	out := map[int32]int{}
	for _, p := range x.byWorkload[c.req.Workload] {
		if si := x.placeSite[p]; si >= 0 && !c.st.isGone(p) {
			out[si]++
		}
	}
	for _, a := range c.st.added {
		if a.workload == c.req.Workload {
			out[a.site]++
		}
	}
	return out
}

// Reject records that the running filter removes site i.
func (c *Cycle) Reject(i int32, v Verdict) {
	if c.dry {
		c.last = v
		return
	}
	c.rec[i] = siteRecord{filter: uint8(c.filter + 1), code: v.Code, value: v.Value}
}

// state is the fleet as one computation (a Place call, or a whole
// Reconcile) has changed it: allocations and copies added or removed.
// Changed allocations live in a sparse overlay over the snapshot's
// arrays, flagged in a bitset, so a placement that touches a few sites
// copies nothing and the hot loops pay one bit test per site.
type state struct {
	snap    *Snapshot
	touched []uint64 // bit i: site i's allocation differs from the snapshot
	delta   map[int32]Resources
	gone    []bool // snapshot placements stopped or preempted
	added   []addedCopy
}

type addedCopy struct {
	workload string
	site     int32
	res      Resources
}

func newState(snap *Snapshot) *state { return &state{snap: snap} }

// isTouched reports whether site i has an overlay entry.
func (st *state) isTouched(i int32) bool {
	return st.touched != nil && st.touched[i>>6]&(1<<(uint(i)&63)) != 0
}

// alloc returns the allocated CPU and memory of site i.
func (st *state) alloc(i int32) (cpu, mem int64) {
	x := &st.snap.idx
	cpu, mem = x.allocCPU[i], x.allocMem[i]
	if st.isTouched(i) {
		d := st.delta[i]
		cpu, mem = cpu+d.MilliCPU, mem+d.Memory
	}
	return cpu, mem
}

// adjust adds res to site i's allocation.
func (st *state) adjust(i int32, res Resources) {
	if st.touched == nil {
		st.touched = make([]uint64, (len(st.snap.sites)+63)/64)
		st.delta = make(map[int32]Resources)
	}
	st.touched[i>>6] |= 1 << (uint(i) & 63)
	st.delta[i] = st.delta[i].Add(res)
}

// take reserves res on site i for a new copy of workload.
func (st *state) take(workload string, i int32, res Resources) {
	st.adjust(i, res)
	st.added = append(st.added, addedCopy{workload: workload, site: i, res: res})
}

// remove takes snapshot placement p out: its site gets its resources back.
func (st *state) remove(p int32) {
	if st.gone == nil {
		st.gone = make([]bool, len(st.snap.placements))
	}
	if st.gone[p] {
		return
	}
	st.gone[p] = true
	if si := st.snap.idx.placeSite[p]; si >= 0 {
		st.adjust(si, Resources{}.Sub(st.snap.placements[p].Resources))
	}
}

// restore undoes remove.
func (st *state) restore(p int32) {
	if st.gone == nil || !st.gone[p] {
		return
	}
	st.gone[p] = false
	if si := st.snap.idx.placeSite[p]; si >= 0 {
		st.adjust(si, st.snap.placements[p].Resources)
	}
}

func (st *state) isGone(p int32) bool { return st.gone != nil && st.gone[p] }

// Profile is an ordered set of filters and scorers, like a kube-scheduler
// profile. A profile without ResourcesFilter would oversubscribe: start
// from DefaultProfile and add or replace plugins.
type Profile struct {
	Filters []Filter
	Scorers []Scorer
}

// DefaultProfile returns the standard plugins, cheapest and most
// selective filters first.
func DefaultProfile() *Profile {
	return &Profile{
		Filters: []Filter{
			LinkFilter{},
			TierFilter{},
			NodeNameFilter{},
			SelectorFilter{},
			ProviderFilter{},
			RegionFilter{},
			JurisdictionFilter{},
			CapacityErrorFilter{},
			LatencyFilter{},
			ResourcesFilter{},
			SpreadFilter{},
		},
		Scorers: []Scorer{
			CostScorer{},
			LatencyScorer{},
			BalanceScorer{},
			AffinityScorer{},
		},
	}
}

var defaultProfile = DefaultProfile()
