package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

// keptStore is a MemStore that outlives the engines opened over it, as a
// database outlives a process, and counts the scans that start at the
// beginning of a class (what counting a whole class needs).
type keptStore struct {
	*MemStore
	fullScans atomic.Int32
	scans     atomic.Int32
}

func (s *keptStore) Scan(c outbox.Class, from uint64, values bool, fn func(Record) bool) error {
	s.scans.Add(1)
	if from == 0 {
		s.fullScans.Add(1)
	}
	return s.MemStore.Scan(c, from, values, fn)
}

func (s *keptStore) Close() error { return nil }

func openKept(t *testing.T, s Store, clk clock.Clock, mutate func(*outbox.Config)) *Engine {
	t.Helper()
	cfg := outboxtest.Config(t, clk)
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(s, cfg, Options{})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// fillMixed appends reports, events and alarms and acknowledges some of
// them from the front and the middle.
func fillMixed(t *testing.T, e *Engine, clk *clock.Fake) {
	t.Helper()
	ctx := context.Background()
	for i := range 60 {
		env := outboxtest.Report(clk.Now(), i)
		switch i % 5 {
		case 1:
			env = outboxtest.Event(clk.Now(), "e", false)
		case 2:
			env = outboxtest.Event(clk.Now(), "a", true)
		}
		if _, err := e.Append(ctx, env); err != nil {
			t.Fatalf("Append() error = %v", err)
		}
		clk.Advance(time.Second)
	}
	if err := e.Ack(ctx, 7, []acks.Range{{First: 20, Last: 25}, {First: 60, Last: 60}}); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
}

func sameFigures(t *testing.T, got, want outbox.State) {
	t.Helper()
	if got.NextSeq != want.NextSeq || got.FirstSeq != want.FirstSeq || got.LastSeq != want.LastSeq {
		t.Errorf("State() = next %d first %d last %d, want %d %d %d", got.NextSeq, got.FirstSeq, got.LastSeq, want.NextSeq, want.FirstSeq, want.LastSeq)
	}
	for _, c := range outbox.Classes {
		g, w := got.Classes[c], want.Classes[c]
		if g.Count != w.Count || g.Bytes != w.Bytes || g.FirstSeq != w.FirstSeq || g.LastSeq != w.LastSeq {
			t.Errorf("%s = %+v, want the figures of %+v", c, g, w)
		}
	}
}

func TestOpenUsesPersistedFigures(t *testing.T) {
	clk := clock.NewFake(outboxtest.Start)
	s := &keptStore{MemStore: NewMemStore()}
	e := openKept(t, s, clk, nil)
	fillMixed(t, e, clk)
	want := e.State()
	f, ok, _ := s.LoadFigures()
	if !ok {
		t.Fatal("LoadFigures() found none after commits")
	}
	for _, c := range outbox.Classes {
		cf, st := f.Classes[c], want.Classes[c]
		if cf.Count != st.Count || cf.Bytes != st.Bytes || cf.First > st.FirstSeq || cf.Last < st.LastSeq {
			t.Errorf("persisted %s figures %+v do not match %+v", c, cf, st)
		}
	}
	if f.Next != want.NextSeq {
		t.Errorf("persisted next %d, want %d", f.Next, want.NextSeq)
	}
	e.Close()

	s.fullScans.Store(0)
	e = openKept(t, s, clk, nil)
	if n := s.fullScans.Load(); n != 0 {
		t.Errorf("opening with figures scanned %d classes from the start, want none", n)
	}
	sameFigures(t, e.State(), want)
}

func TestOpenRebuildsFigures(t *testing.T) {
	tests := []struct {
		name   string
		damage func(*MemStore)
	}{
		// A store written before figures were kept.
		{"none", func(s *MemStore) { s.saved = false }},
		// Figures that cannot be those of the records.
		{"count beyond the range", func(s *MemStore) { s.figures.Classes[outbox.Telemetry].Count += 1000 }},
		{"last below the records", func(s *MemStore) { s.figures.Classes[outbox.Event].Last = 3 }},
		{"first past the records", func(s *MemStore) { s.figures.Classes[outbox.Control].First = 1 << 40 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(outboxtest.Start)
			s := &keptStore{MemStore: NewMemStore()}
			e := openKept(t, s, clk, nil)
			fillMixed(t, e, clk)
			want := e.State()
			e.Close()
			tt.damage(s.MemStore)
			e = openKept(t, s, clk, nil)
			sameFigures(t, e.State(), want)
			if _, ok, _ := s.LoadFigures(); !ok {
				t.Error("the rebuilt figures were not saved")
			}
			e.Close()
			s.fullScans.Store(0)
			openKept(t, s, clk, nil)
			if n := s.fullScans.Load(); n != 0 {
				t.Errorf("the open after a rebuild scanned %d classes, want none", n)
			}
		})
	}
}

func TestExpireScansOnlyWhenDue(t *testing.T) {
	clk := clock.NewFake(outboxtest.Start)
	s := &keptStore{MemStore: NewMemStore()}
	e := openKept(t, s, clk, func(c *outbox.Config) {
		c.Policies[outbox.Telemetry].TTL = time.Hour
	})
	ctx := context.Background()
	for i := range 30 {
		if _, err := e.Append(ctx, outboxtest.Report(clk.Now(), i)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	// 30 reports a minute apart; the oldest is 30 minutes old.
	s.scans.Store(0)
	e.maint.Lock()
	err := e.expire(clk.Now())
	e.maint.Unlock()
	if err != nil || s.scans.Load() != 0 {
		t.Fatalf("expire() with nothing due = %v after %d scans, want no scan", err, s.scans.Load())
	}
	clk.Advance(40 * time.Minute) // the first 10 are now over an hour old
	e.maint.Lock()
	err = e.expire(clk.Now())
	e.maint.Unlock()
	if err != nil || s.scans.Load() == 0 {
		t.Fatalf("expire() with reports due = %v after %d scans, want a scan", err, s.scans.Load())
	}
	if got := e.State().Classes[outbox.Telemetry]; got.DroppedTTL != 10 || got.Count != 20 {
		t.Fatalf("telemetry after expiry = %+v, want 10 dropped and 20 kept", got)
	}
	// The bound moved up to the oldest report kept: the next pass has
	// nothing to scan for until it is due.
	if got, want := e.classes[outbox.Telemetry].oldest.Load(), outboxtest.Start.Add(10*time.Minute).UnixMilli(); got != want {
		t.Errorf("oldest after expiry = %d, want %d", got, want)
	}
	s.scans.Store(0)
	e.maint.Lock()
	err = e.expire(clk.Now())
	e.maint.Unlock()
	if err != nil || s.scans.Load() != 0 {
		t.Errorf("expire() right after expiring = %v after %d scans, want no scan", err, s.scans.Load())
	}
	e.Close()
	e = openKept(t, s, clk, nil)
	if got := e.classes[outbox.Telemetry].oldest.Load(); got != outboxtest.Start.Add(10*time.Minute).UnixMilli() {
		t.Errorf("oldest after reopening = %d, want the tightened bound", got)
	}
}

// reclaimStore checks that Reclaim runs with every write held off.
type reclaimStore struct {
	*MemStore
	t         *testing.T
	reclaims  atomic.Int32
	inReclaim atomic.Bool
}

func (s *reclaimStore) Commit(parts []Part) error {
	if s.inReclaim.Load() {
		s.t.Error("a commit ran during Reclaim")
	}
	return s.MemStore.Commit(parts)
}

func (s *reclaimStore) Reclaim(context.Context) error {
	s.inReclaim.Store(true)
	defer s.inReclaim.Store(false)
	s.reclaims.Add(1)
	time.Sleep(20 * time.Millisecond) // long enough for writers to try
	return nil
}

func TestReclaimAfterDrain(t *testing.T) {
	clk := clock.NewFake(outboxtest.Start)
	s := &reclaimStore{MemStore: NewMemStore(), t: t}
	cfg := outboxtest.Config(t, clk)
	e, err := New(s, cfg, Options{ReclaimAfter: 20 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	appendReports := func(n int) {
		for i := range n {
			if _, err := e.Append(ctx, outboxtest.Report(clk.Now(), i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendReports(400) // about 40 KiB
	e.maintain(ctx, clk.Now(), false)
	if n := s.reclaims.Load(); n != 0 {
		t.Fatalf("%d reclaims before anything was deleted, want none", n)
	}
	// Acked, but a fresh backlog as large remains: not drained.
	if err := e.Ack(ctx, 300, nil); err != nil {
		t.Fatal(err)
	}
	appendReports(400)
	e.maintain(ctx, clk.Now(), false)
	if n := s.reclaims.Load(); n != 0 {
		t.Fatalf("%d reclaims with most of the queue still held, want none", n)
	}
	if err := e.Ack(ctx, e.State().LastSeq, nil); err != nil {
		t.Fatal(err)
	}
	// Writers arriving while it runs wait for it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.maintain(ctx, clk.Now(), false)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !s.inReclaim.Load() && s.reclaims.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reclaim after the drain")
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := e.Append(ctx, outboxtest.Report(clk.Now(), 0)); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		_ = e.UseStore(func(Store) error {
			if s.inReclaim.Load() {
				t.Error("a UseStore caller ran during Reclaim")
			}
			return nil
		})
	}()
	wg.Wait()
	<-done
	if n := s.reclaims.Load(); n != 1 {
		t.Fatalf("%d reclaims after the drain, want 1", n)
	}
	e.maintain(ctx, clk.Now(), false)
	if n := s.reclaims.Load(); n != 1 {
		t.Errorf("%d reclaims with nothing deleted since the last, want still 1", n)
	}
}
