package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/protocol/spec"
)

// fleetGen makes random but plausible fleets and workloads from a seed.
type fleetGen struct {
	r   *rand.Rand
	now time.Time
}

func newGen(seed uint64) *fleetGen {
	return &fleetGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: t0}
}

var (
	genJuris     = []string{"DE", "FR", "US", "NO", "CH", ""}
	genProviders = []string{"aws", "gcp", "azure"}
	genRegions   = []string{"eu-central-1", "eu-west-3", "us-east-1", "europe-west3", "westeurope"}
	genZones     = []string{"a", "b", "c", "d"}
)

func (g *fleetGen) pick(list []string) string { return list[g.r.IntN(len(list))] }

func (g *fleetGen) subset(list []string) []string {
	var out []string
	for _, v := range list {
		if g.r.IntN(3) == 0 {
			out = append(out, v)
		}
	}
	return out
}

func (g *fleetGen) location() *spec.Location {
	if g.r.IntN(8) == 0 {
		return nil
	}
	return &spec.Location{Lat: 35 + g.r.Float64()*30, Lon: -10 + g.r.Float64()*40}
}

// fleet returns sites and copies whose allocations include the copies.
func (g *fleetGen) fleet(nEdge, nCloud int) ([]Site, []Placement) {
	var sites []Site
	for i := range nEdge {
		s := Site{
			ID: fmt.Sprintf("edge-%03d", i), Kind: KindEdge, Jurisdiction: g.pick(genJuris), Location: g.location(),
			Capacity: Resources{MilliCPU: 500 + g.r.Int64N(8000), Memory: (512 + g.r.Int64N(16384)) * mi},
			Labels:   map[string]string{"arch": g.pick([]string{"arm64", "amd64"})},
			BaseRTT:  time.Duration(g.r.IntN(20)) * time.Millisecond,
		}
		if g.r.IntN(5) > 0 {
			s.Labels["zone"] = g.pick(genZones)
		}
		if g.r.IntN(6) == 0 {
			s.Labels["gpu"] = "t4"
		}
		switch g.r.IntN(10) {
		case 0:
			s.Link, s.DisconnectedSince = LinkDisconnected, g.now.Add(-time.Duration(g.r.IntN(600))*time.Second)
		case 1:
			s.Link = LinkLost
		}
		if g.r.IntN(4) == 0 {
			s.Prices = Prices{CPUHour: g.r.Float64() * 0.01}
		}
		sites = append(sites, s)
	}
	for i := range nCloud {
		s := Site{
			ID: fmt.Sprintf("cloud-%02d", i), Kind: KindCloud, Provider: g.pick(genProviders), Region: g.pick(genRegions),
			Jurisdiction: g.pick(genJuris[:5]), Location: g.location(),
			Capacity: Resources{MilliCPU: 2000 + g.r.Int64N(100_000), Memory: (4 + g.r.Int64N(400)) * gi},
			Labels:   map[string]string{"tier": "cloud", "zone": g.pick(genZones)},
			Prices:   Prices{CPUHour: 0.02 + g.r.Float64()*0.05, GBHour: 0.002 + g.r.Float64()*0.006, EgressGB: 0.05 + g.r.Float64()*0.07},
			BaseRTT:  time.Duration(g.r.IntN(5)) * time.Millisecond,
		}
		if g.r.IntN(6) == 0 {
			s.CapacityErrorUntil = g.now.Add(time.Duration(g.r.IntN(1200)-600) * time.Second)
		}
		sites = append(sites, s)
	}
	// Measured RTTs between random pairs.
	for range len(sites) / 2 {
		a, b := &sites[g.r.IntN(len(sites))], sites[g.r.IntN(len(sites))].ID
		if a.RTT == nil {
			a.RTT = map[string]time.Duration{}
		}
		a.RTT[b] = time.Duration(1+g.r.IntN(80)) * time.Millisecond
	}
	// Copies that fit, plus other usage.
	var placements []Placement
	for i := range len(sites) * 2 {
		s := &sites[g.r.IntN(len(sites))]
		res := Resources{MilliCPU: 100 + g.r.Int64N(1500), Memory: (64 + g.r.Int64N(2048)) * mi}
		if s.Allocated.Add(res).MilliCPU > s.Capacity.MilliCPU || s.Allocated.Add(res).Memory > s.Capacity.Memory {
			continue
		}
		s.Allocated = s.Allocated.Add(res)
		placements = append(placements, Placement{
			ID: fmt.Sprintf("copy-%04d", i), Workload: fmt.Sprintf("bg-%d", g.r.IntN(20)), Site: s.ID,
			Resources: res, Priority: g.r.IntN(200), Started: g.now.Add(-time.Duration(g.r.IntN(10000)) * time.Second),
		})
	}
	return sites, placements
}

func (g *fleetGen) selector() *spec.NodeSelector {
	ops := []spec.Operator{spec.OpIn, spec.OpNotIn, spec.OpExists, spec.OpDoesNotExist}
	s := &spec.NodeSelector{}
	for range 1 + g.r.IntN(2) {
		key := g.pick([]string{"zone", "arch", "gpu", "tier"})
		r := spec.Requirement{Key: key, Operator: ops[g.r.IntN(len(ops))]}
		if r.Operator == spec.OpIn || r.Operator == spec.OpNotIn {
			r.Values = g.subset(append(genZones, "arm64", "amd64", "t4", "cloud"))
			if len(r.Values) == 0 {
				r.Values = []string{g.pick(genZones)}
			}
		}
		s.MatchExpressions = append(s.MatchExpressions, r)
	}
	return s
}

func (g *fleetGen) request(sites []Site) Request {
	r := request(fmt.Sprintf("w-%d", g.r.IntN(1000)))
	r.Resources = Resources{MilliCPU: 100 + g.r.Int64N(3000), Memory: (32 + g.r.Int64N(4096)) * mi}
	r.EgressBytesPerHour = g.r.Int64N(4 * gi)
	p := &r.Placement
	p.Tier = []spec.Tier{spec.TierAny, spec.TierEdge, spec.TierCloud}[g.r.IntN(3)]
	p.Replicas = 1 + g.r.IntN(4)
	if g.r.IntN(3) == 0 {
		p.NodeSelector = g.selector()
	}
	if g.r.IntN(5) == 0 {
		p.Providers = g.subset(genProviders)
	}
	if g.r.IntN(6) == 0 {
		p.Regions = g.subset(genRegions)
	}
	if g.r.IntN(2) == 0 {
		p.Jurisdictions = g.subset([]string{"DE", "FR", "US", "EU", "EEA"})
	}
	if g.r.IntN(2) == 0 {
		if g.r.IntN(3) == 0 {
			p.DataSource = &spec.DataSource{Location: &spec.Location{Lat: 40 + g.r.Float64()*20, Lon: g.r.Float64() * 20}}
		} else {
			p.DataSource = &spec.DataSource{Node: sites[g.r.IntN(len(sites))].ID}
		}
		if g.r.IntN(2) == 0 {
			p.MaxLatency = spec.Duration(time.Duration(5+g.r.IntN(60)) * time.Millisecond)
		}
	}
	switch g.r.IntN(4) {
	case 0:
		p.Objective = spec.Objective{Goal: spec.GoalLatency}
	case 1:
		p.Objective = spec.Objective{Weights: &spec.Weights{Cost: g.r.Float64(), Latency: g.r.Float64(), Balance: g.r.Float64(), Affinity: g.r.Float64()}}
	}
	if g.r.IntN(4) == 0 {
		p.Spread = &spec.Spread{TopologyKey: "zone", MaxSkew: 1 + g.r.IntN(2)}
	}
	if g.r.IntN(3) == 0 {
		p.Affinities = []spec.Affinity{{Selector: *g.selector(), Weight: g.r.IntN(201) - 100}}
	}
	if g.r.IntN(3) == 0 {
		p.Priority, p.Preemption = 1+g.r.IntN(300), g.r.IntN(2) == 0
	}
	if g.r.IntN(15) == 0 {
		p.NodeName, p.Replicas, p.Spread = sites[g.r.IntN(len(sites))].ID, 1, nil
	}
	return r
}

// refRTT computes the RTT to the data source independently of the
// engine, in milliseconds; ok is false when unknown.
func refRTT(snap *Snapshot, site *Site, ds *spec.DataSource) (float64, bool) {
	if ds.Location != nil {
		if site.Location == nil {
			return 0, false
		}
		return ms(EstimateRTT(*site.Location, *ds.Location, site.BaseRTT, 0)), true
	}
	if site.ID == ds.Node {
		return 0, true
	}
	if d, ok := site.RTT[ds.Node]; ok {
		return ms(d), true
	}
	src, ok := snap.Site(ds.Node)
	if !ok {
		return 0, false
	}
	if d, ok := src.RTT[site.ID]; ok {
		return ms(d), true
	}
	if site.Location == nil || src.Location == nil {
		return 0, false
	}
	return ms(EstimateRTT(*site.Location, *src.Location, site.BaseRTT, src.BaseRTT)), true
}

// refViolation checks every hard constraint except capacity and spread,
// written from the spec rather than the engine's index.
func refViolation(snap *Snapshot, site *Site, req *Request) string {
	p := &req.Placement
	switch {
	case site.Kind == KindEdge && site.Link != LinkOnline:
		return "link " + site.Link.String()
	case p.Tier == spec.TierEdge && site.Kind != KindEdge, p.Tier == spec.TierCloud && site.Kind != KindCloud:
		return "tier"
	case p.NodeName != "" && p.NodeName != site.ID:
		return "node name"
	case !p.NodeSelector.Matches(site.Labels):
		return "selector"
	case len(p.Providers) > 0 && !slices.Contains(p.Providers, site.Provider):
		return "provider"
	case len(p.Regions) > 0 && !slices.Contains(p.Regions, site.Region):
		return "region"
	case site.Kind == KindCloud && site.CapacityErrorUntil.After(snap.Now()):
		return "capacity error"
	}
	if _, ok := spec.JurisdictionAllowed(p.Jurisdictions, site.Jurisdiction); !ok {
		return "jurisdiction " + site.Jurisdiction
	}
	if p.MaxLatency > 0 {
		rtt, ok := refRTT(snap, site, p.DataSource)
		if !ok || rtt > ms(p.MaxLatency.Std())+0.01 {
			return fmt.Sprintf("latency %.2fms (known %v)", rtt, ok)
		}
	}
	return ""
}

func shuffled[T any](r *rand.Rand, s []T) []T {
	out := slices.Clone(s)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// comparable form of a decision.
func decisionView(d Decision) any {
	return struct {
		A []Assignment
		V []Victim
		S string
		E []SiteExplanation
	}{d.Assignments, d.Victims, d.Explanation.Summary(), d.Explanation.Sites()}
}

func TestPlaceProperties(t *testing.T) {
	const runs = 600
	complete, partial, preempting := 0, 0, 0
	for seed := range uint64(runs) {
		g := newGen(seed)
		sites, placements := g.fleet(1+g.r.IntN(60), g.r.IntN(12))
		snap := mustSnapshot(t, g.now, sites, placements...)
		req := g.request(sites)
		d := Place(snap, req)
		if d.Complete() {
			complete++
		}
		if len(d.Victims) > 0 {
			preempting++
		}
		if len(d.Assignments) > 0 && !d.Complete() {
			partial++
		}

		// No hard constraint or jurisdiction is ever violated.
		used := map[string]Resources{}
		for _, a := range d.Assignments {
			site, _ := snap.Site(a.Site)
			if why := refViolation(snap, site, &req); why != "" {
				t.Fatalf("seed %d: Place put %s on %s, which violates %s", seed, req.Workload, a.Site, why)
			}
			if rule, _ := spec.JurisdictionAllowed(req.Placement.Jurisdictions, site.Jurisdiction); a.Residency != (Residency{site.Jurisdiction, rule}) {
				t.Fatalf("seed %d: residency %+v on %s, want %s allowed by %q", seed, a.Residency, a.Site, site.Jurisdiction, rule)
			}
			if req.Placement.Spread != nil && site.Labels["zone"] == "" {
				t.Fatalf("seed %d: spread replica on %s without a zone label", seed, a.Site)
			}
			used[a.Site] = used[a.Site].Add(req.Resources)
		}
		// No site is oversubscribed, counting preempted copies.
		for _, v := range d.Victims {
			pi := slices.IndexFunc(snap.Placements(), func(p Placement) bool { return p.ID == v.Placement })
			victim := snap.Placements()[pi]
			if victim.Priority >= req.Placement.Priority || !req.Placement.Preemption {
				t.Fatalf("seed %d: preempted %+v for priority %d (preemption %v)", seed, victim, req.Placement.Priority, req.Placement.Preemption)
			}
			used[v.Site] = used[v.Site].Sub(victim.Resources)
		}
		for id, u := range used {
			site, _ := snap.Site(id)
			if after := site.Allocated.Add(u); after.MilliCPU > site.Capacity.MilliCPU || after.Memory > site.Capacity.Memory {
				t.Fatalf("seed %d: %s oversubscribed: %v allocated of %v", seed, id, after, site.Capacity)
			}
		}

		// Every site is explained exactly once.
		ex := d.Explanation.Sites()
		ids := make([]string, len(ex))
		for k, e := range ex {
			ids[k] = e.Site
			if e.Feasible == (e.Filter != "") || (!e.Feasible && e.Reason == "") {
				t.Fatalf("seed %d: inconsistent explanation %+v", seed, e)
			}
		}
		want := make([]string, len(sites))
		for k, s := range sites {
			want[k] = s.ID
		}
		slices.Sort(want)
		if diff := cmp.Diff(want, ids); diff != "" {
			t.Fatalf("seed %d: explained sites mismatch (-want +got):\n%s", seed, diff)
		}
		removed := 0
		for _, r := range d.Explanation.Reasons() {
			removed += r.Count
		}
		if removed+d.Explanation.Feasible() != len(sites) {
			t.Fatalf("seed %d: %d removed + %d feasible != %d sites", seed, removed, d.Explanation.Feasible(), len(sites))
		}

		// A single replica is placed whenever some site can take it.
		if req.Placement.Replicas == 1 && req.Placement.Spread == nil && !d.Complete() {
			for i := range sites {
				s := &sites[i]
				if refViolation(snap, s, &req) == "" && s.Free().MilliCPU >= req.Resources.MilliCPU && s.Free().Memory >= req.Resources.Memory {
					t.Fatalf("seed %d: unschedulable (%s) but %s can take it", seed, d.Explanation.Summary(), s.ID)
				}
			}
		}

		// Equal inputs give equal plans, whatever the input order.
		if diff := cmp.Diff(decisionView(d), decisionView(Place(snap, req))); diff != "" {
			t.Fatalf("seed %d: Place is not deterministic:\n%s", seed, diff)
		}
		snap2 := mustSnapshot(t, g.now, shuffled(g.r, sites), shuffled(g.r, placements)...)
		if diff := cmp.Diff(decisionView(d), decisionView(Place(snap2, req))); diff != "" {
			t.Fatalf("seed %d: Place depends on site order (-sorted +shuffled):\n%s", seed, diff)
		}
	}
	t.Logf("%d runs: %d complete, %d partial, %d preempting", runs, complete, partial, preempting)
	// The generator must exercise both outcomes to mean anything.
	if complete < runs/5 || complete > runs*4/5 {
		t.Errorf("%d of %d random placements complete; the generator is too lax or too strict", complete, runs)
	}
}

func TestReconcileProperties(t *testing.T) {
	causes := map[Cause]int{}
	for seed := range uint64(300) {
		g := newGen(seed + 10_000)
		sites, placements := g.fleet(2+g.r.IntN(40), g.r.IntN(8))
		snap := mustSnapshot(t, g.now, sites, placements...)
		// The background copies belong to these workloads, whose replica
		// slots may be full, empty, or on lost nodes.
		var reqs []Request
		for k := range 20 {
			r := g.request(sites)
			r.Workload, r.Revision = fmt.Sprintf("bg-%d", k), "r1"
			r.Disconnect = spec.Disconnect{LostAfter: spec.Duration(time.Duration(1+g.r.IntN(10)) * time.Minute), Replace: g.r.IntN(2) == 0,
				Reconcile: []spec.ReconcilePolicy{spec.ReconcileBestScore, spec.ReconcileKeepOriginal, spec.ReconcileKeepReplacement, spec.ReconcileLongestRunning}[g.r.IntN(4)]}
			reqs = append(reqs, r)
		}
		for k := range placements {
			placements[k].Revision, placements[k].Replica = "r1", g.r.IntN(3)
		}
		actions, err := Reconcile(snap, reqs, placements)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		// Apply the actions and check capacity and constraints.
		alloc := map[string]Resources{}
		for _, s := range sites {
			alloc[s.ID] = s.Allocated
		}
		byName := map[string]*Request{}
		for k := range reqs {
			byName[reqs[k].Workload] = &reqs[k]
		}
		stopped := map[string]bool{}
		for _, a := range actions {
			causes[a.Cause]++
			switch a.Kind {
			case ActionStop:
				if stopped[a.Placement] {
					t.Fatalf("seed %d: %s stopped twice", seed, a.Placement)
				}
				stopped[a.Placement] = true
				pi := slices.IndexFunc(placements, func(p Placement) bool { return p.ID == a.Placement })
				alloc[a.Site] = alloc[a.Site].Sub(placements[pi].Resources)
			case ActionPlace:
				req := byName[a.Workload]
				site, _ := snap.Site(a.Site)
				if why := refViolation(snap, site, req); why != "" {
					t.Fatalf("seed %d: %v violates %s", seed, a, why)
				}
				alloc[a.Site] = alloc[a.Site].Add(req.Resources)
				if u := alloc[a.Site]; u.MilliCPU > site.Capacity.MilliCPU || u.Memory > site.Capacity.Memory {
					t.Fatalf("seed %d: %v oversubscribes %s: %v of %v", seed, a, a.Site, u, site.Capacity)
				}
			}
		}
		again, _ := Reconcile(snap, shuffled(g.r, reqs), shuffled(g.r, placements))
		if diff := cmp.Diff(brief(actions), brief(again)); diff != "" {
			t.Fatalf("seed %d: Reconcile depends on input order:\n%s", seed, diff)
		}
	}
	t.Logf("actions by cause: %v", causes)
	for _, c := range []Cause{CausePending, CauseNodeLost, CauseReconcile, CausePolicyViolated, CauseScaleDown} {
		if causes[c] == 0 {
			t.Errorf("no %s action in 300 random fleets; the generator misses a case", c)
		}
	}
}
