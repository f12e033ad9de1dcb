package agent

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
)

// publishOverhead is what an MQTT 3.1.1 PUBLISH at QoS 1 adds to its
// payload: the fixed header (type byte and remaining-length varint), the
// topic (length prefix and name) and the packet ID; the broker's PUBACK
// (4 bytes) travels the other way.
func publishOverhead(topic string, payload int) int {
	rest := 2 + len(topic) + 2 + payload
	return 1 + protowire.SizeVarint(uint64(rest)) + 2 + len(topic) + 2
}

// vehicleReport is a typical report as the agent queues it (compacted
// against its hello) with a 6-digit sequence number.
func vehicleReport(i int, seq uint64, at time.Time) []byte {
	env := &pb.Envelope{
		NodeId: node, BootEpoch: 3, Seq: seq, SentAtMs: at.UnixMilli(), Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Report{Report: &pb.ResourceReport{
			CpuPermille: uint32(100 + i%700), Load1Centi: uint32(50 + i%300), Load5Centi: 80, Load15Centi: 90,
			MemUsedKib: uint64(1<<20 + i%100_000), SwapUsedKib: 1024,
			Disks: []*pb.DiskUsage{{Mount: "/", UsedKib: uint64(8<<20 + i%1000)}, {Mount: "/data", UsedKib: uint64(20<<20 + i%5000)}},
			Nets:  []*pb.NetRate{{Iface: "eth0", RxBytesPerS: uint64(1000 + i%5000), TxBytesPerS: 300}, {Iface: "wwan0", RxBytesPerS: 120, TxBytesPerS: uint64(80 + i%900)}},
			Temps: []*pb.Temperature{{Sensor: "cpu_thermal", DeciCelsius: int32(420 + i%100)}},
		}},
	}
	b, err := protocol.Marshal(env)
	if err != nil {
		panic(err)
	}
	return b
}

// TestWireBytesPerReport compares the MQTT bytes a backlog of reports
// costs when drained in batches with sending each report alone.
func TestWireBytesPerReport(t *testing.T) {
	at := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	items := make([]outbox.Item, 2000)
	var alone int
	reportTopic := protocol.UpTopic(node, protocol.StreamReport)
	for i := range items {
		p := vehicleReport(i, 100_000+uint64(i), at.Add(time.Duration(i)*10*time.Second))
		items[i] = outbox.Item{Seq: 100_000 + uint64(i), Class: outbox.Telemetry, Payload: p}
		alone += len(p) + publishOverhead(reportTopic, len(p))
	}
	h := drain.Header{NodeID: node, BootEpoch: 3, SentAtMs: at.UnixMilli()}
	payload, stream, n := drain.Build(h, items, protocol.MaxPayload, protocol.MaxBatchEnvelopes)
	if stream != protocol.StreamBatch || len(payload) > protocol.MaxPayload || n < 500 {
		t.Fatalf("Build() = %d bytes on %q with %d envelopes, want a full batch", len(payload), stream, n)
	}
	batched := len(payload) + publishOverhead(protocol.UpTopic(node, protocol.StreamBatch), len(payload))
	var payloads int
	for _, it := range items[:n] {
		payloads += len(it.Payload)
	}
	perBatched := float64(batched) / float64(n)
	perAlone := float64(alone) / float64(len(items))
	t.Logf("report envelope: %.1f bytes on average; one PUBLISH each: %.1f bytes per report (+4 B PUBACK back)", float64(payloads)/float64(n), perAlone)
	t.Logf("batch of %d: %d bytes payload, %d with its PUBLISH: %.2f bytes per report (+4 B PUBACK per %d)", n, len(payload), batched, perBatched, n)
	if perBatched >= perAlone {
		t.Errorf("a batched report costs %.2f bytes, one sent alone %.2f: batching should save", perBatched, perAlone)
	}
}
