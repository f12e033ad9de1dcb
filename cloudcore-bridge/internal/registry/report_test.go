package registry

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestSetReportIsConvertedWhenRead(t *testing.T) {
	r := open(t, openDB(t, t.TempDir()), nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r.Update("n1", func(n *Node) {
		n.SetReport(&pb.ResourceReport{
			CpuCores: 2, CpuPermille: 10, MemTotalKib: 100, MemUsedKib: 50, UptimeS: 7,
			Disks:     []*pb.DiskUsage{{Mount: "/data", TotalKib: 9, UsedKib: 3}},
			Nets:      []*pb.NetRate{{Iface: "eth0", RxBytesPerS: 1, TxBytesPerS: 2}},
			Temps:     []*pb.Temperature{{Sensor: "soc", DeciCelsius: -12}},
			Container: &pb.ContainerLimits{CpuMaxMilli: 500, MemoryMaxKib: 64, MemoryCurrentKib: 32},
		}, at)
		if n.LastReport != nil {
			t.Errorf("LastReport converted inside Update, want deferred")
		}
	})
	want := &Report{
		CPUCores: 2, CPUPermille: 10, MemTotalKiB: 100, MemUsedKiB: 50, UptimeS: 7,
		Disks:     []Disk{{Mount: "/data", TotalKiB: 9, UsedKiB: 3}},
		Nets:      []Net{{Iface: "eth0", RxBytesPerS: 1, TxBytesPerS: 2}},
		Temps:     []Temp{{Sensor: "soc", DeciCelsius: -12}},
		Container: &Container{CPUMaxMilli: 500, MemoryMaxKiB: 64, MemoryCurrentKiB: 32},
	}
	n, _ := r.Get("n1")
	if diff := cmp.Diff(want, n.LastReport); diff != "" {
		t.Errorf("Get().LastReport (-want +got):\n%s", diff)
	}
	if !n.LastReportAt.Equal(at) {
		t.Errorf("LastReportAt = %v, want %v", n.LastReportAt, at)
	}
	if l := r.List(); len(l) != 1 || l[0].LastReport == nil || l[0].LastReport.CPUPermille != 10 {
		t.Errorf("List() = %+v, want the converted report", l)
	}
}
