package bench

import (
	"context"
	"testing"
	"time"
)

func TestFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Footprint(ctx, testEnv(t), FootprintConfig{Duration: 3 * time.Second, Interval: time.Second})
	if err != nil {
		t.Fatalf("Footprint: %v", err)
	}
	t.Logf("%+v", res)
	checkKeys(t, res, []string{"scenario", "rss_mb", "cpu_percent", "uplink_kbit_s", "downlink_kbit_s", "binary_mb"})
	if res.RSSMB < 1 || res.RSSMeanMB > res.RSSMB || res.BinaryMB < 1 {
		t.Errorf("rss max %v MiB, mean %v MiB, binary %v MiB: want a process of at least 1 MiB, mean <= max", res.RSSMB, res.RSSMeanMB, res.BinaryMB)
	}
	// Three reports of about a hundred bytes each, in TLS records, went
	// up; their acknowledgements came down.
	if res.UpBytes < 150 || res.DownBytes == 0 {
		t.Errorf("%d bytes up, %d down in 3 s at a report a second: want reports up and acks down", res.UpBytes, res.DownBytes)
	}
	if res.CPUPercent < 0 || res.CPUPercent > 200 {
		t.Errorf("cpu = %v%%, want 0..200", res.CPUPercent)
	}
}
