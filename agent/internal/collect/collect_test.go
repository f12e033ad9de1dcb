package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/sensors"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

const (
	kib = 1024
	mib = 1024 * kib
	gib = 1024 * mib
)

var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// vehicleHost is a typical in-vehicle gateway: 4 cores, 4 GiB, an eMMC
// root and an SSD for data, Ethernet and an LTE modem, one SoC sensor.
func vehicleHost() *fakeProbes {
	return &fakeProbes{
		times: cpu.TimesStat{User: 1000, System: 400, Idle: 8000, Iowait: 100},
		infos: []cpu.InfoStat{{ModelName: "Cortex-A72"}},
		cores: 4,
		load:  load.AvgStat{Load1: 0.52, Load5: 0.61, Load15: 0.48},
		vm:    mem.VirtualMemoryStat{Total: 3884 * mib, Available: 2655 * mib},
		parts: []disk.PartitionStat{
			{Device: "/dev/mmcblk0p2", Mountpoint: "/", Fstype: "ext4"},
			{Device: "/dev/sda1", Mountpoint: "/data", Fstype: "ext4"},
		},
		usage: map[string]disk.UsageStat{
			"/":     {Total: 29 * gib, Used: 9 * gib},
			"/data": {Total: 233 * gib, Used: 80 * gib},
		},
		nets: []net.IOCountersStat{
			{Name: "lo", BytesRecv: 5e6, BytesSent: 5e6},
			{Name: "eth0", BytesRecv: 9_000_000, BytesSent: 2_000_000},
			{Name: "wwan0", BytesRecv: 400_000, BytesSent: 300_000},
		},
		temps:  []sensors.TemperatureStat{{SensorKey: "cpu_thermal", Temperature: 52.3}},
		host:   host.InfoStat{Hostname: "truck-042", Platform: "debian", PlatformVersion: "12.2", KernelVersion: "6.1.0-rpi7", BootTime: 1795000000},
		uptime: 259200,
	}
}

// advance moves the fake host forward by d seconds of a quarter-busy CPU
// and some traffic.
func (f *fakeProbes) advance(d float64) {
	f.times.User += 0.2 * d * 4
	f.times.System += 0.05 * d * 4
	f.times.Idle += 0.75 * d * 4
	for i := range f.nets {
		switch f.nets[i].Name {
		case "eth0":
			f.nets[i].BytesRecv += uint64(18500 * d)
			f.nets[i].BytesSent += uint64(4200 * d)
		case "wwan0":
			f.nets[i].BytesRecv += uint64(1200 * d)
			f.nets[i].BytesSent += uint64(850 * d)
		}
	}
	f.uptime += uint64(d)
}

func newTestSampler(p Probes, cgroupCase string) *Sampler {
	dir := filepath.Join("testdata", "cgroup", cgroupCase)
	return New(Options{
		AgentVersion:   "1.2.3",
		Probes:         p,
		CgroupRoot:     filepath.Join(dir, "sys"),
		ProcSelfCgroup: filepath.Join(dir, "proc", "cgroup"),
	})
}

func TestSampleFirstHasNoRates(t *testing.T) {
	s := newTestSampler(vehicleHost(), "missing")
	r, err := s.Sample(context.Background(), t0)
	if err != nil {
		t.Fatalf("Sample() error = %v", err)
	}
	if r.GetIntervalMs() != 0 || r.GetCpuPermille() != 0 || len(r.GetNets()) != 0 {
		t.Errorf("first Sample() = interval %d, cpu %d, nets %v, want no rates", r.GetIntervalMs(), r.GetCpuPermille(), r.GetNets())
	}
	if r.GetMemTotalKib() != 3884*1024 || r.GetMemUsedKib() != (3884-2655)*1024 {
		t.Errorf("first Sample() memory = %d/%d KiB, want %d/%d", r.GetMemUsedKib(), r.GetMemTotalKib(), (3884-2655)*1024, 3884*1024)
	}
}

func TestSampleRates(t *testing.T) {
	p := vehicleHost()
	s := newTestSampler(p, "limited")
	if _, err := s.Sample(context.Background(), t0); err != nil {
		t.Fatalf("Sample() error = %v", err)
	}
	p.advance(10)
	got, err := s.Sample(context.Background(), t0.Add(10*time.Second))
	if err != nil {
		t.Fatalf("Sample() error = %v", err)
	}
	want := &pb.ResourceReport{
		CpuCores: 4, CpuPermille: 250,
		Load1Centi: 52, Load5Centi: 61, Load15Centi: 48,
		MemTotalKib: 3884 * 1024, MemUsedKib: 1229 * 1024,
		Disks: []*pb.DiskUsage{
			{Mount: "/", TotalKib: 29 * 1024 * 1024, UsedKib: 9 * 1024 * 1024},
			{Mount: "/data", TotalKib: 233 * 1024 * 1024, UsedKib: 80 * 1024 * 1024},
		},
		Nets: []*pb.NetRate{
			{Iface: "eth0", RxBytesPerS: 18500, TxBytesPerS: 4200},
			{Iface: "wwan0", RxBytesPerS: 1200, TxBytesPerS: 850},
		},
		Temps:      []*pb.Temperature{{Sensor: "cpu_thermal", DeciCelsius: 523}},
		UptimeS:    259210,
		Container:  &pb.ContainerLimits{CpuMaxMilli: 500, MemoryMaxKib: 262144, MemoryCurrentKib: 40960},
		IntervalMs: 10000,
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Sample() mismatch (-want +got):\n%s", diff)
	}
}

func TestCPUPermille(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur cpu.TimesStat
		want      uint32
	}{
		{name: "quarter busy", prev: cpu.TimesStat{User: 100, Idle: 300}, cur: cpu.TimesStat{User: 125, Idle: 375}, want: 250},
		{name: "idle", prev: cpu.TimesStat{User: 100, Idle: 300}, cur: cpu.TimesStat{User: 100, Idle: 400}},
		{name: "all busy", prev: cpu.TimesStat{User: 100, System: 50}, cur: cpu.TimesStat{User: 150, System: 100}, want: 1000},
		{name: "iowait is idle", prev: cpu.TimesStat{}, cur: cpu.TimesStat{User: 10, Iowait: 30, Idle: 60}, want: 100},
		{name: "steal and irq are busy", prev: cpu.TimesStat{}, cur: cpu.TimesStat{Steal: 10, Irq: 5, Softirq: 5, Idle: 80}, want: 200},
		{name: "guest not counted twice", prev: cpu.TimesStat{}, cur: cpu.TimesStat{User: 50, Guest: 50, Idle: 50}, want: 500},
		{name: "counter reset", prev: cpu.TimesStat{User: 900, Idle: 900}, cur: cpu.TimesStat{User: 10, Idle: 10}},
		{name: "no time passed", prev: cpu.TimesStat{User: 5, Idle: 5}, cur: cpu.TimesStat{User: 5, Idle: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuPermille(tt.prev, tt.cur); got != tt.want {
				t.Errorf("cpuPermille(%v, %v) = %d, want %d", tt.prev, tt.cur, got, tt.want)
			}
		})
	}
}

func TestNetRates(t *testing.T) {
	tests := []struct {
		name          string
		first, second []net.IOCountersStat
		want          []*pb.NetRate
	}{
		{
			name:   "rates",
			first:  []net.IOCountersStat{{Name: "eth0", BytesRecv: 1000, BytesSent: 500}},
			second: []net.IOCountersStat{{Name: "eth0", BytesRecv: 11000, BytesSent: 2500}},
			want:   []*pb.NetRate{{Iface: "eth0", RxBytesPerS: 1000, TxBytesPerS: 200}},
		},
		{
			name:   "counter wrap gives zero, not a huge rate",
			first:  []net.IOCountersStat{{Name: "wwan0", BytesRecv: 1<<32 - 100, BytesSent: 500}},
			second: []net.IOCountersStat{{Name: "wwan0", BytesRecv: 400, BytesSent: 1500}},
			want:   []*pb.NetRate{{Iface: "wwan0", RxBytesPerS: 0, TxBytesPerS: 100}},
		},
		{
			name:   "driver reset to zero",
			first:  []net.IOCountersStat{{Name: "eth0", BytesRecv: 5e9, BytesSent: 5e9}},
			second: []net.IOCountersStat{{Name: "eth0", BytesRecv: 10, BytesSent: 10}},
			want:   []*pb.NetRate{{Iface: "eth0"}},
		},
		{
			name:   "new interface has no rate yet",
			first:  []net.IOCountersStat{{Name: "eth0", BytesRecv: 1, BytesSent: 1}},
			second: []net.IOCountersStat{{Name: "eth0", BytesRecv: 1, BytesSent: 1}, {Name: "wwan0", BytesRecv: 9e6, BytesSent: 9e6}},
			want:   []*pb.NetRate{{Iface: "eth0"}},
		},
		{
			name: "loopback, veth and silent interfaces left out",
			first: []net.IOCountersStat{
				{Name: "lo", BytesRecv: 10, BytesSent: 10}, {Name: "veth1a2b", BytesRecv: 10, BytesSent: 10},
				{Name: "dummy0"}, {Name: "eth0", BytesRecv: 10},
			},
			second: []net.IOCountersStat{
				{Name: "lo", BytesRecv: 1e6, BytesSent: 1e6}, {Name: "veth1a2b", BytesRecv: 1e6, BytesSent: 1e6},
				{Name: "dummy0"}, {Name: "eth0", BytesRecv: 20010},
			},
			want: []*pb.NetRate{{Iface: "eth0", RxBytesPerS: 2000}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := vehicleHost()
			s := newTestSampler(p, "missing")
			p.nets = tt.first
			if _, err := s.Sample(context.Background(), t0); err != nil {
				t.Fatalf("Sample() error = %v", err)
			}
			p.nets = tt.second
			r, err := s.Sample(context.Background(), t0.Add(10*time.Second))
			if err != nil {
				t.Fatalf("Sample() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, r.GetNets(), protocmp.Transform()); diff != "" {
				t.Errorf("Sample().Nets mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDisks(t *testing.T) {
	usage := map[string]disk.UsageStat{
		"/": {Total: 8 * gib, Used: 2 * gib}, "/data": {Total: 64 * gib, Used: 1 * gib},
		"/data/bind": {Total: 64 * gib, Used: 1 * gib}, "/boot": {Total: 256 * mib},
		"/run": {Total: 100 * mib}, "/snap/core/1": {Total: 60 * mib, Used: 60 * mib},
		"/var/lib/docker/overlay2/x/merged": {Total: 8 * gib}, "/empty": {},
	}
	tests := []struct {
		name  string
		parts []disk.PartitionStat
		want  []string
	}{
		{
			name: "host",
			parts: []disk.PartitionStat{
				{Device: "/dev/sda1", Mountpoint: "/data/bind", Fstype: "ext4"},
				{Device: "/dev/mmcblk0p2", Mountpoint: "/", Fstype: "ext4"},
				{Device: "/dev/mmcblk0p1", Mountpoint: "/boot", Fstype: "vfat", Opts: []string{"ro", "relatime"}},
				{Device: "/dev/sda1", Mountpoint: "/data", Fstype: "ext4"},
				{Device: "tmpfs", Mountpoint: "/run", Fstype: "tmpfs"},
				{Device: "/dev/loop0", Mountpoint: "/snap/core/1", Fstype: "squashfs", Opts: []string{"ro"}},
				{Device: "overlay", Mountpoint: "/var/lib/docker/overlay2/x/merged", Fstype: "overlay"},
				{Device: "/dev/sdc1", Mountpoint: "/empty", Fstype: "ext4"},
				{Device: "/dev/sdb1", Mountpoint: "/media/usb", Fstype: "ext4"}, // usage fails
			},
			want: []string{"/", "/data"},
		},
		{
			name: "container with an overlay root",
			parts: []disk.PartitionStat{
				{Device: "overlay", Mountpoint: "/", Fstype: "overlay"},
				{Device: "/dev/sda1", Mountpoint: "/data", Fstype: "ext4"},
			},
			want: []string{"/", "/data"},
		},
		{
			name: "read-only root image",
			parts: []disk.PartitionStat{
				{Device: "/dev/root", Mountpoint: "/", Fstype: "squashfs", Opts: []string{"ro"}},
				{Device: "/dev/mmcblk0p3", Mountpoint: "/data", Fstype: "ext4"},
			},
			want: []string{"/", "/data"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := vehicleHost()
			p.parts, p.usage = tt.parts, usage
			s := newTestSampler(p, "missing")
			r, err := s.Sample(context.Background(), t0)
			if err != nil {
				t.Fatalf("Sample() error = %v", err)
			}
			var got []string
			for _, d := range r.GetDisks() {
				got = append(got, d.GetMount())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Sample() mounts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTemperatures(t *testing.T) {
	p := vehicleHost()
	p.temps = []sensors.TemperatureStat{
		{SensorKey: "nvme_composite", Temperature: 41.06},
		{SensorKey: "acpitz", Temperature: -273.1}, // disconnected input
		{SensorKey: "cpu_thermal", Temperature: 52.34},
		{SensorKey: "cpu_thermal", Temperature: 52.34},
		{SensorKey: "outside", Temperature: -12.35},
	}
	p.tempErr = errors.New("Number of warnings: 1") // gopsutil's partial result
	rec := &recorder{}
	s := newTestSampler(p, "missing")
	s.log = slog.New(rec)
	r, err := s.Sample(context.Background(), t0)
	if err != nil {
		t.Fatalf("Sample() error = %v", err)
	}
	want := []*pb.Temperature{
		{Sensor: "cpu_thermal", DeciCelsius: 523},
		{Sensor: "nvme_composite", DeciCelsius: 411},
		{Sensor: "outside", DeciCelsius: -124},
	}
	if diff := cmp.Diff(want, r.GetTemps(), protocmp.Transform()); diff != "" {
		t.Errorf("Sample().Temps mismatch (-want +got):\n%s", diff)
	}
	if n := len(rec.messages()); n != 1 {
		t.Errorf("logged %d records for a partial temperature read, want 1: %q", n, rec.messages())
	}

	p.temps = nil
	p.tempErr = nil
	for i := range MaxTemps + 4 {
		p.temps = append(p.temps, sensors.TemperatureStat{SensorKey: fmt.Sprintf("core_%02d", i), Temperature: 40})
	}
	if r, _ = s.Sample(context.Background(), t0.Add(time.Second)); len(r.GetTemps()) != MaxTemps {
		t.Errorf("Sample() with %d sensors kept %d, want %d", len(p.temps), len(r.GetTemps()), MaxTemps)
	}
}

func TestOptionalFailureLoggedOnce(t *testing.T) {
	p := vehicleHost()
	p.errs = map[string]error{"load": errors.New("open /proc/loadavg: permission denied"), "usage /data": errors.New("stale NFS handle")}
	rec := &recorder{}
	s := newTestSampler(p, "malformed")
	s.log = slog.New(rec)
	for i := range 5 {
		r, err := s.Sample(context.Background(), t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatalf("Sample() error = %v, want the report without the failed readings", err)
		}
		if r.GetLoad1Centi() != 0 || len(r.GetDisks()) != 1 || r.GetContainer() != nil {
			t.Fatalf("Sample() = load %d, disks %v, container %v; want the failed readings left out", r.GetLoad1Centi(), r.GetDisks(), r.GetContainer())
		}
	}
	if n := len(rec.messages()); n != 3 {
		t.Errorf("5 samples with 3 failing readings logged %d records, want 3: %q", n, rec.messages())
	}
}

func TestRequiredFailure(t *testing.T) {
	for _, probe := range []string{"cpu times", "memory", "cpu count"} {
		t.Run(probe, func(t *testing.T) {
			p := vehicleHost()
			p.errs = map[string]error{probe: errors.New("boom")}
			if _, err := newTestSampler(p, "missing").Sample(context.Background(), t0); err == nil {
				t.Errorf("Sample() with failing %s = nil error, want an error", probe)
			}
		})
	}
}

func TestFactsCached(t *testing.T) {
	p := vehicleHost()
	s := newTestSampler(p, "missing")
	want := &pb.Hello{
		AgentVersion: "1.2.3", Hostname: "truck-042", Os: "linux", Arch: runtime.GOARCH,
		Platform: "debian 12.2", KernelVersion: "6.1.0-rpi7", CpuModel: "Cortex-A72",
		CpuCores: 4, MemTotalKib: 3884 * 1024, BootTimeS: 1795000000,
	}
	for range 3 {
		got, err := s.Facts(context.Background())
		if err != nil {
			t.Fatalf("Facts() error = %v", err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("Facts() mismatch (-want +got):\n%s", diff)
		}
		got.Labels = map[string]string{"mutated": "yes"} // a copy: the cache stays clean
	}
	if p.calls["host info"] != 1 || p.calls["cpu info"] != 1 {
		t.Errorf("3 Facts() calls read host info %d and cpu info %d times, want 1 each", p.calls["host info"], p.calls["cpu info"])
	}
}

func TestFactsRetryAfterFailure(t *testing.T) {
	p := vehicleHost()
	p.errs = map[string]error{"host info": errors.New("boom")}
	s := newTestSampler(p, "missing")
	if _, err := s.Facts(context.Background()); err == nil {
		t.Fatal("Facts() with failing host info = nil error")
	}
	p.errs = nil
	if h, err := s.Facts(context.Background()); err != nil || h.GetHostname() != "truck-042" {
		t.Errorf("Facts() after recovery = %v, %v, want the facts", h, err)
	}
}

// TestReportSize measures a typical vehicle report as it goes on the
// wire. Every node sends one every 10 s, often over LTE or satellite, so
// its size is a budget.
func TestReportSize(t *testing.T) {
	p := vehicleHost()
	s := newTestSampler(p, "limited")
	if _, err := s.Sample(context.Background(), t0); err != nil {
		t.Fatalf("Sample() error = %v", err)
	}
	p.advance(10)
	p.times.User += 0.5 // not a round figure
	now := t0.Add(10 * time.Second)
	r, err := s.Sample(context.Background(), now)
	if err != nil {
		t.Fatalf("Sample() error = %v", err)
	}
	if len(r.GetDisks()) != 2 || len(r.GetNets()) != 2 || len(r.GetTemps()) != 1 || r.GetContainer() == nil {
		t.Fatalf("Sample() = %v, want 2 disks, 2 interfaces, 1 sensor and container limits", r)
	}
	// On the wire a report leaves out the static quantities the hello
	// already carries (protocol.CompactReport).
	hello, err := s.Facts(context.Background())
	if err != nil {
		t.Fatalf("Facts() error = %v", err)
	}
	protocol.SetHelloStatics(hello, r)
	hello.ReportIntervalMs = r.GetIntervalMs()
	full := proto.Size(r)
	env := &pb.Envelope{
		NodeId: "truck-042", BootEpoch: 7, Seq: 123_456, SentAtMs: now.UnixMilli(), Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Report{Report: protocol.CompactReport(r, hello)},
	}
	b, err := protocol.Marshal(env)
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	t.Logf("typical report envelope: %d bytes (report %d, %d with static quantities)", len(b), proto.Size(r), full)
	if len(b) > reportBudget {
		t.Errorf("typical report envelope = %d bytes, budget %d", len(b), reportBudget)
	}
}

const reportBudget = 120

func TestHostSmoke(t *testing.T) {
	s := New(Options{AgentVersion: "smoke"})
	ctx := context.Background()
	h, err := s.Facts(ctx)
	if err != nil {
		t.Fatalf("Facts() on this host error = %v", err)
	}
	if h.GetOs() == "" || h.GetCpuCores() == 0 || h.GetMemTotalKib() == 0 {
		t.Errorf("Facts() on this host = %v, want os, cores and memory", h)
	}
	start := time.Now()
	if _, err := s.Sample(ctx, start); err != nil {
		t.Fatalf("Sample() on this host error = %v", err)
	}
	r, err := s.Sample(ctx, start.Add(time.Second))
	if err != nil {
		t.Fatalf("Sample() on this host error = %v", err)
	}
	t.Logf("facts: %v", h)
	t.Logf("report: %v", r)
	if r.GetIntervalMs() != 1000 || r.GetCpuPermille() > 1000 || r.GetMemTotalKib() == 0 || r.GetMemUsedKib() > r.GetMemTotalKib() {
		t.Errorf("Sample() on this host = %v, want interval 1000, cpu <= 1000 permille, used <= total memory", r)
	}
	for _, d := range r.GetDisks() {
		if d.GetTotalKib() == 0 || d.GetUsedKib() > d.GetTotalKib() {
			t.Errorf("disk %v: want used <= total > 0", d)
		}
	}
	if !slices.IsSortedFunc(r.GetDisks(), func(a, b *pb.DiskUsage) int { return strings.Compare(a.GetMount(), b.GetMount()) }) {
		t.Errorf("disks %v not sorted by mount", r.GetDisks())
	}
}

func BenchmarkSample(b *testing.B) {
	p := vehicleHost()
	s := newTestSampler(p, "limited")
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		p.advance(10)
		now = now.Add(10 * time.Second)
		if _, err := s.Sample(context.Background(), now); err != nil {
			b.Fatal(err)
		}
	}
}
