// Package schedbench is the synthetic fleet the placement engine is
// measured on: BenchmarkPlace here and `skyedge bench schedule`, which
// links it through Engine (the engine's own types are internal to the
// bridge).
package schedbench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/protocol/spec"
)

// t0 is the fleet's "now": disconnections and capacity errors are
// relative to it.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

var countries = []string{"DE", "FR", "NL", "PL", "IT", "ES", "SE", "NO", "GB", "US", "CA", "JP"}

// Fleet builds a seeded synthetic fleet: nodes edge nodes spread over
// Europe and North America with zone, arch and fleet labels, 5% of them
// disconnected and 1% lost, 0-80% allocated; and regions cloud regions of
// three providers with prices, capacity and an RTT table to 50 nodes each.
// It returns the snapshot and a mix of 64 workloads. Equal arguments
// give equal fleets.
func Fleet(nodes, regions int, seed uint64) (*scheduler.Snapshot, []scheduler.Request, error) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	sites := make([]scheduler.Site, 0, nodes+regions)
	for i := range nodes {
		capCPU, capMem := int64(1000+r.IntN(8)*1000), int64(1+r.IntN(16))*gi
		s := scheduler.Site{
			ID:           fmt.Sprintf("node-%06d", i),
			Kind:         scheduler.KindEdge,
			Jurisdiction: countries[r.IntN(len(countries))],
			Location:     &spec.Location{Lat: 35 + r.Float64()*25, Lon: -100 + r.Float64()*125},
			Capacity:     scheduler.Resources{MilliCPU: capCPU, Memory: capMem},
			Allocated:    scheduler.Resources{MilliCPU: capCPU * int64(r.IntN(80)) / 100, Memory: capMem * int64(r.IntN(80)) / 100},
			BaseRTT:      time.Duration(5+r.IntN(40)) * time.Millisecond,
			Labels: map[string]string{
				"zone":  fmt.Sprintf("z%d", r.IntN(10)),
				"arch":  []string{"arm64", "amd64", "armv7"}[r.IntN(3)],
				"fleet": []string{"vehicle", "factory", "satellite", "store"}[r.IntN(4)],
				"tier":  "edge",
			},
		}
		switch x := r.IntN(100); {
		case x < 5:
			s.Link, s.DisconnectedSince = scheduler.LinkDisconnected, t0.Add(-time.Duration(r.IntN(3600))*time.Second)
		case x < 6:
			s.Link = scheduler.LinkLost
		}
		if r.IntN(10) == 0 {
			s.Labels["gpu"] = "t4"
		}
		sites = append(sites, s)
	}
	providers := []string{"aws", "gcp", "azure"}
	for i := range regions {
		s := scheduler.Site{
			ID:           fmt.Sprintf("%s-region-%03d", providers[i%3], i),
			Kind:         scheduler.KindCloud,
			Provider:     providers[i%3],
			Region:       fmt.Sprintf("region-%03d", i),
			Jurisdiction: countries[r.IntN(len(countries))],
			Location:     &spec.Location{Lat: 35 + r.Float64()*25, Lon: -100 + r.Float64()*125},
			Capacity:     scheduler.Resources{MilliCPU: 2_000_000, Memory: 8192 * gi},
			Prices:       scheduler.Prices{CPUHour: 0.03 + r.Float64()*0.03, GBHour: 0.003 + r.Float64()*0.004, EgressGB: 0.05 + r.Float64()*0.07},
			BaseRTT:      2 * time.Millisecond,
			Labels:       map[string]string{"tier": "cloud", "zone": fmt.Sprintf("z%d", r.IntN(10))},
			RTT:          map[string]time.Duration{},
		}
		for range 50 {
			s.RTT[fmt.Sprintf("node-%06d", r.IntN(nodes))] = time.Duration(5+r.IntN(100)) * time.Millisecond
		}
		if r.IntN(20) == 0 {
			s.CapacityErrorUntil = t0.Add(10 * time.Minute)
		}
		sites = append(sites, s)
	}
	snap, err := scheduler.NewSnapshot(t0, sites, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("bench fleet: %w", err)
	}

	reqs := make([]scheduler.Request, 64)
	for k := range reqs {
		req := scheduler.Request{
			Workload:   fmt.Sprintf("bench-%02d", k),
			Revision:   "r1",
			Resources:  scheduler.Resources{MilliCPU: int64(100 + r.IntN(1000)), Memory: int64(64+r.IntN(1024)) * mi},
			Placement:  spec.Placement{Tier: spec.TierAny, Replicas: 1},
			Disconnect: spec.Disconnect{LostAfter: spec.Duration(5 * time.Minute), Reconcile: spec.ReconcileBestScore},
		}
		req.EgressBytesPerHour = int64(r.IntN(4)) * gi
		p := &req.Placement
		p.Tier = []spec.Tier{spec.TierAny, spec.TierAny, spec.TierEdge, spec.TierCloud}[r.IntN(4)]
		p.Replicas = 1 + r.IntN(3)
		switch r.IntN(4) {
		case 0:
			p.Jurisdictions = []string{"EU"}
		case 1:
			p.Jurisdictions = []string{countries[r.IntN(len(countries))]}
		}
		if r.IntN(3) == 0 {
			p.NodeSelector = &spec.NodeSelector{MatchLabels: map[string]string{"fleet": []string{"vehicle", "factory", "satellite", "store"}[r.IntN(4)]}}
		}
		if r.IntN(3) == 0 {
			p.DataSource = &spec.DataSource{Node: fmt.Sprintf("node-%06d", r.IntN(nodes))}
			p.MaxLatency = spec.Duration(time.Duration(20+r.IntN(80)) * time.Millisecond)
			p.Objective = spec.Objective{Goal: spec.GoalLatency}
		}
		if r.IntN(8) == 0 {
			p.Spread = &spec.Spread{TopologyKey: "zone", MaxSkew: 1}
		}
		if r.IntN(4) == 0 {
			p.Affinities = []spec.Affinity{{Selector: spec.NodeSelector{MatchLabels: map[string]string{"arch": "arm64"}}, Weight: 40}}
		}
		reqs[k] = req
	}
	return snap, reqs, nil
}

// Engine places workloads of the synthetic fleet with the scheduler's
// default profile; it implements internal/bench.PlacementEngine.
type Engine struct{}

// Fleet builds a fleet of nodes edge nodes and regions cloud regions and
// returns place, which places the i-th workload of the mix (cycling) and
// returns the number of replicas placed.
func (Engine) Fleet(nodes, regions int, seed uint64) (place func(i int) int, err error) {
	snap, reqs, err := Fleet(nodes, regions, seed)
	if err != nil {
		return nil, err
	}
	return func(i int) int {
		return len(scheduler.Place(snap, reqs[i%len(reqs)]).Assignments)
	}, nil
}
