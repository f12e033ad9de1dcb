package scheduler

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// ErrUnschedulable is wrapped by Decision.Err when not every replica found
// a site.
var ErrUnschedulable = errors.New("unschedulable")

// Decision is the outcome of Place: a site per placed replica, the copies
// preempted to make room, and the explanation.
type Decision struct {
	Workload string
	// Wanted is the number of replicas asked for.
	Wanted      int
	Assignments []Assignment
	Victims     []Victim
	Explanation *Explanation
}

// Complete reports whether every wanted replica was placed.
func (d Decision) Complete() bool { return len(d.Assignments) == d.Wanted }

// Err is nil for a complete decision, otherwise ErrUnschedulable with the
// explanation's summary.
func (d Decision) Err() error {
	if d.Complete() {
		return nil
	}
	return fmt.Errorf("workload %s: %w: placed %d/%d replicas; %s", d.Workload, ErrUnschedulable,
		len(d.Assignments), d.Wanted, d.Explanation.Summary())
}

// Sites returns the chosen site of each placed replica, in order.
func (d Decision) Sites() []string {
	out := make([]string, len(d.Assignments))
	for k, a := range d.Assignments {
		out[k] = a.Site
	}
	return out
}

// Assignment is one replica's site.
type Assignment struct {
	// Replica counts the replicas of this decision from 0.
	Replica int
	Site    string
	Kind    SiteKind
	// Score is the weighted total, 0..100 (0 when chosen by preemption).
	Score float64
	// CostPerHour is the estimated price of the replica on the site.
	CostPerHour float64
	// RTT to the data source, when there is one.
	RTT       time.Duration
	RTTSource RTTSource
	Residency Residency
	// Victims are the IDs of the copies preempted for this replica.
	Victims []string
}

// Residency records why a site was allowed to hold the workload's data.
type Residency struct {
	// Jurisdiction is the site's.
	Jurisdiction string
	// AllowedBy is the entry of placement.jurisdictions that allowed it
	// (the country itself, or a zone containing it); empty when the
	// workload sets no jurisdiction.
	AllowedBy string
}

// String implements fmt.Stringer.
func (r Residency) String() string {
	j := r.Jurisdiction
	if j == "" {
		j = "no jurisdiction"
	}
	if r.AllowedBy == "" {
		return j + " (no jurisdiction constraint)"
	}
	if r.AllowedBy == r.Jurisdiction {
		return j + " (allowed by placement.jurisdictions " + r.AllowedBy + ")"
	}
	return j + " (allowed by placement.jurisdictions " + r.AllowedBy + ", which contains it)"
}

// Victim is a copy preempted by a decision.
type Victim struct {
	Placement string
	Workload  string
	Site      string
	Priority  int
}

// Place chooses sites for req's replicas on snap with DefaultProfile. It
// is a pure function of its arguments: no clock, no I/O, and equal inputs
// give equal decisions whatever the order of the snapshot's sites.
func Place(snap *Snapshot, req Request) Decision { return defaultProfile.Place(snap, req) }

// Place chooses sites for req's replicas on snap with p's plugins. Each
// replica is filtered, scored and placed against what the previous ones
// took, so a site is never oversubscribed; ties go to the lowest site ID.
// When a replica fits nowhere and the request may preempt, lower-priority
// copies are evicted from one full edge node. Placement stops at the
// first replica that cannot be placed.
//
// When every plugin that is not Static is Local, the replicas after the
// first are placed incrementally: only the site that took the previous
// replica is filtered and scored again, and the other sites keep their
// scores (normalised over the sites feasible for the earlier replica).
func (p *Profile) Place(snap *Snapshot, req Request) Decision {
	return p.place(newState(snap), &req)
}

// placer carries one Place call from replica to replica.
type placer struct {
	p       *Profile
	c       *Cycle
	ex      *Explanation
	d       *Decision
	nStatic int     // the leading static filters
	base    []int32 // the sites that passed them
	buf     []int32
	local   bool // incremental rounds are allowed
	scored  bool // the last round scored a feasible set
	best    int  // the index in ex.feasible chosen last
}

func (p *Profile) place(st *state, req *Request) Decision {
	snap := st.snap
	c := &Cycle{snap: snap, st: st, req: req, rec: make([]siteRecord, len(snap.sites))}
	ex := p.newExplanation(snap, req, c.rec)
	d := Decision{Workload: req.Workload, Wanted: max(req.Placement.Replicas, 0), Explanation: ex}
	rd := &placer{p: p, c: c, ex: ex, d: &d, local: p.localFor(req)}
	for _, f := range p.Filters {
		if s, ok := f.(Static); !ok || !s.Static() {
			break
		}
		rd.nStatic++
	}
	rd.base = slices.Clone(snap.idx.all)
	for fi, f := range p.Filters[:rd.nStatic] {
		c.filter = fi
		if rd.base = f.Filter(c, rd.base); len(rd.base) == 0 {
			break
		}
	}
	for r := 0; r < d.Wanted; r++ {
		if !(rd.local && rd.scored && rd.next(r)) && !rd.full(r) {
			break
		}
	}
	ex.placed = make(map[string]int, len(d.Assignments))
	for _, a := range d.Assignments {
		ex.placed[a.Site]++
	}
	ex.wanted = d.Wanted
	return d
}

// localFor reports whether every plugin that is not Static is Local for
// req, which allows incremental rounds.
func (p *Profile) localFor(req *Request) bool {
	for _, f := range p.Filters {
		if !isStatic(f) && !isLocal(f, req) {
			return false
		}
	}
	for _, s := range p.Scorers {
		if !isStatic(s) && !isLocal(s, req) {
			return false
		}
	}
	return true
}

func isStatic(v any) bool {
	s, ok := v.(Static)
	return ok && s.Static()
}

func isLocal(v any, req *Request) bool {
	l, ok := v.(Local)
	return ok && l.Local(req)
}

// full places replica r by running every filter after the static ones
// and scoring every feasible site; it reports whether the replica found a
// site, by preemption if need be.
func (rd *placer) full(r int) bool {
	c, ex, p := rd.c, rd.ex, rd.p
	cand := rd.base // the last round may consume base
	if r < rd.d.Wanted-1 {
		if rd.buf == nil {
			rd.buf = make([]int32, len(rd.base))
		}
		cand = rd.buf
		copy(cand, rd.base)
	}
	for fi := rd.nStatic; fi < len(p.Filters) && len(cand) > 0; fi++ {
		c.filter = fi
		cand = p.Filters[fi].Filter(c, cand)
	}
	for _, i := range cand {
		c.rec[i] = siteRecord{}
	}
	ex.feasible, ex.terms, ex.totals = cand, ex.terms[:0], ex.totals[:0]
	rd.scored = false
	if len(cand) > 0 {
		rd.best = p.score(c, ex, cand)
		rd.scored = true
		rd.commit(r, cand[rd.best], float64(ex.totals[rd.best]), nil)
		return true
	}
	site, victims, ok := p.preempt(c)
	if !ok {
		return false
	}
	c.rec[site] = siteRecord{code: recordPreempt}
	ids := make([]string, len(victims))
	for k, v := range victims {
		vp := &c.snap.placements[v]
		ids[k] = vp.ID
		rd.d.Victims = append(rd.d.Victims, Victim{Placement: vp.ID, Workload: vp.Workload, Site: vp.Site, Priority: vp.Priority})
		c.st.remove(v)
	}
	rd.commit(r, site, 0, ids)
	return true
}

// next places replica r incrementally: the last chosen site is filtered
// and scored again, every other site keeps its verdict and terms. It
// reports false, leaving the replica to a full round, when no feasible
// site is left.
func (rd *placer) next(r int) bool {
	c, ex, p := rd.c, rd.ex, rd.p
	m := len(ex.feasible)
	j := rd.best
	si := ex.feasible[j]
	ok := true
	for fi := rd.nStatic; fi < len(p.Filters) && ok; fi++ {
		c.filter = fi
		ok = len(p.Filters[fi].Filter(c, []int32{si})) == 1
	}
	if ok {
		t := 0.0
		for a, k := range ex.active {
			if !isStatic(p.Scorers[k]) {
				p.Scorers[k].Score(c, ex.feasible[j:j+1], ex.terms[a*m+j:a*m+j+1])
			}
			t += ex.weights[k] * float64(ex.terms[a*m+j])
		}
		if ex.wsum > 0 {
			t /= ex.wsum
		}
		ex.totals[j] = float32(t)
	} else {
		ex.totals[j] = -1 // removed: c.rec[si] holds the verdict
	}
	best, bestTotal := -1, float32(-1)
	for k, t := range ex.totals {
		if t > bestTotal {
			best, bestTotal = k, t
		}
	}
	if best < 0 {
		return false
	}
	rd.best = best
	rd.commit(r, ex.feasible[best], float64(bestTotal), nil)
	return true
}

func (rd *placer) commit(r int, site int32, score float64, victims []string) {
	rd.c.st.take(rd.c.req.Workload, site, rd.c.req.Resources)
	rd.d.Assignments = append(rd.d.Assignments, rd.c.assignment(r, site, score, victims))
}

// newExplanation starts the explanation of placing req, resolving the
// scorers' weights.
func (p *Profile) newExplanation(snap *Snapshot, req *Request, rec []siteRecord) *Explanation {
	ex := &Explanation{snap: snap, profile: p, req: *req, rec: rec, weights: make([]float64, len(p.Scorers))}
	w := req.Placement.Objective.Resolve()
	for k, s := range p.Scorers {
		if v := s.Weight(req, w); v > 0 && !math.IsInf(v, 0) {
			ex.weights[k] = v
			ex.wsum += v
			ex.active = append(ex.active, k)
		}
	}
	return ex
}

// score runs the weighted scorers over cand, keeps their terms and the
// totals in ex, and returns the index in cand of the best site: the
// highest total, the lowest site ID on a tie.
func (p *Profile) score(c *Cycle, ex *Explanation, cand []int32) int {
	m := len(cand)
	ex.terms = grow(ex.terms, m*len(ex.active))
	ex.totals = grow(ex.totals, m)
	for a, k := range ex.active {
		p.Scorers[k].Score(c, cand, ex.terms[a*m:(a+1)*m])
	}
	best, bestTotal := 0, -1.0
	for j := range m {
		t := 0.0
		for a, k := range ex.active {
			t += ex.weights[k] * float64(ex.terms[a*m+j])
		}
		if ex.wsum > 0 {
			t /= ex.wsum
		}
		ex.totals[j] = float32(t)
		if t > bestTotal {
			best, bestTotal = j, t
		}
	}
	return best
}

func grow(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}

// assignment describes replica r placed on site i.
func (c *Cycle) assignment(r int, i int32, score float64, victims []string) Assignment {
	site := c.Site(i)
	a := Assignment{
		Replica:     r,
		Site:        site.ID,
		Kind:        site.Kind,
		Score:       score,
		CostPerHour: site.CostPerHour(c.req.Resources, c.req.EgressBytesPerHour),
		Victims:     victims,
	}
	if c.req.Placement.DataSource != nil {
		rtt, src := c.RTT(i)
		a.RTT, a.RTTSource = time.Duration(rtt*float64(time.Millisecond)), src
	}
	rule, _ := spec.JurisdictionAllowed(c.req.Placement.Jurisdictions, site.Jurisdiction)
	a.Residency = Residency{Jurisdiction: site.Jurisdiction, AllowedBy: rule}
	return a
}
