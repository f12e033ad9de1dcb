package scheduler

import (
	"testing"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

type siteOpt func(*Site)

func edge(id string, opts ...siteOpt) Site {
	s := Site{ID: id, Kind: KindEdge, Capacity: Resources{MilliCPU: 4000, Memory: 8 * gi}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func cloud(id, provider, region, juris string, opts ...siteOpt) Site {
	s := Site{
		ID: id, Kind: KindCloud, Provider: provider, Region: region, Jurisdiction: juris,
		Capacity: Resources{MilliCPU: 1_000_000, Memory: 4096 * gi},
		Prices:   Prices{CPUHour: 0.04, GBHour: 0.005, EgressGB: 0.09},
		Labels:   map[string]string{"tier": "cloud"},
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func labels(kv ...string) siteOpt {
	return func(s *Site) {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Labels[kv[i]] = kv[i+1]
		}
	}
}

func at(lat, lon float64) siteOpt {
	return func(s *Site) { s.Location = &spec.Location{Lat: lat, Lon: lon} }
}

func jurisdiction(j string) siteOpt { return func(s *Site) { s.Jurisdiction = j } }

func capacity(cpu, mem int64) siteOpt { return func(s *Site) { s.Capacity = Resources{cpu, mem} } }

func allocated(cpu, mem int64) siteOpt { return func(s *Site) { s.Allocated = Resources{cpu, mem} } }

func prices(cpu, gb, egress float64) siteOpt {
	return func(s *Site) { s.Prices = Prices{CPUHour: cpu, GBHour: gb, EgressGB: egress} }
}

func rtt(node string, d time.Duration) siteOpt {
	return func(s *Site) {
		if s.RTT == nil {
			s.RTT = map[string]time.Duration{}
		}
		s.RTT[node] = d
	}
}

func disconnected(since time.Time) siteOpt {
	return func(s *Site) { s.Link, s.DisconnectedSince = LinkDisconnected, since }
}

func lost() siteOpt { return func(s *Site) { s.Link = LinkLost } }

type reqOpt func(*Request)

func request(name string, opts ...reqOpt) Request {
	r := Request{
		Workload:   name,
		Revision:   "r1",
		Resources:  Resources{MilliCPU: 500, Memory: 256 * mi},
		Placement:  spec.Placement{Tier: spec.TierAny, Replicas: 1},
		Disconnect: spec.Disconnect{LostAfter: spec.Duration(5 * time.Minute), Reconcile: spec.ReconcileBestScore},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func placement(f func(*spec.Placement)) reqOpt { return func(r *Request) { f(&r.Placement) } }

func resources(cpu, mem int64) reqOpt { return func(r *Request) { r.Resources = Resources{cpu, mem} } }

func mustSnapshot(t testing.TB, now time.Time, sites []Site, placements ...Placement) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(now, sites, placements)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

// runFilter runs one filter over every site and returns the IDs kept and,
// for each removed site, "summary: reason".
func runFilter(f Filter, snap *Snapshot, req Request) (kept []string, removed map[string]string) {
	c := &Cycle{snap: snap, st: newState(snap), req: &req, rec: make([]siteRecord, snap.Len())}
	out := f.Filter(c, append([]int32(nil), snap.idx.all...))
	removed = map[string]string{}
	keep := map[int32]bool{}
	for _, i := range out {
		kept = append(kept, snap.sites[i].ID)
		keep[i] = true
	}
	for i := range snap.sites {
		if keep[int32(i)] {
			continue
		}
		r := c.rec[i]
		if r.filter != 1 {
			removed[snap.sites[i].ID] = "NOT RECORDED"
			continue
		}
		v := r.verdict()
		removed[snap.sites[i].ID] = f.Summary(v) + ": " + f.Reason(&req, &snap.sites[i], v)
	}
	return kept, removed
}

// runScorer runs one scorer over every site and returns the scores by ID.
func runScorer(s Scorer, snap *Snapshot, req Request) map[string]float32 {
	c := &Cycle{snap: snap, st: newState(snap), req: &req, rec: make([]siteRecord, snap.Len())}
	out := make([]float32, snap.Len())
	s.Score(c, snap.idx.all, out)
	m := map[string]float32{}
	for i, v := range out {
		m[snap.sites[i].ID] = v
	}
	return m
}
