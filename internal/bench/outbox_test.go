package bench

import (
	"context"
	"testing"
	"time"
)

func TestOutbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Outbox(ctx, testEnv(t), OutboxConfig{Messages: 5000, Producers: 2})
	if err != nil {
		t.Fatalf("Outbox: %v", err)
	}
	t.Logf("%+v", res)
	checkKeys(t, res, []string{"scenario", "enqueue_per_sec", "raw_badger_per_sec", "drain_per_sec"})
	if res.EnqueuePerSec <= 0 || res.RawBadgerPerSec <= 0 || res.DrainPerSec <= 0 {
		t.Errorf("Outbox() = %+v, want positive rates", res)
	}
	if res.PayloadBytes < 40 || res.PayloadBytes > 400 {
		t.Errorf("mean report %d bytes, want a compact report (tens to hundreds of bytes)", res.PayloadBytes)
	}
}
