package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// PlacementEngine is what the schedule scenario measures: the bridge's
// placement engine over a seeded synthetic fleet. It lives with the
// scheduler, whose types are internal to the bridge.
type PlacementEngine interface {
	// Fleet builds a fleet of nodes edge nodes and regions cloud regions
	// and returns place, which places the i-th workload of a fixed mix on
	// it and returns the number of replicas placed.
	Fleet(nodes, regions int, seed uint64) (place func(i int) int, err error)
}

// ErrNoPlacementEngine is returned by Schedule without an engine.
var ErrNoPlacementEngine = errors.New("bench schedule: no placement engine linked into this program")

// ScheduleConfig configures the schedule scenario.
type ScheduleConfig struct {
	Nodes, Regions int
	// Placements is the number of placement decisions timed.
	Placements int
	// Seed picks the fleet (1 when 0).
	Seed uint64
	// Engine places; Schedule fails with ErrNoPlacementEngine when nil.
	Engine PlacementEngine
}

// ScheduleResult is the outcome of the schedule scenario.
type ScheduleResult struct {
	Scenario string `json:"scenario"`
	Nodes    int    `json:"nodes"`
	Regions  int    `json:"regions"`
	// PlacementsPerSec counts the replicas placed per second of placing
	// (a decision places 1 to 3).
	PlacementsPerSec float64 `json:"placements_per_sec"`
	// P50Ms and P99Ms are the time of one decision.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`

	Decisions       int     `json:"-"`
	DecisionsPerSec float64 `json:"-"`
}

// WriteText prints the result for people.
func (r ScheduleResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "schedule: %d edge nodes, %d cloud regions, %d decisions\n", r.Nodes, r.Regions, r.Decisions)
	fmt.Fprintf(w, "  rate     %.0f placements/s (%.0f decisions/s)\n", r.PlacementsPerSec, r.DecisionsPerSec)
	fmt.Fprintf(w, "  latency  p50 %.3f ms, p99 %.3f ms per decision\n", r.P50Ms, r.P99Ms)
}

// Schedule runs the schedule scenario: it times each of cfg.Placements
// decisions on its own, on one goroutine.
func Schedule(ctx context.Context, env Env, cfg ScheduleConfig) (ScheduleResult, error) {
	res := ScheduleResult{Scenario: "schedule", Nodes: cfg.Nodes, Regions: cfg.Regions, Decisions: cfg.Placements}
	if cfg.Engine == nil {
		return res, ErrNoPlacementEngine
	}
	if cfg.Nodes < 1 || cfg.Regions < 0 || cfg.Placements < 1 {
		return res, fmt.Errorf("bench schedule: %d nodes, %d regions, %d placements: want at least 1 node and 1 placement", cfg.Nodes, cfg.Regions, cfg.Placements)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	log := env.logger().With("scenario", "schedule")
	log.Info("building the fleet", "nodes", cfg.Nodes, "regions", cfg.Regions)
	place, err := cfg.Engine.Fleet(cfg.Nodes, cfg.Regions, cfg.Seed)
	if err != nil {
		return res, fmt.Errorf("bench schedule: %w", err)
	}
	// One untimed decision warms the caches.
	place(0)
	lat := make([]time.Duration, cfg.Placements)
	replicas := 0
	var total time.Duration
	for i := range lat {
		if i%1024 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		start := time.Now()
		replicas += place(i)
		lat[i] = time.Since(start)
		total += lat[i]
	}
	if replicas == 0 {
		return res, errors.New("bench schedule: no replica placed")
	}
	slices.Sort(lat)
	res.PlacementsPerSec = float64(replicas) / total.Seconds()
	res.DecisionsPerSec = float64(len(lat)) / total.Seconds()
	res.P50Ms = ms(percentile(lat, 0.50))
	res.P99Ms = ms(percentile(lat, 0.99))
	return res, nil
}

// percentile is the nearest-rank p-quantile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
