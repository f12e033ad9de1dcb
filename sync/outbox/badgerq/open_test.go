package badgerq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// filled opens a queue in a fresh directory, appends n reports and an
// event, closes it and returns the directory and the fake clock.
func filled(t *testing.T, n int) (string, *clock.Fake) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "outbox")
	clk := clock.NewFake(outboxtest.Start)
	q := openTest(t, dir, outboxtest.Config(t, clk))
	for i := range n {
		if _, err := q.Append(context.Background(), outboxtest.Report(clk.Now(), i)); err != nil {
			t.Fatalf("Append() error = %v", err)
		}
	}
	if _, err := q.Append(context.Background(), outboxtest.Event(clk.Now(), "e", false)); err != nil {
		t.Fatalf("Append() error = %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	return dir, clk
}

func TestOpenRecoversFromCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
	}{
		{"garbage manifest", func(t *testing.T, dir string) { overwrite(t, filepath.Join(dir, "MANIFEST")) }},
		{"garbage value log", func(t *testing.T, dir string) { overwrite(t, glob(t, dir, "*.vlog")) }},
		{"garbage key registry", func(t *testing.T, dir string) { overwrite(t, filepath.Join(dir, "KEYREGISTRY")) }},
		{"opens that crashed before", func(t *testing.T, dir string) {
			// What a process killed by a panic inside Badger's open leaves.
			if err := os.WriteFile(filepath.Join(dir, openingMarker), []byte("2"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, clk := filled(t, 50)
			tt.corrupt(t, dir)
			clk.Advance(time.Hour)
			h := &outboxtest.Harness{T: t, Clk: clk, Cfg: outboxtest.Config(t, clk), Dir: dir}
			h.Q = openTest(t, dir, h.Cfg)
			t.Cleanup(func() { h.Q.Close() })

			want := fmt.Sprintf("%s.corrupt-%d", dir, clk.Now().Unix())
			st := h.Q.State()
			if st.Recovered != want {
				t.Errorf("State().Recovered = %q, want %q", st.Recovered, want)
			}
			if _, err := os.Stat(filepath.Join(want, "MANIFEST")); err != nil {
				t.Errorf("the unreadable database was not kept aside: %v", err)
			}
			all := h.All()
			if len(all) != 1 {
				t.Fatalf("fresh queue holds %d items, want the corruption alarm alone", len(all))
			}
			ev := all[0].Env.GetEvent()
			if all[0].Class != outbox.Control || ev.GetKind() != "outbox.corrupt" || ev.GetSeverity() != pb.Event_SEVERITY_ALARM ||
				ev.GetAttributes()["moved_to"] != want {
				t.Errorf("alarm = %v in %s, want an outbox.corrupt alarm naming %s in control", ev, all[0].Class, want)
			}
			// The queue carries on.
			if seq := h.Append(outboxtest.Report(clk.Now(), 0)); seq != 2 {
				t.Errorf("Append() after recovery = %d, want 2", seq)
			}
		})
	}
}

func overwrite(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Repeat("not badger ", 8)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func glob(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) == 0 {
		t.Fatalf("no %s in %s: %v", pattern, dir, err)
	}
	return m[0]
}

func TestOpenSurvivesOneCrashedOpen(t *testing.T) {
	dir, clk := filled(t, 5)
	// One unfinished open (a power cut while opening) is not corruption.
	if err := os.WriteFile(filepath.Join(dir, openingMarker), []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := openTest(t, dir, outboxtest.Config(t, clk))
	defer q.Close()
	if st := q.State(); st.Recovered != "" || st.LastSeq != 6 {
		t.Errorf("State() = recovered %q, last %d; want the database kept with seq 6", st.Recovered, st.LastSeq)
	}
	if _, err := os.Stat(filepath.Join(dir, openingMarker)); !os.IsNotExist(err) {
		t.Errorf("the open marker is still there after a successful open: %v", err)
	}
}

func TestOpenInUseIsNotCorruption(t *testing.T) {
	dir, clk := filled(t, 5)
	q := openTest(t, dir, outboxtest.Config(t, clk))
	defer q.Close()
	_, err := Open(testOptions(dir), outboxtest.Config(t, clk))
	if !errors.Is(err, errInUse) {
		t.Fatalf("second Open() error = %v, want errInUse", err)
	}
	if m, _ := filepath.Glob(dir + ".corrupt-*"); len(m) != 0 {
		t.Errorf("a database in use was moved aside to %v", m)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := outboxtest.Config(t, clock.NewFake(outboxtest.Start))
	cfg.NodeID = "Bad Node"
	if _, err := Open(testOptions(dir), cfg); err == nil {
		t.Error("Open() with an invalid node ID succeeded")
	}
	o := testOptions(dir)
	o.MaxDiskBytes = 0
	if _, err := Open(o, outboxtest.Config(t, clock.NewFake(outboxtest.Start))); err == nil {
		t.Error("Open() with a zero disk cap succeeded")
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Options)
		ok     bool
	}{
		{"defaults", func(*Options) {}, true},
		{"no dir", func(o *Options) { o.Dir = "" }, false},
		{"percent too high", func(o *Options) { o.MinFreePercent = 100 }, false},
		{"negative percent", func(o *Options) { o.MinFreePercent = -1 }, false},
		{"no disk cap", func(o *Options) { o.MaxDiskBytes = 0 }, false},
		{"no GC interval", func(o *Options) { o.GCInterval = 0 }, false},
		{"tiny memtable", func(o *Options) { o.MemTableSize = 1 << 10 }, false},
		{"huge value log", func(o *Options) { o.ValueLogFileSize = 1 << 30 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions("/var/lib/skyedge/outbox")
			tt.mutate(&o)
			if err := o.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestFitPlatform(t *testing.T) {
	cfg := outbox.DefaultConfig()
	for c := range cfg.Policies {
		cfg.Policies[c].Quota = 200 << 20
	}
	opts := DefaultOptions("d")
	opts.MaxDiskBytes = 2 << 30

	o64, c64 := fitPlatform(opts, cfg, 64)
	if o64.MaxDiskBytes != opts.MaxDiskBytes || o64.ValueLogFileSize != opts.ValueLogFileSize || c64.Policies != cfg.Policies {
		t.Errorf("fitPlatform(64-bit) changed the settings")
	}
	o32, c32 := fitPlatform(opts, cfg, 32)
	if o32.MaxDiskBytes != 512<<20 || o32.ValueLogFileSize != 4<<20 {
		t.Errorf("fitPlatform(32-bit) = disk cap %d, value log %d; want 512 MiB and 4 MiB", o32.MaxDiskBytes, o32.ValueLogFileSize)
	}
	var total int64
	for _, p := range c32.Policies {
		total += p.Quota
	}
	if total > 256<<20 || c32.Policies[outbox.Event].Quota != c32.Policies[outbox.Telemetry].Quota {
		t.Errorf("fitPlatform(32-bit) quotas = %v (total %d), want them scaled evenly under 256 MiB", c32.Policies, total)
	}
}
