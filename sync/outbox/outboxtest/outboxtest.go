// Package outboxtest is the contract every outbox.Queue implementation
// passes: ordering, sequence numbers, acks, cursor paging, the when-full
// policies, TTL, telemetry compaction, gap markers, restarts, concurrency
// and behaviour under injected faults. An implementation's test calls Run
// with a function that opens it; see badgerq and memq.
package outboxtest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Opener opens the implementation under test in dir with cfg. Called again
// with the same dir it must reopen the same queue (unless the Impl says it
// is not persistent). It fails the test on error.
type Opener func(t *testing.T, dir string, cfg outbox.Config) outbox.Queue

// Impl describes the implementation under test.
type Impl struct {
	Open Opener
	// NotPersistent, when set, says why the queue forgets everything at
	// Close; cases that restart the queue are skipped with it.
	NotPersistent string
}

// Node and boot epoch of every envelope the suite appends.
const (
	NodeID    = "node-1"
	BootEpoch = 7
)

// Start is the fake clock's start.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Run runs the contract against impl.
func Run(t *testing.T, impl Impl) {
	cases := []struct {
		name string
		fn   func(t *testing.T, impl Impl)
	}{
		{"AppendStampsEnvelope", testAppendStamps},
		{"AppendRejectsUnqueuedBodies", testNotQueued},
		{"DrainOrder", testDrainOrder},
		{"AckCumulativeAndRanges", testAck},
		{"AckUnknownIgnored", testAckUnknown},
		{"CursorPaging", testCursorPaging},
		{"PendingMaxBytes", testPendingMaxBytes},
		{"QuotaRefuse", testQuotaRefuse},
		{"QuotaDropOldest", testQuotaDropOldest},
		{"GapMarkersCoalesce", testGapCoalesce},
		{"TelemetryCompaction", testCompaction},
		{"TelemetryCompactionTiers", testCompactionTiers},
		{"TTLExpiry", testTTL},
		{"ConcurrentAppenders", testConcurrent},
		{"Closed", testClosed},
		{"FaultsLostReplies", testFaultsLostReplies},
		{"FaultsBeforeCall", testFaultsBeforeCall},
		{"RestartKeepsPending", testRestartPending},
		{"RestartNeverReusesSeq", testRestartSeq},
		{"RestartKeepsGapsAndSummaries", testRestartGaps},
		{"OutboxID", testOutboxID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, impl) })
	}
}

// Config returns the configuration the suite starts from: DefaultConfig
// with the suite's node, clk and a logger writing to t.
func Config(t *testing.T, clk clock.Clock) outbox.Config {
	cfg := outbox.DefaultConfig()
	cfg.NodeID = NodeID
	cfg.BootEpoch = BootEpoch
	cfg.Clock = clk
	cfg.Logger = TestLogger(t)
	return cfg
}

// TestLogger logs to t at warning level and above.
func TestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Harness is an open queue with its fake clock and directory.
type Harness struct {
	T    *testing.T
	Q    outbox.Queue
	Clk  *clock.Fake
	Cfg  outbox.Config
	Dir  string
	impl Impl

	stopRun func()
}

// NewHarness opens impl in a fresh directory with the suite's config,
// changed by mutate when not nil. The queue is closed at cleanup.
func NewHarness(t *testing.T, impl Impl, mutate func(*outbox.Config)) *Harness {
	clk := clock.NewFake(Start)
	cfg := Config(t, clk)
	if mutate != nil {
		mutate(&cfg)
	}
	h := &Harness{T: t, Clk: clk, Cfg: cfg, Dir: t.TempDir(), impl: impl}
	h.Q = impl.Open(t, h.Dir, cfg)
	t.Cleanup(h.close)
	return h
}

func (h *Harness) close() {
	h.StopRun()
	if h.Q != nil {
		if err := h.Q.Close(); err != nil && !errors.Is(err, outbox.ErrClosed) {
			h.T.Errorf("Close() error = %v", err)
		}
	}
}

// Reopen closes the queue and opens it again in the same directory.
func (h *Harness) Reopen() {
	h.T.Helper()
	h.StopRun()
	if err := h.Q.Close(); err != nil {
		h.T.Fatalf("Close() error = %v", err)
	}
	h.Q = h.impl.Open(h.T, h.Dir, h.Cfg)
}

// StartRun runs the queue's Run in the background until StopRun.
func (h *Harness) StartRun() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	q := h.Q
	go func() { done <- q.Run(ctx) }()
	h.stopRun = func() {
		cancel()
		if err := <-done; err != nil {
			h.T.Errorf("Run() = %v, want nil after cancel", err)
		}
	}
}

// StopRun stops a Run started by StartRun.
func (h *Harness) StopRun() {
	if h.stopRun != nil {
		h.stopRun()
		h.stopRun = nil
	}
}

// Eventually advances the fake clock by step until cond holds, failing
// after a few seconds of real time.
func (h *Harness) Eventually(what string, step time.Duration, cond func() bool) {
	h.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.T.Fatalf("timed out waiting until %s", what)
		}
		h.Clk.Advance(step)
		time.Sleep(time.Millisecond) // let Run's goroutine take the tick
	}
}

// Append appends env and fails the test on error.
func (h *Harness) Append(env *pb.Envelope) uint64 {
	h.T.Helper()
	seq, err := h.Q.Append(context.Background(), env)
	if err != nil {
		h.T.Fatalf("Append(%s) error = %v", protocol.BodyName(env), err)
	}
	return seq
}

// Decoded is a pending item with its envelope.
type Decoded struct {
	outbox.Item
	Env *pb.Envelope
}

// All pages through everything pending from the zero cursor.
func (h *Harness) All() []Decoded {
	h.T.Helper()
	var out []Decoded
	var cur outbox.Cursor
	for {
		items, next, err := h.Q.Pending(context.Background(), cur, 1000, 1<<20)
		if err != nil {
			h.T.Fatalf("Pending() error = %v", err)
		}
		if len(items) == 0 {
			return out
		}
		for _, it := range items {
			out = append(out, Decoded{Item: it, Env: decode(h.T, it)})
		}
		cur = next
	}
}

func decode(t testing.TB, it outbox.Item) *pb.Envelope {
	t.Helper()
	env, err := protocol.Decode(it.Payload)
	if err != nil {
		t.Fatalf("pending item %d does not decode: %v", it.Seq, err)
	}
	if env.GetSeq() != it.Seq {
		t.Fatalf("pending item %d carries seq %d", it.Seq, env.GetSeq())
	}
	if c, _ := outbox.ClassOf(env); c != it.Class {
		t.Fatalf("pending item %d of class %s holds a %s body", it.Seq, it.Class, protocol.BodyName(env))
	}
	return env
}

// Seqs lists the items' sequence numbers.
func Seqs(ds []Decoded) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.Seq
	}
	return out
}

// Report returns a resource report produced at at, about 100 bytes
// marshalled, with values derived from i.
func Report(at time.Time, i int) *pb.Envelope {
	return &pb.Envelope{
		NodeId: NodeID, BootEpoch: BootEpoch, SentAtMs: at.UnixMilli(), Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Report{Report: &pb.ResourceReport{
			CpuCores:    4,
			CpuPermille: uint32(100 + i%700),
			Load1Centi:  uint32(50 + i%300),
			Load5Centi:  80,
			Load15Centi: 90,
			MemTotalKib: 4 << 20,
			MemUsedKib:  uint64(1<<20 + i%100_000),
			Disks:       []*pb.DiskUsage{{Mount: "/", TotalKib: 32 << 20, UsedKib: uint64(8<<20 + i%1000)}},
			Nets:        []*pb.NetRate{{Iface: "eth0", RxBytesPerS: uint64(1000 + i%5000), TxBytesPerS: 300}},
			UptimeS:     uint64(3600 + i),
			IntervalMs:  1000,
		}},
	}
}

// Event returns an event of kind produced at at, an alarm when alarm.
func Event(at time.Time, kind string, alarm bool) *pb.Envelope {
	sev := pb.Event_SEVERITY_INFO
	if alarm {
		sev = pb.Event_SEVERITY_ALARM
	}
	return &pb.Envelope{
		NodeId: NodeID, BootEpoch: BootEpoch, SentAtMs: at.UnixMilli(), Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Event{Event: &pb.Event{Severity: sev, Kind: kind, Message: "something happened on the node"}},
	}
}

// Size is what env costs against a quota once sequenced (an estimate with
// a 5-digit sequence number and the per-record overhead of the engine).
func Size(env *pb.Envelope) int64 {
	c := proto.Clone(env).(*pb.Envelope)
	c.Seq = 10_000
	return int64(proto.Size(c)) + 19
}

// Gaps returns the gap markers among ds.
func Gaps(ds []Decoded) []*pb.Gap {
	var out []*pb.Gap
	for _, d := range ds {
		if g := d.Env.GetGap(); g != nil {
			out = append(out, g)
		}
	}
	return out
}

func ctxb() context.Context { return context.Background() }

// runConcurrently runs fn(i) for i in [0, n) on n goroutines and waits.
func runConcurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

var errInjected = errors.New("injected fault")
