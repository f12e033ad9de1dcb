package agent

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// prefillOutbox appends n reports of about size bytes to the outbox the
// agent configured by cfg keeps in its data directory, as an outage
// would have left it, and closes it.
func prefillOutbox(t *testing.T, cfg Config, n, size int) {
	t.Helper()
	c := cfg
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	oc := c.Outbox
	oc.NodeID = node
	so := c.OutboxStorage
	so.Dir = filepath.Join(c.DataDir, OutboxDir)
	q, err := badgerq.Open(so, oc)
	if err != nil {
		t.Fatalf("badgerq.Open() error = %v", err)
	}
	start := time.Now().Add(-time.Hour)
	for i := range n {
		env := &pb.Envelope{
			NodeId: node, Capability: protocol.CapabilityVersion, SentAtMs: start.Add(time.Duration(i) * time.Second).UnixMilli(),
			Body: &pb.Envelope_Report{Report: paddedReport(i, size)},
		}
		if _, err := q.Append(context.Background(), env); err != nil {
			t.Fatalf("Append() error = %v", err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
}

// paddedReport is a report of about size bytes: mounts with long names.
func paddedReport(i, size int) *pb.ResourceReport {
	r := &pb.ResourceReport{CpuPermille: uint32(i % 1000), MemUsedKib: uint64(1<<20 + i)}
	for d := 0; encodedSize(r) < size && d < 16; d++ {
		mount := fmt.Sprintf("/mnt/%02d/%s", d, strings.Repeat("x", min(60, max(size-encodedSize(r)-20, 1))))
		r.Disks = append(r.Disks, &pb.DiskUsage{Mount: mount, UsedKib: uint64(i)})
	}
	return r
}

// encodedSize is the size of r in an envelope of node.
func encodedSize(r *pb.ResourceReport) int {
	b, _ := protocol.Marshal(&pb.Envelope{NodeId: node, Body: &pb.Envelope_Report{Report: r}})
	return len(b)
}

// drainMessages returns the MQTT messages that carried the outbox:
// reports, events and batches.
func drainMessages(b *brokertest.Broker) []brokertest.Message {
	var out []brokertest.Message
	for _, m := range b.Messages() {
		t, err := protocol.ParseTopic(m.Topic)
		if err == nil && t.Dir == protocol.DirUp && (t.Stream == protocol.StreamReport || t.Stream == protocol.StreamEvent || t.Stream == protocol.StreamBatch) {
			out = append(out, m)
		}
	}
	return out
}

// TestDrainPacing drains a backlog with the aws-iot-core profile and
// counts the MQTT messages at the broker: batches fit MaxPayload, and
// neither the bytes nor the messages per second outrun the profile (a
// token bucket of one second's burst).
func TestDrainPacing(t *testing.T) {
	tests := []struct {
		name          string
		reports, size int
		maxEnvelopes  int
		bytes         bool // the byte rate binds, else the message rate
	}{
		{name: "bytes", reports: 2400, size: 600, bytes: true},
		{name: "messages", reports: 300, size: 100, maxEnvelopes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := brokertest.Start(t)
			cloud := brokertest.NewCloud(t, b)
			src := &fakeSource{err: errStopped} // the backlog only
			cfg := testConfig(t, b, b.ClientTLS(node), t.TempDir())
			cfg.Source = src
			cfg.Drain.MaxBatchEnvelopes = tt.maxEnvelopes
			prefillOutbox(t, cfg, tt.reports, tt.size)
			a := start(t, cfg)
			if p := cfg.Drain.Profile; p.Name != drain.AWSIoTCore.Name {
				t.Fatalf("default drain profile = %+v, want aws-iot-core", p)
			}
			brokertest.WaitFor(t, wait, "the backlog at the cloud", func() bool { return cloud.Count(node) == tt.reports })
			st := waitDrained(t, a, src)
			checkSettled(t, cloud, st)

			msgs := drainMessages(b)
			p := drain.AWSIoTCore
			burstMsgs, burstBytes := math.Max(p.MsgsPerSec, 1), math.Max(p.BytesPerSec, protocol.MaxPayload)
			var total float64
			t0 := msgs[0].At
			for k, m := range msgs {
				if len(m.Payload) > protocol.MaxPayload {
					t.Errorf("message %d of %d bytes, over MaxPayload", k, len(m.Payload))
				}
				total += float64(len(m.Payload))
				dt := m.At.Sub(t0).Seconds() + 0.1 // the first message may have waited on the wire
				if limit := burstBytes + p.BytesPerSec*dt + protocol.MaxPayload; total > limit {
					t.Errorf("%.0f bytes by %.2fs, over the profile's %.0f", total, dt, limit)
					break
				}
				if limit := burstMsgs + p.MsgsPerSec*dt + 1; float64(k+1) > limit {
					t.Errorf("%d messages by %.2fs, over the profile's %.0f", k+1, dt, limit)
					break
				}
			}
			took := msgs[len(msgs)-1].At.Sub(t0).Seconds()
			var least float64
			if tt.bytes {
				least = (total - burstBytes - protocol.MaxPayload) / p.BytesPerSec
				if n := len(msgs); n > tt.reports/50 {
					t.Errorf("%d reports in %d messages, want them batched", tt.reports, n)
				}
			} else {
				least = (float64(len(msgs)) - burstMsgs - 1) / p.MsgsPerSec
			}
			if took < least-0.1 {
				t.Errorf("%d messages, %.0f bytes sent in %.2fs, want at least %.2fs under the profile", len(msgs), total, took, least)
			}
			t.Logf("%d reports in %d messages, %.0f bytes, over %.2fs", tt.reports, len(msgs), total, took)
		})
	}
}
