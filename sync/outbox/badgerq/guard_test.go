package badgerq

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

func TestJudge(t *testing.T) {
	o := DefaultOptions("d") // floor: max(64 MiB, 5 %), cap 256 MiB
	const gib = 1 << 30
	tests := []struct {
		name        string
		free, total uint64
		used        int64
		want        outbox.Pressure
	}{
		{"plenty", 50 * gib, 100 * gib, 10 << 20, outbox.PressureNone},
		{"under 5 % free", 4 * gib, 100 * gib, 10 << 20, outbox.PressureHard},
		{"under 10 % free", 9 * gib, 100 * gib, 10 << 20, outbox.PressureSoft},
		{"small disk under 64 MiB", 60 << 20, gib, 10 << 20, outbox.PressureHard},
		{"small disk under 128 MiB", 100 << 20, gib, 10 << 20, outbox.PressureSoft},
		{"database at its cap", 50 * gib, 100 * gib, 256 << 20, outbox.PressureHard},
		{"database at 80 % of its cap", 50 * gib, 100 * gib, 210 << 20, outbox.PressureSoft},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge(o, tt.free, tt.total, tt.used); got != tt.want {
				t.Errorf("judge(free %d, total %d, used %d) = %v, want %v", tt.free, tt.total, tt.used, got, tt.want)
			}
		})
	}
}

// guarded opens a queue whose disk reports *free bytes free of 100 GiB.
func guarded(t *testing.T, free *atomic.Uint64, mutate func(*outbox.Config)) *outboxtest.Harness {
	impl := outboxtest.Impl{Open: func(t *testing.T, dir string, cfg outbox.Config) outbox.Queue {
		o := DefaultOptions(dir)
		o.DiskFree = func(string) (uint64, uint64, error) { return free.Load(), 100 << 30, nil }
		q, err := Open(o, cfg)
		if err != nil {
			t.Fatalf("Open() error = %v", err)
		}
		return q
	}}
	return outboxtest.NewHarness(t, impl, mutate)
}

func TestDiskGuardHard(t *testing.T) {
	var free atomic.Uint64
	free.Store(50 << 30)
	h := guarded(t, &free, nil)
	h.StartRun()
	h.Append(outboxtest.Report(h.Clk.Now(), 0))

	free.Store(1 << 30) // under 5 % of 100 GiB
	h.Eventually("hard pressure", time.Second, func() bool { return h.Q.State().Pressure == outbox.PressureHard })
	if _, err := h.Q.Append(ctx(), outboxtest.Event(h.Clk.Now(), "e", false)); !errors.Is(err, outbox.ErrFull) {
		t.Errorf("Append(event) under hard pressure error = %v, want ErrFull", err)
	}
	if _, err := h.Q.Append(ctx(), outboxtest.Report(h.Clk.Now(), 1)); !errors.Is(err, outbox.ErrFull) {
		t.Errorf("Append(report) under hard pressure error = %v, want ErrFull", err)
	}
	h.Eventually("the refusals are recorded", time.Second, func() bool { return len(outboxtest.Gaps(h.All())) == 2 })
	for _, g := range outboxtest.Gaps(h.All()) {
		if g.GetReason() != "disk" || g.GetDropped() != 1 {
			t.Errorf("gap = %v, want one refusal for reason disk", g)
		}
	}

	free.Store(50 << 30)
	h.Eventually("the pressure passes", time.Second, func() bool { return h.Q.State().Pressure == outbox.PressureNone })
	h.Append(outboxtest.Event(h.Clk.Now(), "e", false))
	if st := h.Q.State(); st.DiskBytes <= 0 {
		t.Errorf("State().DiskBytes = %d, want the database's size", st.DiskBytes)
	}
}

func TestDiskGuardSoftHalvesTelemetry(t *testing.T) {
	var free atomic.Uint64
	free.Store(50 << 30)
	h := guarded(t, &free, nil)
	var seqs []uint64
	for i := range 2000 {
		seqs = append(seqs, h.Append(outboxtest.Report(h.Clk.Now(), i)))
	}
	before := h.Q.State().Classes[outbox.Telemetry].Bytes
	free.Store(8 << 30) // under 10 % of 100 GiB
	h.StartRun()
	h.Eventually("telemetry is halved", time.Second, func() bool {
		c := h.Q.State().Classes[outbox.Telemetry]
		return c.Bytes <= before/2 && c.DroppedDisk > 0
	})
	st := h.Q.State()
	if st.Pressure != outbox.PressureSoft {
		t.Errorf("State().Pressure = %v, want soft", st.Pressure)
	}
	h.StopRun()
	all := h.All()
	outboxtest.CheckSettled(t, all, seqs, st.NextSeq)
	if gaps := outboxtest.Gaps(all); len(gaps) != 1 || gaps[0].GetReason() != "disk" || gaps[0].GetClass() != "telemetry" {
		t.Errorf("gaps = %v, want one telemetry gap for reason disk", gaps)
	}
}

func TestDiskGuardDatabaseCap(t *testing.T) {
	impl := outboxtest.Impl{Open: func(t *testing.T, dir string, cfg outbox.Config) outbox.Queue {
		o := testOptions(dir)
		o.MaxDiskBytes = 4 << 10 // a fresh database already takes more
		q, err := Open(o, cfg)
		if err != nil {
			t.Fatalf("Open() error = %v", err)
		}
		return q
	}}
	h := outboxtest.NewHarness(t, impl, nil)
	h.StartRun()
	h.Eventually("hard pressure", time.Second, func() bool { return h.Q.State().Pressure == outbox.PressureHard })
	if _, err := h.Q.Append(ctx(), outboxtest.Event(h.Clk.Now(), "e", false)); !errors.Is(err, outbox.ErrFull) {
		t.Errorf("Append() over the database cap error = %v, want ErrFull", err)
	}
}

func ctx() context.Context { return context.Background() }

func TestDirBytesCountsAllocatedSpace(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "dense"), make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := dirBytes(dir)
	if err != nil {
		t.Fatalf("dirBytes() error = %v", err)
	}
	if got < 64<<10 || got > 1<<20 {
		t.Errorf("dirBytes() = %d, want about the 64 KiB actually written, not the sparse file's 1 GiB", got)
	}
}
