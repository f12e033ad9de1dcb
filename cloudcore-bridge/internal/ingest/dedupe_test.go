package ingest

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/metrics"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// seqd returns env with sequence number seq.
func seqd(seq uint64, env *pb.Envelope) *pb.Envelope {
	env.Seq = seq
	return env
}

// cpuReport is a report with seq whose CPU figure names it, so a test can
// tell which one was applied.
func cpuReport(seq uint64, cpu uint32) *pb.Envelope {
	return seqd(seq, envelope("n1", t0.Add(time.Duration(seq)*time.Second), &pb.ResourceReport{CpuPermille: cpu}))
}

func batchOf(envs ...*pb.Envelope) *pb.Envelope {
	return envelope("n1", t0, &pb.Batch{Envelopes: envs})
}

func ranges(rs ...[2]uint64) []*pb.SeqRange {
	out := make([]*pb.SeqRange, len(rs))
	for i, r := range rs {
		out[i] = &pb.SeqRange{First: r[0], Last: r[1]}
	}
	return out
}

// downs decodes what was published to node's down/ack topic since the
// first skip messages.
func (f *fixture) downs(t *testing.T, node string, skip int) []*pb.Envelope {
	t.Helper()
	var out []*pb.Envelope
	for _, b := range f.pub.get(protocol.DownTopic(node, protocol.StreamAck))[skip:] {
		env, err := protocol.Decode(b)
		if err != nil {
			t.Fatalf("decode message to %s: %v", node, err)
		}
		out = append(out, env)
	}
	return out
}

func TestSequencedMessagesAreAppliedOnce(t *testing.T) {
	f := newFixture(t)
	steps := []struct {
		name       string
		env        *pb.Envelope
		wantCPU    uint32 // the last report's CPU figure
		wantCount  registry.Counters
		wantMark   uint64
		wantRanges registry.SeqRanges
		wantDups   float64 // skyedge_bridge_duplicates_total
	}{
		{name: "in order", env: cpuReport(1, 10), wantCPU: 10,
			wantCount: registry.Counters{Messages: 1, Applied: 1}, wantMark: 1},
		{name: "next", env: cpuReport(2, 20), wantCPU: 20,
			wantCount: registry.Counters{Messages: 2, Applied: 2}, wantMark: 2},
		{name: "same seq again, other content", env: cpuReport(2, 999), wantCPU: 20,
			wantCount: registry.Counters{Messages: 3, Applied: 2, Duplicates: 1}, wantMark: 2, wantDups: 1},
		{name: "batch overlapping earlier seqs", env: batchOf(cpuReport(1, 998), cpuReport(2, 997), cpuReport(3, 30), cpuReport(4, 40)),
			wantCPU: 40, wantCount: registry.Counters{Messages: 4, Applied: 4, Duplicates: 3}, wantMark: 4, wantDups: 3},
		{name: "ahead of a hole", env: batchOf(cpuReport(7, 70), cpuReport(8, 80)), wantCPU: 80,
			wantCount: registry.Counters{Messages: 5, Applied: 6, Duplicates: 3}, wantMark: 4, wantRanges: registry.SeqRanges{{7, 8}}, wantDups: 3},
		{name: "duplicate above the hole", env: cpuReport(8, 996), wantCPU: 80,
			wantCount: registry.Counters{Messages: 6, Applied: 6, Duplicates: 4}, wantMark: 4, wantRanges: registry.SeqRanges{{7, 8}}, wantDups: 4},
		{name: "a gap settles the hole", env: seqd(9, envelope("n1", t0, &pb.Gap{Class: "telemetry", Dropped: 2, Reason: "quota", Seqs: ranges([2]uint64{5, 6})})),
			wantCPU: 80, wantCount: registry.Counters{Messages: 7, Applied: 7, Duplicates: 4, Gaps: 1, Dropped: 2}, wantMark: 9, wantDups: 4},
		{name: "a summary settles what it covers", env: seqd(14, envelope("n1", t0.Add(time.Minute), &pb.TelemetrySummary{
			WindowEndMs: t0.Add(time.Minute).UnixMilli(), Last: &pb.ResourceReport{CpuPermille: 140}, Covers: ranges([2]uint64{10, 13}),
		})), wantCPU: 140, wantCount: registry.Counters{Messages: 8, Applied: 8, Duplicates: 4, Gaps: 1, Dropped: 2}, wantMark: 14, wantDups: 4},
		{name: "a covered report arriving late is a duplicate", env: cpuReport(11, 995), wantCPU: 140,
			wantCount: registry.Counters{Messages: 9, Applied: 8, Duplicates: 5, Gaps: 1, Dropped: 2}, wantMark: 14, wantDups: 5},
		{name: "unsequenced report: applied without dedupe", env: envelope("n1", t0.Add(2*time.Minute), &pb.ResourceReport{CpuPermille: 150}),
			wantCPU: 150, wantCount: registry.Counters{Messages: 10, Applied: 9, Duplicates: 5, Gaps: 1, Dropped: 2}, wantMark: 14, wantDups: 5},
	}
	for _, s := range steps {
		if err := f.send(t, s.env); err != nil {
			t.Fatalf("%s: Message() = %v, want nil", s.name, err)
		}
		n := f.node(t, "n1")
		if n.LastReport == nil || n.LastReport.CPUPermille != s.wantCPU {
			t.Errorf("%s: last report = %+v, want cpu %d", s.name, n.LastReport, s.wantCPU)
		}
		if diff := cmp.Diff(s.wantCount, n.Counters); diff != "" {
			t.Errorf("%s: counters (-want +got):\n%s", s.name, diff)
		}
		if n.Applied.Watermark != s.wantMark || !cmp.Equal(n.Applied.Ranges, s.wantRanges, cmpopts.EquateEmpty()) {
			t.Errorf("%s: applied = %d %v, want %d %v", s.name, n.Applied.Watermark, n.Applied.Ranges, s.wantMark, s.wantRanges)
		}
		if got := value(t, f.m.Duplicates); got != s.wantDups {
			t.Errorf("%s: duplicates_total = %v, want %v", s.name, got, s.wantDups)
		}
	}
	// Every MQTT message counts on its stream, duplicates included.
	if got := value(t, f.m.Messages.WithLabelValues("report")); got != 7 {
		t.Errorf(`messages_total{stream="report"} = %v, want 7`, got)
	}
}

func TestAcksFollowTheFlush(t *testing.T) {
	f := newFixture(t)
	flush := func() {
		t.Helper()
		if err := f.reg.Flush(); err != nil {
			t.Fatalf("Flush() = %v", err)
		}
	}
	seen := 0
	steps := []struct {
		name string
		envs []*pb.Envelope
		want []*pb.Ack // published by the flush after envs
	}{
		{name: "three in order: one ack", envs: []*pb.Envelope{cpuReport(1, 1), cpuReport(2, 2), cpuReport(3, 3)},
			want: []*pb.Ack{{Cumulative: 3}}},
		{name: "nothing new: no ack", want: nil},
		{name: "a resend is acknowledged again", envs: []*pb.Envelope{cpuReport(2, 2)},
			want: []*pb.Ack{{Cumulative: 3}}},
		{name: "out of order: ranges", envs: []*pb.Envelope{cpuReport(6, 6), cpuReport(7, 7), cpuReport(9, 9)},
			want: []*pb.Ack{{Cumulative: 3, Ranges: ranges([2]uint64{6, 7}, [2]uint64{9, 9})}}},
		{name: "the hole fills: cumulative jumps", envs: []*pb.Envelope{batchOf(cpuReport(4, 4), cpuReport(5, 5), cpuReport(8, 8))},
			want: []*pb.Ack{{Cumulative: 9}}},
		{name: "unsequenced: nothing to acknowledge", envs: []*pb.Envelope{envelope("n1", t0, &pb.Event{Kind: "x"})}, want: nil},
	}
	for i, s := range steps {
		for _, env := range s.envs {
			if err := f.send(t, env); err != nil {
				t.Fatalf("%s: Message() = %v", s.name, err)
			}
		}
		if got := f.downs(t, "n1", seen); len(got) != 0 {
			t.Fatalf("%s: %d messages to the node before the flush, want none: %v", s.name, len(got), got)
		}
		flush()
		var got []*pb.Ack
		for _, env := range f.downs(t, "n1", seen) {
			if env.GetAck() == nil {
				t.Fatalf("%s: sent %v, want only acks", s.name, env)
			}
			got = append(got, env.GetAck())
		}
		seen += len(got)
		if diff := cmp.Diff(s.want, got, cmp.Comparer(proto.Equal)); diff != "" {
			t.Errorf("step %d (%s): acks after the flush (-want +got):\n%s", i, s.name, diff)
		}
	}
	if got := value(t, f.m.AcksSent); got != 4 {
		t.Errorf("acks_sent_total = %v, want 4", got)
	}
}

func TestHelloBindsTheOutbox(t *testing.T) {
	helloOf := func(id string, first, next uint64) *pb.Envelope {
		return envelope("n1", t0, &pb.Hello{AgentVersion: "1", OutboxId: id, OutboxFirstSeq: first, OutboxLastSeq: max(first, next), NextSeq: next})
	}
	tests := []struct {
		name       string
		before     []*pb.Envelope // after a hello naming outbox "A"
		hello      *pb.Envelope
		wantID     string
		wantMark   uint64
		wantRanges []*pb.SeqRange
		wantLog    string
	}{
		{name: "first contact", hello: helloOf("A", 0, 0), wantID: "A"},
		{name: "same outbox keeps the set", before: []*pb.Envelope{cpuReport(1, 1), cpuReport(2, 2), cpuReport(5, 5)},
			hello: helloOf("A", 3, 5), wantID: "A", wantMark: 2, wantRanges: ranges([2]uint64{5, 5})},
		{name: "what the agent no longer holds is settled", before: []*pb.Envelope{cpuReport(1, 1), cpuReport(5, 5), cpuReport(9, 9)},
			hello: helloOf("A", 7, 9), wantID: "A", wantMark: 6, wantRanges: ranges([2]uint64{9, 9})},
		{name: "empty outbox settles nothing", before: []*pb.Envelope{cpuReport(1, 1), cpuReport(3, 3)},
			hello: helloOf("A", 0, 3), wantID: "A", wantMark: 1, wantRanges: ranges([2]uint64{3, 3})},
		{name: "new outbox ID starts again", before: []*pb.Envelope{cpuReport(1, 1), cpuReport(2, 2)},
			hello: helloOf("B", 1, 1), wantID: "B", wantLog: "outbox recreated"},
		{name: "new outbox ID, holding from 4", before: []*pb.Envelope{cpuReport(1, 1)},
			hello: helloOf("B", 4, 6), wantID: "B", wantMark: 3, wantLog: "outbox recreated"},
		{name: "next_seq below what was applied starts again", before: []*pb.Envelope{cpuReport(1, 1), cpuReport(2, 2), cpuReport(9, 9)},
			hello: helloOf("A", 0, 4), wantID: "A", wantLog: "lost its outbox state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, env := range append([]*pb.Envelope{helloOf("A", 0, 0)}, tt.before...) {
				if err := f.send(t, env); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.reg.Flush(); err != nil {
				t.Fatal(err)
			}
			sent := len(f.downs(t, "n1", 0))
			if err := f.send(t, tt.hello); err != nil {
				t.Fatalf("Message(hello) = %v", err)
			}
			if err := f.reg.Flush(); err != nil {
				t.Fatal(err)
			}
			n := f.node(t, "n1")
			if n.Applied.OutboxID != tt.wantID || n.Applied.Watermark != tt.wantMark {
				t.Errorf("applied after hello = %+v, want outbox %q watermark %d", n.Applied, tt.wantID, tt.wantMark)
			}
			var welcome *pb.Welcome
			for _, env := range f.downs(t, "n1", sent) {
				if w := env.GetWelcome(); w != nil {
					welcome = w
				}
			}
			want := &pb.Welcome{Watermark: tt.wantMark, Applied: tt.wantRanges, ServerTimeMs: t0.UnixMilli(), Capability: protocol.CapabilityVersion, OutboxId: tt.wantID}
			if diff := cmp.Diff(want, welcome, cmp.Comparer(proto.Equal)); diff != "" {
				t.Errorf("welcome after the hello's flush (-want +got):\n%s", diff)
			}
			logs := f.log.String()
			for _, l := range []string{"outbox recreated", "lost its outbox state"} {
				if got, want := strings.Contains(logs, l), l == tt.wantLog; got != want {
					t.Errorf("log contains %q = %v, want %v:\n%s", l, got, want, logs)
				}
			}
			if tt.wantLog == "lost its outbox state" && !strings.Contains(logs, "level=WARN") {
				t.Errorf("lost outbox state not logged as a warning:\n%s", logs)
			}
			// After a reset, seq 1 is new again.
			if tt.wantLog != "" {
				before := f.node(t, "n1").Counters
				if err := f.send(t, cpuReport(tt.wantMark+1, 1234)); err != nil {
					t.Fatal(err)
				}
				if got := f.node(t, "n1").Counters; got.Applied != before.Applied+1 || got.Duplicates != before.Duplicates {
					t.Errorf("seq %d after the reset: counters %+v -> %+v, want applied, not a duplicate", tt.wantMark+1, before, got)
				}
			}
		})
	}
}

func TestWelcomeRangesAreBounded(t *testing.T) {
	f := newFixture(t)
	hello := envelope("n1", t0, &pb.Hello{OutboxId: "A", NextSeq: 200})
	if err := f.send(t, hello); err != nil {
		t.Fatal(err)
	}
	// 100 holes: 2, 4, 6, ... applied, 1, 3, 5, ... missing.
	var envs []*pb.Envelope
	for i := range uint64(100) {
		envs = append(envs, cpuReport(2*i+2, 1))
	}
	if err := f.send(t, batchOf(envs...)); err != nil {
		t.Fatal(err)
	}
	if err := f.send(t, hello); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.Flush(); err != nil {
		t.Fatal(err)
	}
	var welcome *pb.Welcome
	var ack *pb.Ack
	for _, env := range f.downs(t, "n1", 0) {
		if w := env.GetWelcome(); w != nil {
			welcome = w
		}
		if a := env.GetAck(); a != nil {
			ack = a
		}
	}
	if got := len(welcome.GetApplied()); got != MaxWelcomeRanges {
		t.Errorf("welcome carries %d ranges, want the first %d", got, MaxWelcomeRanges)
	}
	if r := welcome.GetApplied()[0]; r.GetFirst() != 2 || r.GetLast() != 2 {
		t.Errorf("welcome's first range = %v, want 2-2", r)
	}
	if got := len(ack.GetRanges()); got != 100 {
		t.Errorf("ack carries %d ranges, want all 100", got)
	}
}

// seqField is the field number of Envelope.seq.
var seqField = new(pb.Envelope).ProtoReflect().Descriptor().Fields().ByName("seq").Number()

// BenchmarkSequencedMessage is BenchmarkMessage with a new sequence number
// on every message, as an agent sends them: applying plus dedupe.
func BenchmarkSequencedMessage(b *testing.B) {
	db, err := store.Open(b.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	reg, err := registry.Open(registry.Config{DB: db})
	if err != nil {
		b.Fatal(err)
	}
	in := New(Config{Registry: reg, Metrics: metrics.New()})
	base, err := proto.Marshal(envelope("node-1", time.Now(), &pb.ResourceReport{
		CpuCores: 4, CpuPermille: 250, Load1Centi: 120, MemTotalKib: 4 << 20, MemUsedKib: 1 << 20,
		Disks:   []*pb.DiskUsage{{Mount: "/", TotalKib: 32 << 20, UsedKib: 8 << 20}},
		Nets:    []*pb.NetRate{{Iface: "wwan0", RxBytesPerS: 1200, TxBytesPerS: 800}},
		Temps:   []*pb.Temperature{{Sensor: "cpu", DeciCelsius: 512}},
		UptimeS: 3600, IntervalMs: 10000,
	}))
	if err != nil {
		b.Fatal(err)
	}
	topic := protocol.UpTopic("node-1", protocol.StreamReport)
	var payload []byte
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		// Fields may come in any order: the sequence number goes first.
		seq++
		payload = protowire.AppendVarint(protowire.AppendTag(payload[:0], seqField, protowire.VarintType), seq)
		payload = append(payload, base...)
		if err := in.Message("node-1", topic, payload); err != nil {
			b.Fatal(err)
		}
	}
	if n, _ := reg.Get("node-1"); n.Counters.Duplicates != 0 || n.Applied.Watermark != seq {
		b.Fatalf("after %d messages: %d duplicates, watermark %d", seq, n.Counters.Duplicates, n.Applied.Watermark)
	}
}
