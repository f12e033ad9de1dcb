package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func rep(cpu uint32, usedKiB uint64, uptime uint64) *pb.ResourceReport {
	return &pb.ResourceReport{
		CpuPermille: cpu, MemUsedKib: 1000 + uint64(cpu), Load1Centi: cpu / 10, UptimeS: uptime,
		Disks: []*pb.DiskUsage{{Mount: "/", TotalKib: 1000, UsedKib: usedKiB}, {Mount: "/data", TotalKib: 0, UsedKib: 5}},
	}
}

func TestWindowMergesReportsAndSummaries(t *testing.T) {
	// A 10-minute window holding a 1-minute summary of seqs 1-3 (stored as
	// seq 9) and two raw reports, seqs 4 and 10.
	w := &window{start: 0, end: 600_000}
	w.addSummary(Record{Seq: 9, ProducedAt: 59_000, Len: 100}, &pb.TelemetrySummary{
		WindowStartMs: 0, WindowEndMs: 60_000, Samples: 3,
		CpuPermille:      &pb.Stat{Min: 100, Max: 300, Mean: 200},
		MemUsedKib:       &pb.Stat{Min: 1100, Max: 1300, Mean: 1200},
		Load1Centi:       &pb.Stat{Min: 10, Max: 30, Mean: 20},
		DiskUsedPermille: &pb.Stat{Min: 500, Max: 500, Mean: 500},
		Last:             rep(300, 500, 3),
		Covers:           []*pb.SeqRange{{First: 1, Last: 3}},
	})
	w.addReport(Record{Seq: 10, ProducedAt: 200_000, Len: 90}, rep(700, 800, 5))
	w.addReport(Record{Seq: 4, ProducedAt: 120_000, Len: 90}, rep(500, 600, 4))
	got := w.summary()
	want := &pb.TelemetrySummary{
		WindowStartMs: 0, WindowEndMs: 600_000, Samples: 5,
		CpuPermille:      &pb.Stat{Min: 100, Max: 700, Mean: (200*3 + 700 + 500) / 5.0},
		MemUsedKib:       &pb.Stat{Min: 1100, Max: 1700, Mean: (1200*3 + 1700 + 1500) / 5.0},
		Load1Centi:       &pb.Stat{Min: 10, Max: 70, Mean: (20*3 + 70 + 50) / 5.0},
		DiskUsedPermille: &pb.Stat{Min: 500, Max: 800, Mean: (500*3 + 800 + 600) / 5.0},
		Last:             rep(700, 800, 5),
		Covers:           []*pb.SeqRange{{First: 1, Last: 4}, {First: 9, Last: 10}},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("summary() (-want +got):\n%s", diff)
	}
	if w.reports != 2 || w.bytes != 100+90+90+3*RecordOverhead || len(w.members) != 3 {
		t.Errorf("window = %d reports, %d bytes, %d members; want 2, %d, 3", w.reports, w.bytes, len(w.members), 280+3*RecordOverhead)
	}
}

func TestWindowWithoutDisks(t *testing.T) {
	w := &window{start: 0, end: 60_000}
	w.addReport(Record{Seq: 1, ProducedAt: 1}, &pb.ResourceReport{CpuPermille: 5})
	if s := w.summary(); s.GetDiskUsedPermille() != nil || s.GetCpuPermille().GetMean() != 5 {
		t.Errorf("summary() = %v, want no disk statistic and cpu mean 5", s)
	}
}

func TestFloorTo(t *testing.T) {
	for _, tt := range []struct{ ms, w, want int64 }{
		{0, 60, 0}, {59, 60, 0}, {60, 60, 60}, {-1, 60, -60}, {-60, 60, -60},
	} {
		if got := floorTo(tt.ms, tt.w); got != tt.want {
			t.Errorf("floorTo(%d, %d) = %d, want %d", tt.ms, tt.w, got, tt.want)
		}
	}
}
