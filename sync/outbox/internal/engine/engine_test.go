package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDisk = errors.New("injected disk error")

// faultStore is a MemStore whose operations fail on demand.
type faultStore struct {
	*MemStore
	failCommit atomic.Int32 // commits left to fail
	failNth    atomic.Int32 // when > 0, the nth commit from now fails
	failSync   atomic.Bool
	failScan   atomic.Bool
	syncs      atomic.Int32
	syncDelay  time.Duration
}

func (s *faultStore) Commit(parts []Part) error {
	if s.failCommit.Load() > 0 {
		s.failCommit.Add(-1)
		return errDisk
	}
	if s.failNth.Load() > 0 && s.failNth.Add(-1) == 0 {
		return errDisk
	}
	return s.MemStore.Commit(parts)
}

func (s *faultStore) Sync() error {
	s.syncs.Add(1)
	if s.syncDelay > 0 {
		time.Sleep(s.syncDelay) // a disk's fsync latency
	}
	if s.failSync.Load() {
		return errDisk
	}
	return s.MemStore.Sync()
}

func (s *faultStore) Scan(c outbox.Class, from uint64, values bool, fn func(Record) bool) error {
	if s.failScan.Load() {
		return errDisk
	}
	return s.MemStore.Scan(c, from, values, fn)
}

func newTest(t *testing.T, mutate func(*outbox.Config)) (*Engine, *faultStore, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(outboxtest.Start)
	cfg := outboxtest.Config(t, clk)
	if mutate != nil {
		mutate(&cfg)
	}
	fs := &faultStore{MemStore: NewMemStore()}
	e, err := New(fs, cfg, Options{})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e, fs, clk
}

func TestCommitFailureGivesNumbersBack(t *testing.T) {
	e, fs, clk := newTest(t, nil)
	ctx := context.Background()
	if seq, err := e.Append(ctx, outboxtest.Report(clk.Now(), 0)); err != nil || seq != 1 {
		t.Fatalf("Append() = %d, %v; want 1", seq, err)
	}
	fs.failCommit.Store(1)
	env := outboxtest.Event(clk.Now(), "e", false)
	if _, err := e.Append(ctx, env); !errors.Is(err, errDisk) || env.GetSeq() != 0 {
		t.Fatalf("Append() with a failing commit = seq %d, %v; want the disk error and seq 0", env.GetSeq(), err)
	}
	if seq, err := e.Append(ctx, env); err != nil || seq != 2 {
		t.Errorf("Append() after the failure = %d, %v; want 2 (no hole)", seq, err)
	}
	st := e.State()
	if st.NextSeq != 3 || st.Classes[outbox.Event].Count != 1 || st.Classes[outbox.Event].Appended != 1 {
		t.Errorf("State() = %+v, want next 3 and one event", st)
	}
}

func TestSyncFailure(t *testing.T) {
	e, fs, clk := newTest(t, nil)
	ctx := context.Background()
	fs.failSync.Store(true)
	seq, err := e.Append(ctx, outboxtest.Event(clk.Now(), "e", false))
	if !errors.Is(err, errDisk) || seq != 1 {
		t.Fatalf("Append(event) with a failing sync = %d, %v; want seq 1 and the error (stored, not durable)", seq, err)
	}
	if _, err := e.Append(ctx, outboxtest.Report(clk.Now(), 0)); err != nil {
		t.Fatalf("Append(report) error = %v (telemetry does not wait for a sync)", err)
	}
	// Nothing unsynced is handed out.
	if items, _, err := e.Pending(ctx, outbox.Cursor{}, 10, 1<<20); !errors.Is(err, errDisk) || len(items) != 0 {
		t.Fatalf("Pending() with a failing sync = %d items, %v; want none and the error", len(items), err)
	}
	fs.failSync.Store(false)
	items, _, err := e.Pending(ctx, outbox.Cursor{}, 10, 1<<20)
	if err != nil || len(items) != 2 {
		t.Errorf("Pending() after the disk recovered = %d items, %v; want 2", len(items), err)
	}
}

func TestPendingSyncsTelemetryFirst(t *testing.T) {
	e, fs, clk := newTest(t, nil)
	ctx := context.Background()
	for i := range 5 {
		if _, err := e.Append(ctx, outboxtest.Report(clk.Now(), i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := fs.syncs.Load(); n != 0 {
		t.Fatalf("telemetry appends synced %d times, want 0", n)
	}
	if items, _, err := e.Pending(ctx, outbox.Cursor{}, 10, 1<<20); err != nil || len(items) != 5 {
		t.Fatalf("Pending() = %d items, %v", len(items), err)
	}
	if n := fs.syncs.Load(); n != 1 {
		t.Errorf("Pending() synced %d times, want once before handing telemetry out", n)
	}
	if _, _, err := e.Pending(ctx, outbox.Cursor{}, 10, 1<<20); err != nil {
		t.Fatal(err)
	}
	if n := fs.syncs.Load(); n != 1 {
		t.Errorf("a second Pending() with nothing new synced again (%d syncs)", n)
	}
}

func TestGroupCommitSharesSyncs(t *testing.T) {
	e, fs, clk := newTest(t, nil)
	fs.syncDelay = 2 * time.Millisecond
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := e.Append(context.Background(), outboxtest.Event(clk.Now(), "e", false)); err != nil {
					t.Errorf("Append() error = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	syncs := fs.syncs.Load()
	if syncs >= writers*each/2 {
		t.Errorf("%d event appends took %d syncs, want concurrent appenders to share them", writers*each, syncs)
	}
	t.Logf("%d concurrent event appends, %d syncs", writers*each, syncs)
}

func TestAckFailureKeepsItems(t *testing.T) {
	e, fs, clk := newTest(t, nil)
	ctx := context.Background()
	for i := range 4 {
		if _, err := e.Append(ctx, outboxtest.Report(clk.Now(), i)); err != nil {
			t.Fatal(err)
		}
	}
	before := e.State()
	fs.failCommit.Store(1)
	if err := e.Ack(ctx, 3, nil); !errors.Is(err, errDisk) {
		t.Fatalf("Ack() error = %v, want the disk error", err)
	}
	if after := e.State(); after.Classes != before.Classes {
		t.Errorf("State() after a failed ack = %+v, want unchanged %+v", after.Classes, before.Classes)
	}
	fs.failScan.Store(true)
	if err := e.Ack(ctx, 3, nil); !errors.Is(err, errDisk) {
		t.Fatalf("Ack() with a failing scan error = %v", err)
	}
	fs.failScan.Store(false)
	if err := e.Ack(ctx, 3, nil); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	if st := e.State(); st.FirstSeq != 4 || st.Classes[outbox.Telemetry].Count != 1 {
		t.Errorf("State() = first %d count %d, want 4 and 1", st.FirstSeq, st.Classes[outbox.Telemetry].Count)
	}
}

func TestReliefFailureRetries(t *testing.T) {
	size := outboxtest.Size(outboxtest.Event(outboxtest.Start, "e", false))
	e, fs, clk := newTest(t, func(c *outbox.Config) {
		c.Policies[outbox.Event] = outbox.Policy{Quota: 10 * size, WhenFull: outbox.DropOldest}
	})
	ctx := context.Background()
	var seqs []uint64
	add := func() {
		t.Helper()
		seq, err := e.Append(ctx, outboxtest.Event(clk.Now(), "e", false))
		if err != nil {
			t.Fatalf("Append() error = %v", err)
		}
		seqs = append(seqs, seq)
	}
	for range 10 {
		add()
	}
	// The append that goes over quota commits, but the relief after it
	// fails: the append still succeeds and the class stays over quota.
	fs.failNth.Store(2)
	add()
	if b := e.State().Classes[outbox.Event].Bytes; b <= 10*size {
		t.Fatalf("event class holds %d bytes after a failed relief, want over the quota %d", b, 10*size)
	}
	// The next append relieves it, with nothing half-done in between.
	add()
	if b := e.State().Classes[outbox.Event].Bytes; b > 10*size {
		t.Errorf("event class holds %d bytes after relief recovered, quota %d", b, 10*size)
	}
	h := &outboxtest.Harness{T: t, Q: e, Clk: clk}
	outboxtest.CheckSettled(t, h.All(), seqs, e.State().NextSeq)
}

func TestRefusalsKeptWhenTheirMarkerFails(t *testing.T) {
	size := outboxtest.Size(outboxtest.Event(outboxtest.Start, "e", false))
	e, fs, clk := newTest(t, func(c *outbox.Config) { c.Policies[outbox.Event].Quota = size })
	ctx := context.Background()
	for range 3 {
		e.Append(ctx, outboxtest.Event(clk.Now(), "e", false))
	}
	fs.failCommit.Store(1)
	e.flushRefusals()
	h := &outboxtest.Harness{T: t, Q: e, Clk: clk}
	if gaps := outboxtest.Gaps(h.All()); len(gaps) != 0 {
		t.Fatalf("gaps after a failed flush = %v, want none yet", gaps)
	}
	e.flushRefusals()
	gaps := outboxtest.Gaps(h.All())
	if len(gaps) != 1 || gaps[0].GetDropped() != 2 {
		t.Errorf("gaps after the retried flush = %v, want one with the 2 refusals", gaps)
	}
}
