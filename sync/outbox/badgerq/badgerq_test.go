package badgerq

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

// Badger leaks two goroutines when Open fails part-way, as it does on the
// corrupt databases TestOpenRecoversFromCorruption feeds it; they are
// Badger's, not the queue's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/dgraph-io/badger/v4.(*DB).monitorCache"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2/z.(*AllocatorPool).freeupAllocators"),
	)
}

// plentyFree is a DiskFree with room to spare, so tests do not depend on
// the machine's disk.
func plentyFree(string) (free, total uint64, err error) { return 100 << 30, 200 << 30, nil }

func testOptions(dir string) Options {
	o := DefaultOptions(dir)
	o.DiskFree = plentyFree
	return o
}

func openTest(t *testing.T, dir string, cfg outbox.Config) outbox.Queue {
	q, err := Open(testOptions(dir), cfg)
	if err != nil {
		t.Fatalf("Open(%s) error = %v", dir, err)
	}
	return q
}

func TestContract(t *testing.T) {
	outboxtest.Run(t, outboxtest.Impl{Open: openTest})
}

func diskOf(t *testing.T) func(dir string) int64 {
	return func(dir string) int64 {
		n, err := dirBytes(dir)
		if err != nil {
			t.Fatalf("dirBytes(%s) error = %v", dir, err)
		}
		return n
	}
}

// TestOutage is a day offline at one report a second on Badger: the
// telemetry budget holds throughout, the database stays small on disk,
// every event is kept, and what remains accounts for all 86,400 reports.
func TestOutage(t *testing.T) {
	o := outboxtest.DefaultOutage()
	o.DiskBytes = diskOf(t)
	// The 1 MiB telemetry budget plus Badger's working set: two 8 MB
	// memtables' logs, the 16 MB value log's head and a few SSTs.
	o.DiskBudget = 48 << 20
	res := outboxtest.SimulateOutage(t, outboxtest.Impl{Open: openTest}, o)
	if res.Settlement.Gapped != 0 {
		t.Errorf("a day of reports lost %d to gaps in 1 MiB, want none (summaries suffice)", res.Settlement.Gapped)
	}
}

// TestOutageTightBudget is the same day in less: in 64 KiB only by
// summarising everything but the current minute, and in 8 KiB not at all,
// so the oldest go and gap markers account for them.
func TestOutageTightBudget(t *testing.T) {
	if outboxtest.RaceEnabled {
		t.Skip("two simulated days take minutes under the race detector and have no concurrency to check")
	}
	tests := []struct {
		name      string
		quota     int64
		wantDrops bool
	}{
		{"64 KiB", 64 << 10, false},
		{"8 KiB", 8 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := outboxtest.DefaultOutage()
			o.TelemetryQuota = tt.quota
			o.DiskBytes = diskOf(t)
			o.DiskBudget = 48 << 20
			res := outboxtest.SimulateOutage(t, outboxtest.Impl{Open: openTest}, o)
			if got := res.Settlement.Gapped > 0 && res.Gaps > 0; got != tt.wantDrops {
				t.Errorf("result %+v, want drops into gap markers %v", res, tt.wantDrops)
			}
		})
	}
}
