package scheduler

import (
	"math"
	"testing"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

func TestScorers(t *testing.T) {
	withSource := placement(func(p *spec.Placement) { p.DataSource = &spec.DataSource{Node: "src"} })
	tests := []struct {
		name   string
		scorer Scorer
		sites  []Site
		req    Request
		want   map[string]float32
	}{
		{
			name: "cost: cheapest 100, dearest 0, egress counted", scorer: CostScorer{},
			sites: []Site{
				cloud("cheap", "p", "r", "DE", prices(0.03, 0.004, 0.05)),
				cloud("mid", "p", "r", "DE", prices(0.04, 0.005, 0.09)),
				cloud("dear", "p", "r", "DE", prices(0.06, 0.008, 0.12)),
				edge("free"),
			},
			req: request("w", resources(1000, gi), func(r *Request) { r.EgressBytesPerHour = gi }),
			// $/h: cheap 0.084, mid 0.135, dear 0.188, free 0
			want: map[string]float32{"free": 100, "cheap": 100 * (0.188 - 0.084) / 0.188, "mid": 100 * (0.188 - 0.135) / 0.188, "dear": 0},
		},
		{
			name: "cost: all equal score 100", scorer: CostScorer{},
			sites: []Site{edge("a"), edge("b")}, req: request("w"),
			want: map[string]float32{"a": 100, "b": 100},
		},
		{
			name: "latency: nearest 100, farthest 0, unknown 0", scorer: LatencyScorer{},
			sites: []Site{
				edge("src"),
				cloud("r10", "p", "r", "DE", rtt("src", 10*time.Millisecond)),
				cloud("r20", "p", "r", "DE", rtt("src", 20*time.Millisecond)),
				cloud("r30", "p", "r", "DE", rtt("src", 30*time.Millisecond)),
				edge("nowhere"),
			},
			req:  request("w", withSource),
			want: map[string]float32{"src": 100, "r10": 100 * 20.0 / 30, "r20": 100 * 10.0 / 30, "r30": 0, "nowhere": 0},
		},
		{
			name: "balance: least allocated after placing", scorer: BalanceScorer{},
			sites: []Site{edge("empty"), edge("half", allocated(2000, 4*gi)), edge("full", allocated(4000, 8*gi)), edge("zero", capacity(0, 0))},
			req:   request("w"),
			want: map[string]float32{
				"empty": 50 * (3500.0/4000 + float32(8*gi-256*mi)/float32(8*gi)),
				"half":  50 * (1500.0/4000 + float32(4*gi-256*mi)/float32(8*gi)),
				"full":  0, "zero": 0,
			},
		},
		{
			name: "affinity: weights scaled from worst to best", scorer: AffinityScorer{},
			sites: []Site{
				edge("a", labels("zone", "a")),
				edge("a-gpu", labels("zone", "a", "gpu", "t4")),
				edge("b", labels("zone", "b")),
				edge("b-gpu", labels("zone", "b", "gpu", "t4")),
			},
			req: request("w", placement(func(p *spec.Placement) {
				p.Affinities = []spec.Affinity{
					{Selector: spec.NodeSelector{MatchLabels: map[string]string{"zone": "a"}}, Weight: 50},
					{Selector: spec.NodeSelector{MatchExpressions: []spec.Requirement{{Key: "gpu", Operator: spec.OpExists}}}, Weight: -100},
				}
			})),
			want: map[string]float32{"a": 100, "a-gpu": 100 * 50.0 / 150, "b": 100 * 100.0 / 150, "b-gpu": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runScorer(tt.scorer, mustSnapshot(t, t0, tt.sites), tt.req)
			for id, want := range tt.want {
				if math.Abs(float64(got[id]-want)) > 0.01 {
					t.Errorf("%s.Score(%s) = %.3f, want %.3f", tt.scorer.Name(), id, got[id], want)
				}
			}
		})
	}
}

func TestScorerWeights(t *testing.T) {
	w := spec.Weights{Cost: 1, Latency: 2, Balance: 3, Affinity: 4}
	plain := request("w")
	rich := request("w", placement(func(p *spec.Placement) {
		p.DataSource = &spec.DataSource{Node: "n"}
		p.Affinities = []spec.Affinity{{Selector: spec.NodeSelector{MatchLabels: map[string]string{"a": "b"}}, Weight: 1}}
	}))
	tests := []struct {
		scorer    Scorer
		plain     float64
		withExtra float64
	}{
		{CostScorer{}, 1, 1},
		{LatencyScorer{}, 0, 2}, // only with a data source
		{BalanceScorer{}, 3, 3},
		{AffinityScorer{}, 0, 4}, // only with affinities
	}
	for _, tt := range tests {
		if got := tt.scorer.Weight(&plain, w); got != tt.plain {
			t.Errorf("%s.Weight(plain) = %v, want %v", tt.scorer.Name(), got, tt.plain)
		}
		if got := tt.scorer.Weight(&rich, w); got != tt.withExtra {
			t.Errorf("%s.Weight(with data source and affinities) = %v, want %v", tt.scorer.Name(), got, tt.withExtra)
		}
	}
}

func TestEstimateRTT(t *testing.T) {
	// Frankfurt to New York is about 6,200 km: 60.7 ms at fibre speed
	// there and back, plus the bases.
	got := EstimateRTT(spec.Location{Lat: 50.11, Lon: 8.68}, spec.Location{Lat: 40.71, Lon: -74.01}, 2*time.Millisecond, 3*time.Millisecond)
	if got < 65*time.Millisecond || got > 67*time.Millisecond {
		t.Errorf("EstimateRTT(Frankfurt, New York) = %v, want about 65.7ms", got)
	}
	if got := EstimateRTT(spec.Location{Lat: 1, Lon: 2}, spec.Location{Lat: 1, Lon: 2}, 0, 0); got != 0 {
		t.Errorf("EstimateRTT(same point) = %v, want 0", got)
	}
}

func TestAcos(t *testing.T) {
	worst := 0.0
	for i := -100000; i <= 100000; i++ {
		x := float64(i) / 100000
		worst = max(worst, math.Abs(acos(x)-math.Acos(x)))
	}
	for _, x := range []float64{1 - 1e-12, 1 - 1e-9, -1 + 1e-9, 1.0000000001, -1.0000000001} {
		want := math.Acos(max(-1, min(1, x)))
		worst = max(worst, math.Abs(acos(x)-want))
	}
	if worst > 1e-7 {
		t.Errorf("acos differs from math.Acos by up to %g rad, want under 1e-7", worst)
	}
}
