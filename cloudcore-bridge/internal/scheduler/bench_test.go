package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

var benchCountries = []string{"DE", "FR", "NL", "PL", "IT", "ES", "SE", "NO", "GB", "US", "CA", "JP"}

// benchFleet builds a seeded synthetic fleet: nodes edge nodes spread over
// Europe and North America with zone, arch and fleet labels, 5% of them
// disconnected and 1% lost, 0-80% allocated; and regions cloud regions of
// three providers with prices, capacity and an RTT table to 50 nodes each.
// It returns the snapshot and a mix of 64 workloads.
func benchFleet(tb testing.TB, nodes, regions int, seed uint64) (*Snapshot, []Request) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	sites := make([]Site, 0, nodes+regions)
	for i := range nodes {
		capCPU, capMem := int64(1000+r.IntN(8)*1000), int64(1+r.IntN(16))*gi
		s := Site{
			ID:           fmt.Sprintf("node-%06d", i),
			Kind:         KindEdge,
			Jurisdiction: benchCountries[r.IntN(len(benchCountries))],
			Location:     &spec.Location{Lat: 35 + r.Float64()*25, Lon: -100 + r.Float64()*125},
			Capacity:     Resources{capCPU, capMem},
			Allocated:    Resources{capCPU * int64(r.IntN(80)) / 100, capMem * int64(r.IntN(80)) / 100},
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
			s.Link, s.DisconnectedSince = LinkDisconnected, t0.Add(-time.Duration(r.IntN(3600))*time.Second)
		case x < 6:
			s.Link = LinkLost
		}
		if r.IntN(10) == 0 {
			s.Labels["gpu"] = "t4"
		}
		sites = append(sites, s)
	}
	providers := []string{"aws", "gcp", "azure"}
	for i := range regions {
		s := Site{
			ID:           fmt.Sprintf("%s-region-%03d", providers[i%3], i),
			Kind:         KindCloud,
			Provider:     providers[i%3],
			Region:       fmt.Sprintf("region-%03d", i),
			Jurisdiction: benchCountries[r.IntN(len(benchCountries))],
			Location:     &spec.Location{Lat: 35 + r.Float64()*25, Lon: -100 + r.Float64()*125},
			Capacity:     Resources{2_000_000, 8192 * gi},
			Prices:       Prices{CPUHour: 0.03 + r.Float64()*0.03, GBHour: 0.003 + r.Float64()*0.004, EgressGB: 0.05 + r.Float64()*0.07},
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
	snap := mustSnapshot(tb, t0, sites)

	reqs := make([]Request, 64)
	for k := range reqs {
		req := request(fmt.Sprintf("bench-%02d", k), resources(int64(100+r.IntN(1000)), int64(64+r.IntN(1024))*mi))
		req.EgressBytesPerHour = int64(r.IntN(4)) * gi
		p := &req.Placement
		p.Tier = []spec.Tier{spec.TierAny, spec.TierAny, spec.TierEdge, spec.TierCloud}[r.IntN(4)]
		p.Replicas = 1 + r.IntN(3)
		switch r.IntN(4) {
		case 0:
			p.Jurisdictions = []string{"EU"}
		case 1:
			p.Jurisdictions = []string{benchCountries[r.IntN(len(benchCountries))]}
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
	return snap, reqs
}

// BenchmarkPlace measures Place on a synthetic fleet with 100 cloud
// regions. Each call is timed on its own for the percentiles:
// decisions/s counts Place calls, placements/s the replicas they placed
// (1 to 3 per workload), p50-ms and p99-ms the time of one call.
//
//	go test ./cloudcore-bridge/internal/scheduler -run '^$' -bench Place -benchtime 2000x
func BenchmarkPlace(b *testing.B) {
	for _, nodes := range []int{500, 5000, 50000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			snap, reqs := benchFleet(b, nodes, 100, 1)
			lat := make([]time.Duration, 0, b.N)
			replicas := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				d := Place(snap, reqs[i%len(reqs)])
				lat = append(lat, time.Since(start))
				replicas += len(d.Assignments)
			}
			b.StopTimer()
			if replicas == 0 {
				b.Fatal("nothing placed")
			}
			var total time.Duration
			for _, l := range lat {
				total += l
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(float64(len(lat))/total.Seconds(), "decisions/s")
			b.ReportMetric(float64(replicas)/total.Seconds(), "placements/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
