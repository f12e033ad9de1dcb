package spec

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/skyedge/skyedge/protocol"
)

func validatePlacement(p *problems, pl *Placement) {
	const f = "spec.placement"
	switch pl.Tier {
	case TierEdge, TierCloud, TierAny:
	default:
		p.add(f+".tier", string(pl.Tier), "use edge, cloud or any")
	}
	if pl.Replicas < 0 || pl.Replicas > MaxReplicas {
		p.add(f+".replicas", strconv.Itoa(pl.Replicas), fmt.Sprintf("use 0 to %d", MaxReplicas))
	}
	if pl.NodeName != "" {
		validateManual(p, pl)
	}
	if pl.NodeSelector != nil {
		if pl.NodeSelector.Empty() {
			p.add(f+".nodeSelector", "", "give matchLabels or matchExpressions, or remove it")
		}
		validateSelector(p, f+".nodeSelector", pl.NodeSelector)
	}
	validateList(p, f+".providers", pl.Providers, "a provider name like aws")
	validateList(p, f+".regions", pl.Regions, "a region name like eu-central-1")
	validateJurisdictions(p, f+".jurisdictions", pl.Jurisdictions)
	if pl.DataSource != nil {
		validateDataSource(p, f+".dataSource", pl.DataSource)
	}
	if pl.MaxLatency < 0 {
		p.add(f+".maxLatency", pl.MaxLatency.String(), "use a positive duration like 50ms")
	}
	if pl.MaxLatency > 0 && pl.DataSource == nil {
		p.add(f+".maxLatency", pl.MaxLatency.String(), "needs spec.placement.dataSource: the node or location the latency is measured to")
	}
	validateObjective(p, pl)
	if s := pl.Spread; s != nil {
		if !validLabelKey(s.TopologyKey) {
			p.add(f+".spread.topologyKey", s.TopologyKey, "give the site label to spread over, like zone")
		}
		if s.MaxSkew < 1 {
			p.add(f+".spread.maxSkew", strconv.Itoa(s.MaxSkew), "use 1 or more")
		}
	}
	for i, a := range pl.Affinities {
		af := fmt.Sprintf("%s.affinities[%d]", f, i)
		if a.Weight == 0 || a.Weight < -100 || a.Weight > 100 {
			p.add(af+".weight", strconv.Itoa(a.Weight), "use -100..100 other than 0 (negative avoids)")
		}
		if a.Selector.Empty() {
			p.add(af+".selector", "", "give matchLabels or matchExpressions")
		}
		validateSelector(p, af+".selector", &a.Selector)
	}
	if pl.Priority < 0 || pl.Priority > MaxPriority {
		p.add(f+".priority", strconv.Itoa(pl.Priority), fmt.Sprintf("use 0 to %d", MaxPriority))
	}
	if pl.Preemption && pl.Priority == 0 {
		p.add(f+".preemption", "true", "has no effect at priority 0; set a priority above the work it may displace")
	}
}

// validateManual checks a placement pinned by nodeName: hard constraints
// still apply, soft policy and replicas over one do not make sense.
func validateManual(p *problems, pl *Placement) {
	const f = "spec.placement.nodeName"
	if err := protocol.ValidateNodeID(pl.NodeName); err != nil {
		p.add(f, pl.NodeName, "use a node ID: lower-case letters, digits and - _ . inside")
	}
	conflict := func(what string) {
		p.add(f, pl.NodeName, "cannot be combined with "+what+"; use nodeName alone (manual) or a selector and policy")
	}
	if pl.NodeSelector != nil {
		conflict("nodeSelector")
	}
	if pl.Replicas > 1 {
		conflict("replicas > 1")
	}
	if pl.Spread != nil {
		conflict("spread")
	}
	if len(pl.Affinities) > 0 {
		conflict("affinities")
	}
	if pl.Objective != (Objective{}) {
		conflict("objective")
	}
}

func validateSelector(p *problems, field string, s *NodeSelector) {
	if s == nil {
		return
	}
	if n := len(s.MatchLabels) + len(s.MatchExpressions); n > MaxRequirements {
		p.add(field, strconv.Itoa(n)+" requirements", fmt.Sprintf("use at most %d", MaxRequirements))
	}
	for _, k := range sortedKeys(s.MatchLabels) {
		if !validLabelKey(k) {
			p.add(field+".matchLabels", k, "invalid key: "+labelFix)
		}
		if v := s.MatchLabels[k]; !validLabelValue(v) {
			p.add(field+".matchLabels."+k, v, labelFix)
		}
	}
	for i, r := range s.MatchExpressions {
		ef := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		if !validLabelKey(r.Key) {
			p.add(ef+".key", r.Key, "give a label key: "+labelFix)
		}
		switch r.Operator {
		case OpIn, OpNotIn:
			if len(r.Values) == 0 {
				p.add(ef+".values", "", "required for "+string(r.Operator)+"; list at least one value")
			}
			for _, v := range r.Values {
				if !validLabelValue(v) {
					p.add(ef+".values", v, labelFix)
				}
			}
		case OpExists, OpDoesNotExist:
			if len(r.Values) > 0 {
				p.add(ef+".values", strings.Join(r.Values, ","), "remove them: "+string(r.Operator)+" takes no values")
			}
		default:
			p.add(ef+".operator", string(r.Operator), "use In, NotIn, Exists or DoesNotExist")
		}
	}
}

func validateList(p *problems, field string, list []string, what string) {
	seen := make(map[string]bool, len(list))
	for i, v := range list {
		ef := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case v == "" || strings.TrimSpace(v) != v:
			p.add(ef, v, "give "+what+", without spaces around it")
		case seen[v]:
			p.add(ef, v, "listed twice; remove the duplicate")
		}
		seen[v] = true
	}
}

func validateJurisdictions(p *problems, field string, list []string) {
	validateList(p, field, list, "a jurisdiction like DE or EU")
	for i, j := range list {
		if j == "" || validJurisdiction(j) {
			continue
		}
		fix := "use an ISO 3166-1 alpha-2 country code like DE, or a zone: " + strings.Join(JurisdictionZones(), ", ")
		if up := strings.ToUpper(j); validJurisdiction(up) {
			fix = "use upper case: " + up
		}
		p.add(fmt.Sprintf("%s[%d]", field, i), j, fix)
	}
}

func validateDataSource(p *problems, field string, d *DataSource) {
	switch {
	case d.Node == "" && d.Location == nil:
		p.add(field, "", "give node (a node ID) or location {lat, lon}")
	case d.Node != "" && d.Location != nil:
		p.add(field, "", "give node or location, not both")
	case d.Node != "":
		if err := protocol.ValidateNodeID(d.Node); err != nil {
			p.add(field+".node", d.Node, "use a node ID: lower-case letters, digits and - _ . inside")
		}
	default:
		validateLocation(p, field+".location", *d.Location)
	}
}

// validateLocation checks a point's range; also used by site catalogs.
func validateLocation(p *problems, field string, l Location) {
	if math.IsNaN(l.Lat) || l.Lat < -90 || l.Lat > 90 {
		p.add(field+".lat", strconv.FormatFloat(l.Lat, 'g', -1, 64), "use a latitude from -90 to 90")
	}
	if math.IsNaN(l.Lon) || l.Lon < -180 || l.Lon > 180 {
		p.add(field+".lon", strconv.FormatFloat(l.Lon, 'g', -1, 64), "use a longitude from -180 to 180")
	}
}

// ValidateLocation returns an error when l is outside the valid ranges.
func ValidateLocation(field string, l Location) error {
	var p problems
	validateLocation(&p, field, l)
	return errors.Join(p...)
}

func validateObjective(p *problems, pl *Placement) {
	const f = "spec.placement.objective"
	o := pl.Objective
	if o.Weights == nil {
		switch o.Goal {
		case "", GoalCost, GoalBalanced:
		case GoalLatency:
			if pl.DataSource == nil {
				p.add(f, string(o.Goal), "latency is measured to spec.placement.dataSource; set it")
			}
		default:
			p.add(f, string(o.Goal), "use cost, latency or balanced, or {weights: {cost: 0.7, latency: 0.3}}")
		}
		return
	}
	if o.Goal != "" {
		p.add(f, string(o.Goal), "give a goal or weights, not both")
	}
	w := *o.Weights
	terms := []struct {
		name string
		v    float64
	}{{"cost", w.Cost}, {"latency", w.Latency}, {"balance", w.Balance}, {"affinity", w.Affinity}}
	sum := 0.0
	for _, t := range terms {
		if t.v < 0 || math.IsNaN(t.v) || math.IsInf(t.v, 0) {
			p.add(f+".weights."+t.name, strconv.FormatFloat(t.v, 'g', -1, 64), "use a finite weight of 0 or more")
			continue
		}
		sum += t.v
	}
	if sum == 0 {
		p.add(f+".weights", "", "give at least one positive weight, like {cost: 1}")
	}
	if w.Latency > 0 && pl.DataSource == nil {
		p.add(f+".weights.latency", strconv.FormatFloat(w.Latency, 'g', -1, 64), "latency is measured to spec.placement.dataSource; set it")
	}
	if len(pl.Affinities) > 0 && w.Affinity == 0 {
		p.add(f+".weights.affinity", "", "the affinities would be ignored; add affinity to the weights, like affinity: 0.2")
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
