package badgerq

import (
	"context"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

// benchQueue opens a queue with quotas large enough that b.N appends
// measure enqueueing alone, and runs its Run (periodic syncs) meanwhile.
func benchQueue(b *testing.B) *Queue {
	b.Helper()
	cfg := outbox.DefaultConfig()
	cfg.NodeID = outboxtest.NodeID
	cfg.Logger = slog.New(slog.DiscardHandler)
	for c := range cfg.Policies {
		cfg.Policies[c].Quota = 4 << 30
	}
	o := testOptions(b.TempDir())
	o.MaxDiskBytes = 8 << 30
	q, err := Open(o, cfg)
	if err != nil {
		b.Fatalf("Open() error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(ctx)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		q.Close()
	})
	return q
}

func reportMsgs(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkAppend appends ~100-byte telemetry reports from parallel
// producers (4 per CPU): batched commits, synced every SyncInterval and
// once more, for everything, before the timer stops.
func BenchmarkAppend(b *testing.B) {
	q := benchQueue(b)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		now := time.Now()
		i := 0
		for pb.Next() {
			if _, err := q.Append(context.Background(), outboxtest.Report(now, i)); err != nil {
				b.Errorf("Append() error = %v", err)
				return
			}
			i++
		}
	})
	// Pending syncs whatever is not yet durable: the figure is for
	// durable enqueueing.
	if _, _, err := q.Pending(context.Background(), outbox.Cursor{}, 1, 1); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportMsgs(b)
}

// BenchmarkDurableEvents appends events, each durable before Append
// returns, from parallel producers sharing syncs (group commit).
func BenchmarkDurableEvents(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(map[int]string{1: "producers=GOMAXPROCS", 16: "producers=16xGOMAXPROCS"}[par], func(b *testing.B) {
			q := benchQueue(b)
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				now := time.Now()
				for pb.Next() {
					if _, err := q.Append(context.Background(), outboxtest.Event(now, "workload.restarted", false)); err != nil {
						b.Errorf("Append() error = %v", err)
						return
					}
				}
			})
			b.StopTimer()
			reportMsgs(b)
		})
	}
}

// BenchmarkRawBadgerBatch is the floor: the same reports, marshalled and
// keyed the same way, written by one goroutine through a Badger
// WriteBatch with the queue's options, and synced at the end.
func BenchmarkRawBadgerBatch(b *testing.B) {
	o := testOptions(b.TempDir())
	db, err := badger.Open(badgerOptions(o, slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := clock.Real.Now()
	b.ResetTimer()
	wb := db.NewWriteBatch()
	for i := range b.N {
		env := outboxtest.Report(now, i)
		env.Seq = uint64(i + 1)
		payload, err := protocol.Marshal(env)
		if err != nil {
			b.Fatal(err)
		}
		v := make([]byte, headerLen+len(payload))
		binary.BigEndian.PutUint64(v[1:], uint64(env.SentAtMs))
		copy(v[headerLen:], payload)
		if err := wb.Set(recordKey(outbox.Telemetry, env.Seq), v); err != nil {
			b.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportMsgs(b)
}
