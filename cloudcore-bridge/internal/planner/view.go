package planner

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
)

// filterRank orders the filters of the default profile: rejected
// candidates are listed by the filter that removed them, the filter that
// came last in the pipeline first, since those sites came closest.
var filterRank = func() map[string]int {
	fs := scheduler.DefaultProfile().Filters
	m := make(map[string]int, len(fs))
	for k, f := range fs {
		m[f.Name()] = k + 1
	}
	return m
}()

// PlanView describes decision d, taken on snap at now for workload: the
// site chosen for each replica, the summary, a verdict for every site
// and the total cost. Error is set when not every replica was placed.
func PlanView(workload string, d scheduler.Decision, snap *scheduler.Snapshot, now time.Time) apiv1.Plan {
	p := apiv1.Plan{Workload: workload, DecidedAt: now, Wanted: d.Wanted, Chosen: []apiv1.PlannedReplica{}}
	for _, a := range d.Assignments {
		p.Chosen = append(p.Chosen, planned(a.Replica, &a))
		p.CostPerHour += a.CostPerHour
	}
	p.CostPerHour = roundCost(p.CostPerHour)
	if d.Explanation != nil {
		p.Summary = d.Explanation.Summary()
		p.Candidates = candidates(d.Explanation, snap, d.Sites())
		if !d.Complete() {
			p.Error = d.Err().Error()
		}
	} else {
		p.Candidates = []apiv1.Candidate{}
		if !d.Complete() {
			p.Error = fmt.Sprintf("workload %s: placed %d/%d replicas", workload, len(d.Assignments), d.Wanted)
		}
	}
	return p
}

// ExplainView describes what one Reconcile pass decided for req's
// workload, from the place and unschedulable actions among actions (those
// of other workloads, and stops, are skipped): a chosen site per slot
// placed, the verdicts of the last placement evaluated, and the reasons of
// the slots that found no site in Error. Slots whose copies were left as
// they are do not appear in Chosen.
func ExplainView(req *scheduler.Request, actions []scheduler.Action, snap *scheduler.Snapshot, now time.Time) apiv1.Plan {
	p := apiv1.Plan{Workload: req.Workload, DecidedAt: now, Wanted: req.Replicas(), Chosen: []apiv1.PlannedReplica{},
		Candidates: []apiv1.Candidate{}}
	var last *scheduler.Explanation
	var chosen, problems []string
	for k := range actions {
		a := &actions[k]
		if a.Workload != req.Workload {
			continue
		}
		switch a.Kind {
		case scheduler.ActionPlace:
			if a.Assignment != nil {
				p.Chosen = append(p.Chosen, planned(a.Replica, a.Assignment))
				p.CostPerHour += a.Assignment.CostPerHour
				chosen = append(chosen, a.Site)
			}
		case scheduler.ActionUnschedulable:
			problems = append(problems, fmt.Sprintf("replica %d: %s", a.Replica, a.Detail))
		default:
			continue
		}
		if a.Explanation != nil {
			last = a.Explanation
		}
	}
	p.CostPerHour = roundCost(p.CostPerHour)
	slices.SortStableFunc(p.Chosen, func(a, b apiv1.PlannedReplica) int { return cmp.Compare(a.Slot, b.Slot) })
	if last != nil {
		p.Summary = last.Summary()
		p.Candidates = candidates(last, snap, chosen)
	}
	p.Error = strings.Join(problems, "; ")
	return p
}

func planned(slot int, a *scheduler.Assignment) apiv1.PlannedReplica {
	r := apiv1.PlannedReplica{
		Slot:         slot,
		Site:         a.Site,
		Kind:         a.Kind.String(),
		Score:        round2(a.Score),
		CostPerHour:  roundCost(a.CostPerHour),
		Jurisdiction: a.Residency.Jurisdiction,
		Residency:    ResidencyRule(a.Residency),
		Victims:      slices.Clone(a.Victims),
	}
	if a.RTTSource != scheduler.RTTUnknown {
		r.RTTMillis = round2(float64(a.RTT) / float64(time.Millisecond))
		r.RTTSource = a.RTTSource.String()
	}
	return r
}

// ResidencyRule says in a few words why a site's jurisdiction was allowed:
// "DE" when placement.jurisdictions names it, "DE in EU" when a zone of
// the list contains it, "unrestricted" when the workload sets none.
func ResidencyRule(r scheduler.Residency) string {
	switch r.AllowedBy {
	case "":
		return "unrestricted"
	case r.Jurisdiction:
		return r.Jurisdiction
	}
	return r.Jurisdiction + " in " + r.AllowedBy
}

// candidates lists every site of ex: the chosen ones, then the feasible
// ones by score (best first), then the rejected ones grouped by filter.
func candidates(ex *scheduler.Explanation, snap *scheduler.Snapshot, chosen []string) []apiv1.Candidate {
	req := ex.Request()
	sites := ex.Sites()
	out := make([]apiv1.Candidate, 0, len(sites))
	for _, se := range sites {
		c := apiv1.Candidate{
			Site:     se.Site,
			Feasible: se.Feasible,
			Filter:   se.Filter,
			Reason:   se.Reason,
			Chosen:   slices.Contains(chosen, se.Site),
		}
		if se.Feasible {
			c.Score = round2(se.Score)
			if len(se.Terms) > 0 {
				c.Terms = make(map[string]float64, len(se.Terms))
				for _, t := range se.Terms {
					c.Terms[t.Name] = round2(t.Score)
				}
			}
			if se.Preempted {
				c.Reason = "chosen by preempting lower-priority work"
			}
		}
		if s, ok := snap.Site(se.Site); ok {
			c.Kind = s.Kind.String()
			c.CostPerHour = roundCost(s.CostPerHour(req.Resources, req.EgressBytesPerHour))
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b apiv1.Candidate) int {
		return cmp.Or(
			cmpTrueFirst(a.Chosen, b.Chosen),
			cmpTrueFirst(a.Feasible, b.Feasible),
			cmp.Compare(b.Score, a.Score),
			cmp.Compare(filterRank[b.Filter], filterRank[a.Filter]),
			cmp.Compare(a.Filter, b.Filter),
			cmp.Compare(a.Site, b.Site),
		)
	})
	return out
}

func cmpTrueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// roundCost rounds dollars to a millionth: finer than any price list,
// and free of float noise in the JSON.
func roundCost(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// SiteViews lists the sites of snap for the API, edge nodes then cloud
// regions, each sorted by ID, with the number of copies placed on each.
func SiteViews(snap *scheduler.Snapshot, copies []scheduler.Placement) apiv1.SiteList {
	count := make(map[string]int)
	for _, c := range copies {
		count[c.Site]++
	}
	sites := snap.Sites()
	items := make([]apiv1.Site, 0, len(sites))
	for k := range sites {
		s := &sites[k]
		v := apiv1.Site{
			ID:                s.ID,
			Kind:              s.Kind.String(),
			Labels:            s.Labels,
			Provider:          s.Provider,
			Region:            s.Region,
			Jurisdiction:      s.Jurisdiction,
			Link:              s.Link.String(),
			CapacityMilliCPU:  s.Capacity.MilliCPU,
			CapacityMemory:    s.Capacity.Memory,
			AllocatedMilliCPU: s.Allocated.MilliCPU,
			AllocatedMemory:   s.Allocated.Memory,
			CPUHour:           s.Prices.CPUHour,
			GBHour:            s.Prices.GBHour,
			EgressGB:          s.Prices.EgressGB,
			Replicas:          count[s.ID],
		}
		if s.Location != nil {
			loc := *s.Location
			v.Location = &loc
		}
		if s.Kind == scheduler.KindCloud {
			v.Link = scheduler.LinkOnline.String()
			if s.CapacityErrorUntil.After(snap.Now()) {
				v.CapacityErrorUntil = s.CapacityErrorUntil
			}
		} else {
			v.Problems = LabelProblems(s.Labels)
		}
		items = append(items, v)
	}
	slices.SortStableFunc(items, func(a, b apiv1.Site) int {
		return cmp.Or(cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)), cmp.Compare(a.ID, b.ID))
	})
	return apiv1.SiteList{Items: items}
}

func kindOrder(kind string) int {
	if kind == scheduler.KindEdge.String() {
		return 0
	}
	return 1
}

// AuditRecord is the residency audit's record of action a, taken at now
// for req's workload (req may be nil for a workload that no longer
// exists). A place that takes over from another copy is recorded as
// "replace". Only a place carries the site's kind, jurisdiction, the rule
// that allowed it and the cost; Revision is the workload's current one.
func AuditRecord(a scheduler.Action, req *scheduler.Request, now time.Time) apiv1.PlacementRecord {
	rec := apiv1.PlacementRecord{
		At:       now,
		Workload: a.Workload,
		Slot:     a.Replica,
		Site:     a.Site,
		Action:   a.Kind.String(),
		Cause:    string(a.Cause),
	}
	if a.Kind == scheduler.ActionPlace && a.Replaces != "" {
		rec.Action = "replace"
	}
	if req != nil {
		rec.Revision = req.Revision
		rec.Allowed = slices.Clone(req.Placement.Jurisdictions)
	}
	if as := a.Assignment; as != nil {
		rec.Kind = as.Kind.String()
		rec.Jurisdiction = as.Residency.Jurisdiction
		rec.Rule = ResidencyRule(as.Residency)
		rec.CostPerHour = roundCost(as.CostPerHour)
	}
	return rec
}
