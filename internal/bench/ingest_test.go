package bench

import (
	"context"
	"math"
	"testing"
	"time"
)

var ingestKeys = []string{"scenario", "agents", "processed_per_sec", "raw_per_sec", "ratio", "p50_ms", "p99_ms", "bridge_rss_mb", "bridge_cpu_percent"}

// checkIngest checks what holds for any ingest run.
func checkIngest(t *testing.T, res IngestResult, agents int) {
	t.Helper()
	checkKeys(t, res, ingestKeys)
	if res.Scenario != "ingest" || res.Agents != agents {
		t.Errorf("Ingest() = scenario %q, %d agents; want ingest, %d", res.Scenario, res.Agents, agents)
	}
	for name, v := range map[string]float64{
		"processed_per_sec": res.ProcessedPerSec, "raw_per_sec": res.RawPerSec, "ratio": res.Ratio,
		"bridge_rss_mb": res.BridgeRSSMB, "bridge_cpu_percent": res.BridgeCPUPercent, "p99_ms": res.P99Ms,
	} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want a positive figure", name, v)
		}
	}
	if got := res.ProcessedPerSec / res.RawPerSec; math.Abs(got-res.Ratio) > 1e-9 {
		t.Errorf("ratio = %v, want processed/raw = %v", res.Ratio, got)
	}
	if res.P50Ms < 0 || res.P50Ms > res.P99Ms {
		t.Errorf("p50 %v ms, p99 %v ms: want 0 <= p50 <= p99", res.P50Ms, res.P99Ms)
	}
}

func TestIngestAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bridge process and 20 agents")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const agents, interval = 20, 100 * time.Millisecond
	res, err := Ingest(ctx, testEnv(t), IngestConfig{Agents: agents, Interval: interval, Duration: 2 * time.Second})
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	t.Logf("%+v", res)
	checkIngest(t, res, agents)
	if res.Path != PathAgent {
		t.Errorf("path = %q, want %q", res.Path, PathAgent)
	}
	// 20 agents offer 200 reports/s; the window sees that, give or take
	// the batching of the drain.
	if offered := float64(agents) / interval.Seconds(); res.ProcessedPerSec < offered*0.5 || res.ProcessedPerSec > offered*1.5 {
		t.Errorf("processed %v reports/s, want about the %v offered", res.ProcessedPerSec, offered)
	}
}

func TestIngestPipelined(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bridge and publisher processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Ingest(ctx, testEnv(t), IngestConfig{Agents: 20, Interval: 0, Duration: 2 * time.Second})
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	t.Logf("%+v", res)
	checkIngest(t, res, 20)
	if res.Path != pathPipelined {
		t.Errorf("path = %q, want %q", res.Path, pathPipelined)
	}
	// Full ingest cannot beat the broker alone by much (the two runs are
	// not simultaneous, so allow for noise).
	if res.Ratio > 1.3 {
		t.Errorf("ratio = %v, want at most about 1", res.Ratio)
	}
}

func TestIngestLean(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bridge and publisher processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const agents, interval = 50, 100 * time.Millisecond
	res, err := Ingest(ctx, testEnv(t), IngestConfig{Agents: agents, Interval: interval, Duration: 2 * time.Second, Path: PathLean})
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	t.Logf("%+v", res)
	checkIngest(t, res, agents)
	if res.Path != PathLean {
		t.Errorf("path = %q, want %q", res.Path, PathLean)
	}
	// Paced publishers offer exactly 500 reports/s.
	if offered := float64(agents) / interval.Seconds(); res.ProcessedPerSec < offered*0.9 || res.ProcessedPerSec > offered*1.1 {
		t.Errorf("processed %v reports/s, want the %v offered", res.ProcessedPerSec, offered)
	}
}
