package bench

import (
	"context"
	"errors"
	"testing"
)

// spinEngine places (i%3)+1 replicas per decision after some work that
// grows with the fleet, so that timings are positive.
type spinEngine struct{ built int }

func (e *spinEngine) Fleet(nodes, regions int, seed uint64) (func(int) int, error) {
	if nodes == 0 {
		return nil, errors.New("empty fleet")
	}
	e.built++
	x := seed
	return func(i int) int {
		for k := 0; k < nodes+regions; k++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if x == 0 { // never: keeps the loop from being optimised away
			return 0
		}
		return i%3 + 1
	}, nil
}

func TestSchedule(t *testing.T) {
	e := &spinEngine{}
	res, err := Schedule(context.Background(), testEnv(t), ScheduleConfig{Nodes: 2000, Regions: 10, Placements: 300, Engine: e})
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	if e.built != 1 {
		t.Errorf("fleet built %d times, want 1", e.built)
	}
	if res.Nodes != 2000 || res.Regions != 10 || res.Scenario != "schedule" {
		t.Errorf("Schedule() = %+v, want the fleet's size echoed", res)
	}
	// 300 decisions place 1+2+3 replicas in turn: 600 in all.
	if ratio := res.PlacementsPerSec / res.DecisionsPerSec; ratio < 1.99 || ratio > 2.01 {
		t.Errorf("placements/decisions = %v, want 2", ratio)
	}
	if res.P50Ms <= 0 || res.P99Ms < res.P50Ms {
		t.Errorf("latency p50 %v, p99 %v: want 0 < p50 <= p99", res.P50Ms, res.P99Ms)
	}
	checkKeys(t, res, []string{"scenario", "nodes", "regions", "placements_per_sec", "p50_ms", "p99_ms"})

	if _, err := Schedule(context.Background(), testEnv(t), ScheduleConfig{Nodes: 10, Placements: 1}); !errors.Is(err, ErrNoPlacementEngine) {
		t.Errorf("Schedule(no engine) = %v, want ErrNoPlacementEngine", err)
	}
	if _, err := Schedule(context.Background(), testEnv(t), ScheduleConfig{Nodes: 0, Placements: 1, Engine: e}); err == nil {
		t.Error("Schedule(0 nodes) = nil error, want an error")
	}
}
