package ingest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/metrics"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// published records what the Ingester sends to nodes.
type published struct {
	mu   sync.Mutex
	msgs map[string][][]byte
}

func (p *published) Publish(topic string, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.msgs == nil {
		p.msgs = make(map[string][][]byte)
	}
	p.msgs[topic] = append(p.msgs[topic], payload)
	return nil
}

func (p *published) get(topic string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.msgs[topic]
}

type fixture struct {
	in  *Ingester
	reg *registry.Registry
	pub *published
	m   *metrics.Metrics
	clk *clock.Fake
	log *bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{pub: &published{}, m: metrics.New(), clk: clock.NewFake(t0), log: &bytes.Buffer{}}
	f.reg, err = registry.Open(registry.Config{DB: db, Clock: f.clk,
		Durable: func(ds []registry.Durable) { f.in.Acknowledge(ds) }})
	if err != nil {
		t.Fatal(err)
	}
	f.in = New(Config{
		Registry:  f.reg,
		Publisher: f.pub,
		Metrics:   f.m,
		Clock:     f.clk,
		Logger:    slog.New(slog.NewTextHandler(f.log, nil)),
	})
	return f
}

func (f *fixture) node(t *testing.T, id string) registry.Node {
	t.Helper()
	n, ok := f.reg.Get(id)
	if !ok {
		t.Fatalf("registry has no node %q", id)
	}
	return n
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.GetCounter().GetValue()
	}
	return d.GetGauge().GetValue()
}

func envelope(node string, sentAt time.Time, body any) *pb.Envelope {
	env := &pb.Envelope{NodeId: node, BootEpoch: 3, SentAtMs: sentAt.UnixMilli(), Capability: protocol.CapabilityVersion}
	switch b := body.(type) {
	case *pb.Hello:
		env.Body = &pb.Envelope_Hello{Hello: b}
	case *pb.ResourceReport:
		env.Body = &pb.Envelope_Report{Report: b}
	case *pb.TelemetrySummary:
		env.Body = &pb.Envelope_Summary{Summary: b}
	case *pb.Event:
		env.Body = &pb.Envelope_Event{Event: b}
	case *pb.Gap:
		env.Body = &pb.Envelope_Gap{Gap: b}
	case *pb.Goodbye:
		env.Body = &pb.Envelope_Goodbye{Goodbye: b}
	case *pb.Batch:
		env.Body = &pb.Envelope_Batch{Batch: b}
	}
	return env
}

func encode(t *testing.T, env *pb.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send publishes env from its own node on the stream its body belongs to.
func (f *fixture) send(t *testing.T, env *pb.Envelope) error {
	t.Helper()
	return f.in.Message(env.GetNodeId(), protocol.UpTopic(env.GetNodeId(), protocol.StreamOf(env)), encode(t, env))
}

func TestHelloRegistersAndWelcomes(t *testing.T) {
	f := newFixture(t)
	hello := &pb.Hello{
		AgentVersion: "0.4.1", Hostname: "truck-7", Os: "linux", Arch: "arm64", Platform: "debian 12.2",
		KernelVersion: "6.1.0", CpuModel: "Cortex-A72", CpuCores: 4, MemTotalKib: 4 << 20,
		Labels: map[string]string{"fleet": "trucks", "region": "eu"}, BootTimeS: t0.Add(-time.Hour).Unix(),
	}
	if err := f.send(t, envelope("truck-7", t0, hello)); err != nil {
		t.Fatalf("Message(hello) = %v, want nil", err)
	}
	got := f.node(t, "truck-7")
	want := registry.Node{
		ID: "truck-7", Labels: map[string]string{"fleet": "trucks", "region": "eu"},
		FirstSeen: t0, LastSeen: t0, Online: true, ConnectedSince: t0,
		AgentVersion: "0.4.1", Capability: protocol.CapabilityVersion, BootEpoch: 3, HelloAt: t0,
		Facts: registry.Facts{Hostname: "truck-7", OS: "linux", Arch: "arm64", Platform: "debian 12.2",
			Kernel: "6.1.0", CPUModel: "Cortex-A72", CPUCores: 4, MemTotalKiB: 4 << 20, BootTime: t0.Add(-time.Hour)},
		Counters: registry.Counters{Messages: 1},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(registry.Node{})); diff != "" {
		t.Errorf("node after hello (-want +got):\n%s", diff)
	}
	if got := value(t, f.m.ConnectedNodes); got != 1 {
		t.Errorf("connected_nodes = %v, want 1", got)
	}

	// The Welcome waits for the flush that makes its watermark durable.
	if msgs := f.pub.get(protocol.DownTopic("truck-7", protocol.StreamAck)); len(msgs) != 0 {
		t.Fatalf("messages on down/ack before a flush = %d, want 0", len(msgs))
	}
	if err := f.reg.Flush(); err != nil {
		t.Fatal(err)
	}
	msgs := f.pub.get(protocol.DownTopic("truck-7", protocol.StreamAck))
	if len(msgs) != 1 {
		t.Fatalf("welcome messages on down/ack after a flush = %d, want 1", len(msgs))
	}
	env, err := protocol.Decode(msgs[0])
	if err != nil {
		t.Fatalf("decode welcome: %v", err)
	}
	wantWelcome := &pb.Welcome{ServerTimeMs: t0.UnixMilli(), Capability: protocol.CapabilityVersion}
	if diff := cmp.Diff(wantWelcome, env.GetWelcome(), cmp.Comparer(proto.Equal)); diff != "" {
		t.Errorf("welcome (-want +got):\n%s", diff)
	}
	if env.GetNodeId() != "truck-7" {
		t.Errorf("welcome node_id = %q, want truck-7", env.GetNodeId())
	}
}

func TestReportsKeepTheNewest(t *testing.T) {
	f := newFixture(t)
	report := func(cpu uint32) *pb.ResourceReport {
		return &pb.ResourceReport{
			CpuCores: 4, CpuPermille: cpu, MemTotalKib: 1000, MemUsedKib: 500,
			Disks:     []*pb.DiskUsage{{Mount: "/", TotalKib: 100, UsedKib: 40}},
			Nets:      []*pb.NetRate{{Iface: "wwan0", RxBytesPerS: 10, TxBytesPerS: 20}},
			Temps:     []*pb.Temperature{{Sensor: "soc", DeciCelsius: -55}},
			Container: &pb.ContainerLimits{CpuMaxMilli: 1500, MemoryMaxKib: 800, MemoryCurrentKib: 300},
		}
	}
	steps := []struct {
		name    string
		env     *pb.Envelope
		wantCPU uint32
		wantAt  time.Time
	}{
		{"first report", envelope("n1", t0, report(100)), 100, t0},
		{"newer report", envelope("n1", t0.Add(10*time.Second), report(200)), 200, t0.Add(10 * time.Second)},
		{"older report from a backlog", envelope("n1", t0.Add(-time.Hour), report(900)), 200, t0.Add(10 * time.Second)},
		{"summary ending later", envelope("n1", t0.Add(time.Minute), &pb.TelemetrySummary{
			WindowEndMs: t0.Add(30 * time.Second).UnixMilli(), Last: report(300),
		}), 300, t0.Add(30 * time.Second)},
		{"batch of old and new reports", envelope("n1", t0.Add(2*time.Minute), &pb.Batch{Envelopes: []*pb.Envelope{
			envelope("n1", t0.Add(40*time.Second), report(400)),
			envelope("n1", t0.Add(-time.Minute), report(999)),
		}}), 400, t0.Add(40 * time.Second)},
	}
	for _, s := range steps {
		if err := f.send(t, s.env); err != nil {
			t.Fatalf("%s: Message() = %v, want nil", s.name, err)
		}
		n := f.node(t, "n1")
		if n.LastReport == nil || n.LastReport.CPUPermille != s.wantCPU || !n.LastReportAt.Equal(s.wantAt) {
			t.Errorf("%s: last report = %+v at %v, want cpu %d at %v", s.name, n.LastReport, n.LastReportAt, s.wantCPU, s.wantAt)
		}
	}
	n := f.node(t, "n1")
	want := &registry.Report{
		CPUCores: 4, CPUPermille: 400, MemTotalKiB: 1000, MemUsedKiB: 500,
		Disks:     []registry.Disk{{Mount: "/", TotalKiB: 100, UsedKiB: 40}},
		Nets:      []registry.Net{{Iface: "wwan0", RxBytesPerS: 10, TxBytesPerS: 20}},
		Temps:     []registry.Temp{{Sensor: "soc", DeciCelsius: -55}},
		Container: &registry.Container{CPUMaxMilli: 1500, MemoryMaxKiB: 800, MemoryCurrentKiB: 300},
	}
	if diff := cmp.Diff(want, n.LastReport); diff != "" {
		t.Errorf("converted report (-want +got):\n%s", diff)
	}
	if n.Counters.Messages != uint64(len(steps)) {
		t.Errorf("messages = %d, want %d", n.Counters.Messages, len(steps))
	}
	if got := value(t, f.m.Messages.WithLabelValues("report")); got != 4 {
		t.Errorf("messages_total{stream=report} = %v, want 4", got)
	}
}

func TestEventsAndGaps(t *testing.T) {
	f := newFixture(t)
	for i := range 10 {
		ev := &pb.Event{Severity: pb.Event_SEVERITY_ALARM, Kind: "disk.full", Message: "disk full", Attributes: map[string]string{"i": string(rune('a' + i))}}
		if err := f.send(t, envelope("n1", t0.Add(time.Duration(i)*time.Second), ev)); err != nil {
			t.Fatal(err)
		}
	}
	gap := &pb.Gap{Class: "telemetry", Dropped: 42, Reason: "quota"}
	if err := f.send(t, envelope("n1", t0.Add(time.Minute), gap)); err != nil {
		t.Fatal(err)
	}
	n := f.node(t, "n1")
	wantCounters := registry.Counters{Messages: 11, Applied: 11, Events: 10, Gaps: 1, Dropped: 42}
	if diff := cmp.Diff(wantCounters, n.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if len(n.RecentEvents) != registry.MaxRecentEvents {
		t.Fatalf("recent events = %d, want %d", len(n.RecentEvents), registry.MaxRecentEvents)
	}
	if first := n.RecentEvents[0]; first.Attributes["i"] != "d" {
		t.Errorf("oldest kept event = %+v, want the 4th (i=d)", first)
	}
	last := n.RecentEvents[len(n.RecentEvents)-1]
	if last.Kind != "skyedge.gap" || last.Attributes["dropped"] != "42" || last.Severity != "warning" {
		t.Errorf("last event = %+v, want the gap", last)
	}
}

func TestConnectionState(t *testing.T) {
	f := newFixture(t)
	steps := []struct {
		name       string
		do         func()
		wantOnline bool
		wantReason string
	}{
		{"connected", func() { f.in.Connected("n1") }, true, ""},
		{"keepalive timeout", func() { f.in.Disconnected("n1", "keepalive_timeout") }, false, "keepalive_timeout"},
		{"hello marks online", func() { f.send(t, envelope("n1", t0, &pb.Hello{})) }, true, ""},
		{"goodbye lost", func() { f.send(t, envelope("n1", t0, &pb.Goodbye{Reason: pb.Goodbye_REASON_LOST})) }, false, "will"},
		{"hello again", func() { f.send(t, envelope("n1", t0, &pb.Hello{})) }, true, ""},
		{"goodbye shutdown", func() { f.send(t, envelope("n1", t0, &pb.Goodbye{Reason: pb.Goodbye_REASON_SHUTDOWN})) }, false, "clean"},
		{"connection closed after the goodbye", func() { f.in.Disconnected("n1", "connection_lost") }, false, "clean"},
	}
	for _, s := range steps {
		s.do()
		n := f.node(t, "n1")
		if n.Online != s.wantOnline || n.OfflineReason != s.wantReason {
			t.Errorf("%s: online %v reason %q, want %v %q", s.name, n.Online, n.OfflineReason, s.wantOnline, s.wantReason)
		}
		want := 0.0
		if s.wantOnline {
			want = 1
		}
		if got := value(t, f.m.ConnectedNodes); got != want {
			t.Errorf("%s: connected_nodes = %v, want %v", s.name, got, want)
		}
	}
}

func TestRejections(t *testing.T) {
	valid := func(node string) []byte {
		return encode(t, envelope(node, t0, &pb.ResourceReport{CpuPermille: 1}))
	}
	tests := []struct {
		name     string
		identity string
		topic    string
		payload  []byte
		want     protocol.Reason
	}{
		{"malformed protobuf", "n1", protocol.UpTopic("n1", "report"), []byte{0xff, 0xff, 0xff}, protocol.ReasonMalformed},
		{"oversized", "n1", protocol.UpTopic("n1", "report"), make([]byte, protocol.MaxPayload+1), protocol.ReasonOversized},
		{"topic outside the layout", "n1", "other/topic", valid("n1"), protocol.ReasonBadTopic},
		{"down topic", "n1", protocol.DownTopic("n1", "ack"), valid("n1"), protocol.ReasonBadTopic},
		{"another node's topic", "n1", protocol.UpTopic("n2", "report"), valid("n2"), protocol.ReasonSpoofed},
		{"envelope of another node", "n1", protocol.UpTopic("n1", "report"), valid("n2"), protocol.ReasonSpoofed},
		{"report on the hello stream", "n1", protocol.UpTopic("n1", "hello"), valid("n1"), protocol.ReasonWrongBody},
		{"no body", "n1", protocol.UpTopic("n1", "report"), encode(t, &pb.Envelope{NodeId: "n1"}), protocol.ReasonInvalid},
		{"hello inside a batch", "n1", protocol.UpTopic("n1", "batch"), encode(t, envelope("n1", t0, &pb.Batch{
			Envelopes: []*pb.Envelope{envelope("n1", t0, &pb.Hello{})},
		})), protocol.ReasonWrongBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			err := f.in.Message(tt.identity, tt.topic, tt.payload)
			if got := protocol.ReasonOf(err); err == nil || got != tt.want {
				t.Fatalf("Message() = %v (reason %q), want reason %q", err, got, tt.want)
			}
			if got := value(t, f.m.Rejected.WithLabelValues(string(tt.want))); got != 1 {
				t.Errorf("rejected_total{reason=%q} = %v, want 1", tt.want, got)
			}
			n := f.node(t, tt.identity)
			if n.Counters.Rejects != 1 || n.Counters.Messages != 0 || n.LastReport != nil {
				t.Errorf("node after rejection: %+v, want 1 reject and nothing applied", n.Counters)
			}
			for _, other := range []string{"n2"} {
				if _, ok := f.reg.Get(other); ok {
					t.Errorf("rejected message created node %q", other)
				}
			}
			// The same node's next valid message is applied.
			if err := f.in.Message("n1", protocol.UpTopic("n1", "report"), valid("n1")); err != nil {
				t.Fatalf("valid report after rejection: %v", err)
			}
			if n := f.node(t, "n1"); n.LastReport == nil {
				t.Errorf("valid report after rejection not applied")
			}
		})
	}
}

func TestRejectionsAreLoggedOncePerNodeAndReason(t *testing.T) {
	f := newFixture(t)
	bad := []byte{0xff, 0xff}
	for range 5 {
		f.in.Message("n1", protocol.UpTopic("n1", "report"), bad)
	}
	f.in.Message("n2", protocol.UpTopic("n2", "report"), bad)
	f.in.Message("n1", protocol.UpTopic("n1", "report"), make([]byte, protocol.MaxPayload+1))
	lines := func() int { return strings.Count(f.log.String(), "rejected message from node") }
	if got := lines(); got != 3 {
		t.Errorf("log lines after 5+1+1 rejections = %d, want 3 (n1 malformed, n2 malformed, n1 oversized):\n%s", got, f.log)
	}
	if got := value(t, f.m.Rejected.WithLabelValues("malformed")); got != 6 {
		t.Errorf("rejected_total{reason=malformed} = %v, want 6", got)
	}
	f.clk.Advance(LogEvery + time.Second)
	f.in.Message("n1", protocol.UpTopic("n1", "report"), bad)
	if got := lines(); got != 4 {
		t.Errorf("log lines after an hour and one more = %d, want 4", got)
	}
}

// BenchmarkMessage is the cost of applying one resource report, without
// the network: decode, validate, registry update, metrics.
func BenchmarkMessage(b *testing.B) {
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
	env := envelope("node-1", time.Now(), &pb.ResourceReport{
		CpuCores: 4, CpuPermille: 250, Load1Centi: 120, MemTotalKib: 4 << 20, MemUsedKib: 1 << 20,
		Disks:   []*pb.DiskUsage{{Mount: "/", TotalKib: 32 << 20, UsedKib: 8 << 20}},
		Nets:    []*pb.NetRate{{Iface: "wwan0", RxBytesPerS: 1200, TxBytesPerS: 800}},
		Temps:   []*pb.Temperature{{Sensor: "cpu", DeciCelsius: 512}},
		UptimeS: 3600, IntervalMs: 10000,
	})
	payload, err := proto.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	topic := protocol.UpTopic("node-1", protocol.StreamReport)
	b.ReportAllocs()
	for b.Loop() {
		if err := in.Message("node-1", topic, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCompactReportsAreExpanded sends a hello carrying the static
// quantities and then reports that leave them out, as the agent does, and
// checks that the registry shows whole reports, also after a static
// quantity changes.
func TestCompactReportsAreExpanded(t *testing.T) {
	f := newFixture(t)
	full := &pb.ResourceReport{
		CpuCores: 4, CpuPermille: 250, MemTotalKib: 4000, MemUsedKib: 1000, SwapTotalKib: 512,
		Disks:      []*pb.DiskUsage{{Mount: "/", TotalKib: 9000, UsedKib: 3000}},
		Container:  &pb.ContainerLimits{CpuMaxMilli: 1500, MemoryMaxKib: 2048, MemoryCurrentKib: 300},
		UptimeS:    3600,
		IntervalMs: 10_000,
	}
	hello := &pb.Hello{AgentVersion: "1", BootTimeS: t0.Unix() - 3600, ReportIntervalMs: 10_000}
	protocol.SetHelloStatics(hello, full)
	if err := f.send(t, envelope("n1", t0, hello)); err != nil {
		t.Fatal(err)
	}
	compact := protocol.CompactReport(proto.Clone(full).(*pb.ResourceReport), hello)
	if compact.GetMemTotalKib() != 0 || compact.GetDisks()[0].GetTotalKib() != 0 {
		t.Fatalf("CompactReport kept static quantities: %v", compact)
	}
	if err := f.send(t, envelope("n1", t0, compact)); err != nil {
		t.Fatal(err)
	}
	r := f.node(t, "n1").LastReport
	if r == nil || r.CPUCores != 4 || r.MemTotalKiB != 4000 || r.SwapTotalKiB != 512 || r.UptimeS != 3600 ||
		len(r.Disks) != 1 || r.Disks[0].TotalKiB != 9000 || r.Container == nil || r.Container.MemoryMaxKiB != 2048 {
		t.Fatalf("registry report = %+v, want the static quantities restored from the hello", r)
	}
	grown := proto.Clone(full).(*pb.ResourceReport)
	grown.Disks[0].TotalKib = 18000
	if err := f.send(t, envelope("n1", t0.Add(10*time.Second), protocol.CompactReport(grown, hello))); err != nil {
		t.Fatal(err)
	}
	if r := f.node(t, "n1").LastReport; r.Disks[0].TotalKiB != 18000 || r.MemTotalKiB != 4000 {
		t.Fatalf("registry report = %+v, want the grown disk and the hello's memory", r)
	}
}

// TestWillsAndMissedHellos covers what a bridge behind an external broker
// sees: the will of an older connection arriving after the node said
// hello again, and reports from a node whose hello the bridge missed.
func TestWillsAndMissedHellos(t *testing.T) {
	f := newFixture(t)
	will := func(at time.Time) *pb.Envelope {
		return envelope("n1", at, &pb.Goodbye{Reason: pb.Goodbye_REASON_LOST})
	}
	steps := []struct {
		name       string
		env        *pb.Envelope
		wantOnline bool
		wantReason string
	}{
		{"hello of the first connection", envelope("n1", t0, &pb.Hello{}), true, ""},
		{"hello of a second connection", envelope("n1", t0.Add(time.Minute), &pb.Hello{}), true, ""},
		{"late will of the first connection", will(t0), true, ""},
		{"will of the current connection", will(t0.Add(time.Minute)), false, "will"},
		{"report without a hello", envelope("n1", t0.Add(2*time.Minute), &pb.ResourceReport{CpuPermille: 1}), true, ""},
		{"clean goodbye", envelope("n1", t0.Add(3*time.Minute), &pb.Goodbye{Reason: pb.Goodbye_REASON_SHUTDOWN}), false, "clean"},
	}
	for _, s := range steps {
		if err := f.send(t, s.env); err != nil {
			t.Fatalf("%s: Message() = %v", s.name, err)
		}
		if n := f.node(t, "n1"); n.Online != s.wantOnline || n.OfflineReason != s.wantReason {
			t.Errorf("%s: online %v reason %q, want %v %q", s.name, n.Online, n.OfflineReason, s.wantOnline, s.wantReason)
		}
	}
}
