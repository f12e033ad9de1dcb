package agent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/agent/internal/logtest"
	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
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

// fakePublisher records envelopes; it answers with errs in turn, then nil.
type fakePublisher struct {
	mu   sync.Mutex
	errs []error
	got  []*pb.Envelope
}

func (f *fakePublisher) Publish(_ context.Context, env *pb.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, env)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return err
	}
	return nil
}

func (f *fakePublisher) calls() []*pb.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.Envelope(nil), f.got...)
}

func TestReporter(t *testing.T) {
	start := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start)
	pub := &fakePublisher{errs: []error{ErrNotConnected, ErrNotConnected, ErrNotConnected, errors.New("publish report: no acknowledgement in time"), nil}}
	logs := logtest.New(t)
	r := &reporter{
		src: &fakeSource{}, pub: pub, clock: fake, interval: 10 * time.Second, log: logs.Logger(),
		stamper: &stamp.Stamper{NodeID: "truck-042", BootEpoch: 5, Clock: fake},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	brokertest.WaitFor(t, 30*time.Second, "7 reports", func() bool {
		if len(pub.calls()) >= 7 {
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
	if got, want := r.sent.Load(), uint64(len(calls)-4); got != want {
		t.Errorf("sent = %d, want %d", got, want)
	}
	if r.dropped.Load() != 4 || r.failed.Load() != 1 {
		t.Errorf("dropped, failed = %d, %d, want 4, 1", r.dropped.Load(), r.failed.Load())
	}
	for msg, want := range map[string]int{"link down: dropping resource reports until it is back": 1, "report not published": 1, "reports resumed": 1} {
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
		src: src, pub: pub, clock: fake, interval: time.Second, log: logs.Logger(),
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
