package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// LinkFilter keeps new work off edge nodes that are disconnected or lost.
type LinkFilter struct{}

// Static implements Static.
func (LinkFilter) Static() bool { return true }

// Name implements Filter.
func (LinkFilter) Name() string { return "link" }

// Filter implements Filter.
func (LinkFilter) Filter(c *Cycle, sites []int32) []int32 {
	link := c.snap.idx.link
	out := sites[:0]
	for _, i := range sites {
		if l := link[i]; l != LinkOnline {
			c.Reject(i, Verdict{Code: uint8(l)})
			continue
		}
		out = append(out, i)
	}
	return out
}

// Summary implements Filter.
func (LinkFilter) Summary(v Verdict) string {
	if LinkState(v.Code) == LinkLost {
		return "node lost"
	}
	return "node disconnected"
}

// Reason implements Filter.
func (LinkFilter) Reason(_ *Request, s *Site, v Verdict) string {
	if LinkState(v.Code) == LinkLost {
		return "node is lost; new work goes only to online nodes"
	}
	return "node is disconnected since " + s.DisconnectedSince.UTC().Format(time.RFC3339) + "; new work goes only to online nodes"
}

// TierFilter applies placement.tier.
type TierFilter struct{}

// Static implements Static.
func (TierFilter) Static() bool { return true }

// Name implements Filter.
func (TierFilter) Name() string { return "tier" }

// Standing implements Standing.
func (TierFilter) Standing() bool { return true }

// Filter implements Filter.
func (TierFilter) Filter(c *Cycle, sites []int32) []int32 {
	var want SiteKind
	switch c.req.Placement.Tier {
	case spec.TierEdge:
		want = KindEdge
	case spec.TierCloud:
		want = KindCloud
	default:
		return sites
	}
	kind := c.snap.idx.kind
	out := sites[:0]
	for _, i := range sites {
		if kind[i] != want {
			c.Reject(i, Verdict{})
			continue
		}
		out = append(out, i)
	}
	return out
}

// Summary implements Filter.
func (TierFilter) Summary(Verdict) string { return "wrong tier" }

// Reason implements Filter.
func (TierFilter) Reason(req *Request, s *Site, _ Verdict) string {
	return fmt.Sprintf("%s site; workload wants tier %s", s.Kind, req.Placement.Tier)
}

// NodeNameFilter applies a manual placement (placement.nodeName).
type NodeNameFilter struct{}

// Static implements Static.
func (NodeNameFilter) Static() bool { return true }

// Name implements Filter.
func (NodeNameFilter) Name() string { return "node-name" }

// Standing implements Standing.
func (NodeNameFilter) Standing() bool { return true }

// Filter implements Filter.
func (NodeNameFilter) Filter(c *Cycle, sites []int32) []int32 {
	name := c.req.Placement.NodeName
	if name == "" {
		return sites
	}
	want, ok := c.snap.idx.byID[name]
	if !ok {
		want = -1
	}
	out := sites[:0]
	for _, i := range sites {
		if i != want {
			c.Reject(i, Verdict{})
			continue
		}
		out = append(out, i)
	}
	return out
}

// Summary implements Filter.
func (NodeNameFilter) Summary(Verdict) string { return "not the named node" }

// Reason implements Filter.
func (NodeNameFilter) Reason(req *Request, _ *Site, _ Verdict) string {
	return "workload is pinned to " + req.Placement.NodeName
}

// SelectorFilter applies placement.nodeSelector.
type SelectorFilter struct{}

// Static implements Static.
func (SelectorFilter) Static() bool { return true }

// Name implements Filter.
func (SelectorFilter) Name() string { return "node-selector" }

// Standing implements Standing.
func (SelectorFilter) Standing() bool { return true }

// Filter implements Filter.
func (SelectorFilter) Filter(c *Cycle, sites []int32) []int32 {
	reqs := compileSelector(&c.snap.idx, c.req.Placement.NodeSelector.Requirements())
	if len(reqs) == 0 {
		return sites
	}
	out := sites[:0]
next:
	for _, i := range sites {
		for k := range reqs {
			if !reqs[k].match(i) {
				c.Reject(i, Verdict{Code: uint8(k)})
				continue next
			}
		}
		out = append(out, i)
	}
	return out
}

// Summary implements Filter.
func (SelectorFilter) Summary(Verdict) string { return "selector mismatch" }

// Reason implements Filter.
func (SelectorFilter) Reason(req *Request, s *Site, v Verdict) string {
	reqs := req.Placement.NodeSelector.Requirements()
	if int(v.Code) >= len(reqs) {
		return "does not match the node selector"
	}
	return requirementReason(reqs[v.Code], s.Labels)
}

func requirementReason(r spec.Requirement, labels map[string]string) string {
	got, ok := labels[r.Key]
	have := "label " + r.Key + " missing"
	if ok {
		have = "label " + r.Key + "=" + got
	}
	want := r.Key + " " + string(r.Operator)
	if len(r.Values) > 0 {
		want += " [" + strings.Join(r.Values, " ") + "]"
	}
	return have + ", selector needs " + want
}

// compiledReq is a requirement resolved against a snapshot's label index.
type compiledReq struct {
	vals []int32 // the key's column; nil when no site has the key
	op   spec.Operator
	in   []bool // by value ID
}

func compileSelector(x *index, reqs []spec.Requirement) []compiledReq {
	if len(reqs) == 0 {
		return nil
	}
	out := make([]compiledReq, len(reqs))
	for k, r := range reqs {
		cr := compiledReq{op: r.Operator}
		if col := x.labels[r.Key]; col != nil {
			cr.vals = col.vals
			cr.in = make([]bool, len(col.names))
			for _, v := range r.Values {
				if id, ok := col.ids[v]; ok {
					cr.in[id] = true
				}
			}
		}
		out[k] = cr
	}
	return out
}

func (r *compiledReq) match(i int32) bool {
	v := int32(-1)
	if r.vals != nil {
		v = r.vals[i]
	}
	switch r.op {
	case spec.OpIn:
		return v >= 0 && r.in[v]
	case spec.OpNotIn:
		return v < 0 || !r.in[v]
	case spec.OpExists:
		return v >= 0
	case spec.OpDoesNotExist:
		return v < 0
	}
	return false
}

// ProviderFilter applies placement.providers.
type ProviderFilter struct{}

// Static implements Static.
func (ProviderFilter) Static() bool { return true }

// Name implements Filter.
func (ProviderFilter) Name() string { return "provider" }

// Standing implements Standing.
func (ProviderFilter) Standing() bool { return true }

// Filter implements Filter.
func (ProviderFilter) Filter(c *Cycle, sites []int32) []int32 {
	return filterAttribute(c, sites, &c.snap.idx.provider, c.req.Placement.Providers)
}

// Summary implements Filter.
func (ProviderFilter) Summary(Verdict) string { return "provider not allowed" }

// Reason implements Filter.
func (ProviderFilter) Reason(req *Request, s *Site, _ Verdict) string {
	return attributeReason("provider", s.Provider, req.Placement.Providers)
}

// RegionFilter applies placement.regions.
type RegionFilter struct{}

// Static implements Static.
func (RegionFilter) Static() bool { return true }

// Name implements Filter.
func (RegionFilter) Name() string { return "region" }

// Standing implements Standing.
func (RegionFilter) Standing() bool { return true }

// Filter implements Filter.
func (RegionFilter) Filter(c *Cycle, sites []int32) []int32 {
	return filterAttribute(c, sites, &c.snap.idx.region, c.req.Placement.Regions)
}

// Summary implements Filter.
func (RegionFilter) Summary(Verdict) string { return "region not allowed" }

// Reason implements Filter.
func (RegionFilter) Reason(req *Request, s *Site, _ Verdict) string {
	return attributeReason("region", s.Region, req.Placement.Regions)
}

func filterAttribute(c *Cycle, sites []int32, a *attribute, allowed []string) []int32 {
	if len(allowed) == 0 {
		return sites
	}
	ok := make([]bool, len(a.names))
	for _, v := range allowed {
		if id, found := a.ids[v]; found {
			ok[id] = true
		}
	}
	out := sites[:0]
	for _, i := range sites {
		if !ok[a.of[i]] {
			c.Reject(i, Verdict{})
			continue
		}
		out = append(out, i)
	}
	return out
}

func attributeReason(what, have string, allowed []string) string {
	if have == "" {
		return fmt.Sprintf("site has no %s; workload allows only [%s]", what, strings.Join(allowed, " "))
	}
	return fmt.Sprintf("%s %s not in [%s]", what, have, strings.Join(allowed, " "))
}

// JurisdictionFilter applies placement.jurisdictions: data residency.
type JurisdictionFilter struct{}

// Static implements Static.
func (JurisdictionFilter) Static() bool { return true }

// Name implements Filter.
func (JurisdictionFilter) Name() string { return "jurisdiction" }

// Standing implements Standing.
func (JurisdictionFilter) Standing() bool { return true }

// Filter implements Filter.
func (JurisdictionFilter) Filter(c *Cycle, sites []int32) []int32 {
	allowed := c.req.Placement.Jurisdictions
	if len(allowed) == 0 {
		return sites
	}
	a := &c.snap.idx.juris
	ok := make([]bool, len(a.names))
	for id, name := range a.names {
		_, ok[id] = spec.JurisdictionAllowed(allowed, name)
	}
	out := sites[:0]
	for _, i := range sites {
		if !ok[a.of[i]] {
			c.Reject(i, Verdict{})
			continue
		}
		out = append(out, i)
	}
	return out
}

// Summary implements Filter.
func (JurisdictionFilter) Summary(Verdict) string { return "wrong jurisdiction" }

// Reason implements Filter.
func (JurisdictionFilter) Reason(req *Request, s *Site, _ Verdict) string {
	list := strings.Join(req.Placement.Jurisdictions, " ")
	if s.Jurisdiction == "" {
		return "site declares no jurisdiction; workload data may stay only in [" + list + "]"
	}
	return "jurisdiction " + s.Jurisdiction + " not in [" + list + "]"
}

// CapacityErrorFilter skips cloud regions during the cooldown after they
// reported a capacity error.
type CapacityErrorFilter struct{}

// Static implements Static.
func (CapacityErrorFilter) Static() bool { return true }

// Name implements Filter.
func (CapacityErrorFilter) Name() string { return "capacity-error" }

// Filter implements Filter.
func (CapacityErrorFilter) Filter(c *Cycle, sites []int32) []int32 {
	if !c.snap.idx.anyCool {
		return sites
	}
	cooling := c.snap.idx.cooling
	out := sites[:0]
	for _, i := range sites {
		if cooling[i] {
			c.Reject(i, Verdict{})
			continue
		}
		out = append(out, i)
	}
	return out
}

// Summary implements Filter.
func (CapacityErrorFilter) Summary(Verdict) string { return "capacity error cooldown" }

// Reason implements Filter.
func (CapacityErrorFilter) Reason(_ *Request, s *Site, _ Verdict) string {
	return "region reported a capacity error; skipped until " + s.CapacityErrorUntil.UTC().Format(time.RFC3339)
}
