package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Explanation says, for every site of the snapshot, why it was or was not
// chosen as the placement last evaluated it (for the last replica placed,
// or the first that could not be): the filter that removed it with the
// reason, or its score broken down by term. It is recorded as a few bytes
// per site and turned into text only when read.
type Explanation struct {
	snap     *Snapshot
	profile  *Profile
	req      Request
	rec      []siteRecord
	feasible []int32   // ascending; the sites scored in the last round
	terms    []float32 // by active scorer: terms[a*len(feasible)+j]
	totals   []float32
	weights  []float64 // by scorer
	active   []int     // the scorers with a positive weight
	wsum     float64
	placed   map[string]int
	wanted   int
}

// ReasonCount is how many sites one filter removed for one reason.
type ReasonCount struct {
	Filter string
	Reason string // the verdict's summary: "over CPU"
	Count  int
}

// TermScore is one scorer's part of a site's score.
type TermScore struct {
	Name   string
	Score  float64 // 0..100
	Weight float64 // share of the total, 0..1
}

// SiteExplanation is the outcome for one site.
type SiteExplanation struct {
	Site     string
	Feasible bool
	// Filter, Summary and Reason say why an infeasible site was removed.
	Filter  string
	Summary string
	Reason  string
	// Score and Terms rate a feasible site.
	Score float64
	Terms []TermScore
	// Replicas is how many replicas the decision put on the site.
	Replicas int
	// Preempted reports that the site was chosen by evicting
	// lower-priority copies.
	Preempted bool
}

// String implements fmt.Stringer.
func (s SiteExplanation) String() string {
	var b strings.Builder
	b.WriteString(s.Site)
	b.WriteString(": ")
	switch {
	case !s.Feasible:
		fmt.Fprintf(&b, "removed by %s: %s", s.Filter, s.Reason)
	case s.Preempted:
		b.WriteString("chosen by preempting lower-priority work")
	default:
		fmt.Fprintf(&b, "score %.1f", s.Score)
		for k, t := range s.Terms {
			sep := " = "
			if k > 0 {
				sep = " + "
			}
			fmt.Fprintf(&b, "%s%s %.0f×%.2f", sep, t.Name, t.Score, t.Weight)
		}
	}
	if s.Replicas > 0 {
		fmt.Fprintf(&b, " [%d replica(s) placed]", s.Replicas)
	}
	return b.String()
}

// Request returns the request the explanation is about, so that a reader
// can price or describe any site for it.
func (e *Explanation) Request() Request { return e.req }

// Len is the number of sites explained: every site of the snapshot.
func (e *Explanation) Len() int { return len(e.rec) }

// Feasible is the number of sites that passed every filter in the last
// round (a site chosen by preemption counts).
func (e *Explanation) Feasible() int {
	n := 0
	for _, r := range e.rec {
		if r.filter == 0 {
			n++
		}
	}
	return n
}

// Reasons counts the removed sites by filter and reason, the most
// frequent first, then by reason.
func (e *Explanation) Reasons() []ReasonCount {
	type key struct {
		filter uint8
		sum    string
	}
	counts := map[key]int{}
	for _, r := range e.rec {
		if r.filter == 0 {
			continue
		}
		f := e.profile.Filters[r.filter-1]
		counts[key{r.filter, f.Summary(r.verdict())}]++
	}
	out := make([]ReasonCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, ReasonCount{Filter: e.profile.Filters[k.filter-1].Name(), Reason: k.sum, Count: n})
	}
	slices.SortFunc(out, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Filter, b.Filter))
	})
	return out
}

// Summary reads like "0/5100 sites: 4000 wrong tier, 12 over CPU, 40 wrong
// jurisdiction", sorted by count then reason: the feasible sites over all
// sites in the last round, then why the others were removed.
func (e *Explanation) Summary() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Feasible()))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(len(e.rec)))
	b.WriteString(" sites")
	for k, r := range e.Reasons() {
		if k == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(r.Count))
		b.WriteByte(' ')
		b.WriteString(r.Reason)
	}
	return b.String()
}

// Sites explains every site, in site ID order.
func (e *Explanation) Sites() []SiteExplanation {
	out := make([]SiteExplanation, len(e.rec))
	for i := range e.rec {
		out[i] = e.site(int32(i))
	}
	return out
}

// Site explains the site with id.
func (e *Explanation) Site(id string) (SiteExplanation, bool) {
	i, ok := e.snap.idx.byID[id]
	if !ok {
		return SiteExplanation{}, false
	}
	return e.site(i), true
}

func (e *Explanation) site(i int32) SiteExplanation {
	site := &e.snap.sites[i]
	r := e.rec[i]
	out := SiteExplanation{Site: site.ID, Replicas: e.placed[site.ID]}
	if r.filter > 0 {
		f := e.profile.Filters[r.filter-1]
		v := r.verdict()
		out.Filter, out.Summary, out.Reason = f.Name(), f.Summary(v), f.Reason(&e.req, site, v)
		return out
	}
	out.Feasible = true
	if r.code == recordPreempt {
		out.Preempted = true
		return out
	}
	j, found := slices.BinarySearch(e.feasible, i)
	if !found || len(e.totals) == 0 {
		return out
	}
	m := len(e.feasible)
	out.Score = float64(e.totals[j])
	for a, k := range e.active {
		out.Terms = append(out.Terms, TermScore{
			Name: e.profile.Scorers[k].Name(), Score: float64(e.terms[a*m+j]), Weight: e.weights[k] / e.wsum,
		})
	}
	return out
}

// String is the summary followed by the feasible sites, best first (at
// most ten).
func (e *Explanation) String() string {
	var b strings.Builder
	b.WriteString(e.Summary())
	order := make([]int, len(e.feasible))
	for k := range order {
		order[k] = k
	}
	if len(e.totals) == len(e.feasible) {
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(e.totals[b], e.totals[a]) })
	}
	shown := 0
	for _, j := range order {
		if e.rec[e.feasible[j]].filter != 0 {
			continue // removed after it was scored
		}
		if shown++; shown > 10 {
			fmt.Fprintf(&b, "\n  ... %d more feasible", e.Feasible()-10)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(e.site(e.feasible[j]).String())
	}
	return b.String()
}
