package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// BenchmarkDrainThroughBridge measures how fast an agent's backlog
// reaches the registry of a real bridge: b.N reports are put in the
// agent's outbox on disk (as an outage would leave them), then the agent
// starts, connects over mutual TLS to the in-process bridge and drains in
// batches, unpaced; the clock stops when the bridge's persisted watermark
// covers them all.
//
//	go test ./internal/e2e -run '^$' -bench DrainThroughBridge -benchtime 200000x
func BenchmarkDrainThroughBridge(b *testing.B) {
	const node = "sat-7"
	p := newPKI(b)
	br := startBridge(b, p, b.TempDir(), nil)
	dir := b.TempDir()
	fillOutbox(b, dir, node, b.N)
	b.ResetTimer()
	start := time.Now()
	a := startAgent(b, p, node, br.MQTTAddr(), nil, func(c *agent.Config) {
		c.DataDir = dir
		c.ReportInterval = time.Hour // drain only: produce nothing new
		c.Drain.Profile = drain.Unlimited
	})
	eventually(b, 10*time.Minute, func() (bool, string) {
		w := deliveryOf(b, br.HTTPAddr(), node).Applied.Watermark
		return w >= uint64(b.N), fmt.Sprintf("watermark %d of %d", w, b.N)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	a.stop()
	if d := deliveryOf(b, br.HTTPAddr(), node); d.Counters.Applied != uint64(b.N) {
		b.Fatalf("bridge applied %d, want %d", d.Counters.Applied, b.N)
	}
}

// fillOutbox appends n resource reports for node to the outbox in dir.
func fillOutbox(tb testing.TB, dir, node string, n int) {
	tb.Helper()
	cfg := outbox.DefaultConfig()
	cfg.NodeID = node
	cfg.Policies[outbox.Telemetry].Quota = 1 << 30 // keep every report: nothing compacted
	q, err := badgerq.Open(badgerq.DefaultOptions(filepath.Join(dir, "outbox")), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now().Add(-time.Duration(n) * time.Second)
	for i := range n {
		env := &pb.Envelope{NodeId: node, BootEpoch: 1, SentAtMs: start.Add(time.Duration(i) * time.Second).UnixMilli(),
			Capability: protocol.CapabilityVersion, Body: &pb.Envelope_Report{Report: &pb.ResourceReport{
				CpuPermille: uint32(i % 1000), MemUsedKib: 1 << 20, Load1Centi: 42,
				Disks: []*pb.DiskUsage{{Mount: "/", UsedKib: 8 << 20}},
				Nets:  []*pb.NetRate{{Iface: "wwan0", RxBytesPerS: 1200, TxBytesPerS: 800}},
			}}}
		if _, err := q.Append(ctx, env); err != nil {
			tb.Fatalf("append %d: %v", i, err)
		}
	}
	if err := q.Close(); err != nil {
		tb.Fatal(err)
	}
}
