package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/agent/internal/logtest"
	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox"
)

// fakeSource produces numbered reports; samples counts its calls.
type fakeSource struct {
	mu      sync.Mutex
	samples int
	err     error
}

func (f *fakeSource) Facts(context.Context) (*pb.Hello, error) {
	return &pb.Hello{Hostname: "cab-computer", Os: "linux", Arch: "arm64", CpuCores: 4, MemTotalKib: 4 << 20}, nil
}

func (f *fakeSource) Sample(context.Context, time.Time) (*pb.ResourceReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.samples++
	if f.err != nil {
		return nil, f.err
	}
	return &pb.ResourceReport{CpuCores: 4, CpuPermille: uint32(f.samples), MemTotalKib: 4 << 20}, nil
}

// fakePublisher records envelopes and numbers them; it answers with errs
// in turn, then nil. An error it answers with leaves the envelope
// unnumbered, except errStoredNotSynced.
type fakePublisher struct {
	mu   sync.Mutex
	errs []error
	got  []*pb.Envelope
	seq  uint64
}

var errStoredNotSynced = errors.New("outbox append telemetry seq 9: sync: input/output error")

func (f *fakePublisher) Publish(_ context.Context, env *pb.Envelope) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, env)
	var err error
	if len(f.errs) > 0 {
		err, f.errs = f.errs[0], f.errs[1:]
	}
	if err != nil && err != errStoredNotSynced {
		return 0, err
	}
	f.seq++
	return f.seq, err
}

func (f *fakePublisher) calls() []*pb.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.Envelope(nil), f.got...)
}

func TestReporter(t *testing.T) {
	start := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start)
	full := fmt.Errorf("outbox append telemetry: %w: disk guard", outbox.ErrFull)
	pub := &fakePublisher{errs: []error{nil, full, full, errors.New("outbox append telemetry: outbox closed"), nil, errStoredNotSynced, nil}}
	logs := logtest.New(t)
	r := &reporter{
		src: &fakeSource{}, publish: pub.Publish, clock: fake, interval: 10 * time.Second, log: logs.Logger(),
		stamper: &stamp.Stamper{NodeID: "truck-042", BootEpoch: 5, Clock: fake},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	brokertest.WaitFor(t, 30*time.Second, "8 reports", func() bool {
		if len(pub.calls()) >= 8 {
			return true
		}
		fake.Advance(10 * time.Second)
		return false
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v after cancel, want nil", err)
	}

	calls := pub.calls()
	prev := start.UnixMilli()
	for i, env := range calls {
		if env.GetNodeId() != "truck-042" || env.GetBootEpoch() != 5 || env.GetCapability() != protocol.CapabilityVersion {
			t.Errorf("report %d = %v, want node truck-042, epoch 5", i, env)
		}
		// Stamped with its tick: whole intervals after the previous one
		// (a tick the reporter was too slow for is skipped, like
		// time.Ticker's).
		if gap := env.GetSentAtMs() - prev; gap <= 0 || gap%10_000 != 0 {
			t.Errorf("report %d produced %d ms after the previous, want a multiple of 10000", i, gap)
		}
		prev = env.GetSentAtMs()
		// The first sample primed the counters; the first report is the second sample.
		if got := env.GetReport().GetCpuPermille(); got != uint32(i+2) {
			t.Errorf("report %d carries sample %d, want %d", i, got, i+2)
		}
	}
	if q, ref, f := r.queued.Load(), r.refused.Load(), r.failed.Load(); q != uint64(len(calls)-3) || ref != 2 || f != 1 {
		t.Errorf("queued, refused, failed = %d, %d, %d; want %d, 2, 1", q, ref, f, len(calls)-3)
	}
	for msg, want := range map[string]int{
		"report refused by the outbox": 1, // twice the same error
		"report not queued":            1,
		"reports queued again":         1,
		"report queued but not synced": 1,
	} {
		if n := logs.Count(msg); n != want {
			t.Errorf("logged %q %d times, want %d", msg, n, want)
		}
	}
}

func TestReporterSampleErrorLoggedOnce(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC))
	src := &fakeSource{err: errors.New("collect: cpu times: open /proc/stat: too many open files")}
	pub := &fakePublisher{}
	logs := logtest.New(t)
	r := &reporter{
		src: src, publish: pub.Publish, clock: fake, interval: time.Second, log: logs.Logger(),
		stamper: &stamp.Stamper{NodeID: "truck-042", Clock: fake},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	brokertest.WaitFor(t, 30*time.Second, "5 failed samples", func() bool {
		if r.sampleErrors.Load() >= 5 {
			return true
		}
		fake.Advance(time.Second)
		return false
	})
	cancel()
	<-done
	if len(pub.calls()) != 0 {
		t.Errorf("published %d reports without a sample", len(pub.calls()))
	}
	if n := logs.Count("sample failed"); n != 1 {
		t.Errorf("logged the same sample error %d times, want once", n)
	}
}
