package drain

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// items returns n stored reports with seqs from 1.
func items(t testing.TB, n int) ([]outbox.Item, []*pb.Envelope) {
	var its []outbox.Item
	var envs []*pb.Envelope
	for i := range n {
		env := outboxtest.Report(outboxtest.Start, i)
		env.Seq = uint64(i + 1)
		b, err := protocol.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		its = append(its, outbox.Item{Seq: env.Seq, Class: outbox.Telemetry, Payload: b})
		envs = append(envs, env)
	}
	return its, envs
}

var header = Header{NodeID: outboxtest.NodeID, BootEpoch: 3, SentAtMs: outboxtest.Start.Add(time.Hour).UnixMilli()}

func TestBuildBatch(t *testing.T) {
	its, envs := items(t, 5)
	payload, stream, n := Build(header, its, protocol.MaxPayload, 100)
	if stream != protocol.StreamBatch || n != 5 {
		t.Fatalf("Build() = stream %q, %d items; want batch of 5", stream, n)
	}
	want := &pb.Envelope{
		NodeId: header.NodeID, BootEpoch: header.BootEpoch, SentAtMs: header.SentAtMs, Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Batch{Batch: &pb.Batch{Envelopes: envs}},
	}
	got, err := protocol.Decode(payload)
	if err != nil {
		t.Fatalf("the batch does not decode: %v", err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Build() decoded (-want +got):\n%s", diff)
	}
	canonical, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonical, payload) {
		t.Errorf("Build() bytes differ from a deterministic marshal of the same batch")
	}
}

func TestBuildLimits(t *testing.T) {
	its, _ := items(t, 10)
	one := len(its[0].Payload)
	tests := []struct {
		name         string
		items        []outbox.Item
		maxBytes     int
		maxEnvelopes int
		wantN        int
		wantStream   string
	}{
		{"one item goes alone", its[:1], protocol.MaxPayload, 100, 1, protocol.StreamReport},
		{"envelope limit", its, protocol.MaxPayload, 4, 4, protocol.StreamBatch},
		{"byte limit", its, 3*(one+2) + 40, 100, 3, protocol.StreamBatch},
		{"first item even when too big", its, 10, 100, 1, protocol.StreamReport},
		{"nothing", nil, protocol.MaxPayload, 100, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, stream, n := Build(header, tt.items, tt.maxBytes, tt.maxEnvelopes)
			if n != tt.wantN || stream != tt.wantStream {
				t.Fatalf("Build() = stream %q, %d items; want %q, %d", stream, n, tt.wantStream, tt.wantN)
			}
			if n > 1 && len(payload) > tt.maxBytes {
				t.Errorf("Build() payload of %d bytes, limit %d", len(payload), tt.maxBytes)
			}
			if n == 1 && !bytes.Equal(payload, tt.items[0].Payload) {
				t.Errorf("a single item was not sent as itself")
			}
		})
	}
}

func TestStreamOf(t *testing.T) {
	for c, want := range map[outbox.Class]string{outbox.Control: "event", outbox.Event: "event", outbox.Telemetry: "report"} {
		if got := StreamOf(c); got != want {
			t.Errorf("StreamOf(%s) = %q, want %q", c, got, want)
		}
	}
}

// BenchmarkBuild packs 1,000 stored 100-byte reports into batches.
func BenchmarkBuild(b *testing.B) {
	its, _ := items(b, 1000)
	size := 0
	for _, it := range its {
		size += len(it.Payload)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		rest := its
		for len(rest) > 0 {
			_, _, n := Build(header, rest, protocol.MaxPayload, protocol.MaxBatchEnvelopes)
			rest = rest[n:]
		}
	}
}

// BenchmarkBuildProto is the same batches through proto.Marshal of
// decoded envelopes, for comparison.
func BenchmarkBuildProto(b *testing.B) {
	its, _ := items(b, 1000)
	size := 0
	for _, it := range its {
		size += len(it.Payload)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		batch := &pb.Batch{}
		for _, it := range its {
			env := new(pb.Envelope)
			if err := proto.Unmarshal(it.Payload, env); err != nil {
				b.Fatal(err)
			}
			batch.Envelopes = append(batch.Envelopes, env)
		}
		env := &pb.Envelope{NodeId: header.NodeID, Body: &pb.Envelope_Batch{Batch: batch}}
		if _, err := protocol.Marshal(env); err != nil {
			b.Fatal(err)
		}
	}
}
