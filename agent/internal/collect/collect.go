// Package collect samples the resources of the host an agent runs on:
// CPU, load, memory, disks, network rates, temperatures, uptime and the
// limits of the agent's own cgroup. It turns gopsutil's readings into the
// compact integer units of the wire protocol (KiB, permille, hundredths,
// deci-degrees).
//
// Rates (CPU utilisation, network bytes/s) are deltas between two samples
// taken by the same Sampler, never cpu.Percent, which either sleeps or
// keeps package-global state. The first sample therefore carries no
// rates and an interval of 0.
package collect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/net"
	"google.golang.org/protobuf/proto"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Bounds on the repeated parts of a report, so that a host with dozens of
// mounts, virtual interfaces or hwmon sensors still sends a small report.
const (
	MaxDisks = 16
	MaxNets  = 16
	MaxTemps = 8
)

var errNoCPUTimes = errors.New("cpu times: no aggregate reading")

// Options configure a Sampler.
type Options struct {
	// AgentVersion is reported in the facts.
	AgentVersion string
	// Probes reads the host; nil means HostProbes.
	Probes Probes
	// CgroupRoot is the cgroup2 mount point and ProcSelfCgroup the file
	// naming the agent's cgroup; empty means the real ones. Tests point
	// them into testdata.
	CgroupRoot     string
	ProcSelfCgroup string
	// Logger receives a warning the first time each distinct optional
	// reading fails; nil discards.
	Logger *slog.Logger
}

// Sampler takes resource samples. It is safe for concurrent use, but
// rates are computed between consecutive calls, so one caller should own
// the sampling cadence.
type Sampler struct {
	probes  Probes
	cgroup  cgroupReader
	version string
	log     *slog.Logger

	mu       sync.Mutex // guards the fields below
	facts    *pb.Hello
	cores    uint32
	prevAt   time.Time
	prevCPU  cpu.TimesStat
	havePrev bool
	prevNet  map[string]net.IOCountersStat
	warned   map[string]bool
}

// New returns a Sampler.
func New(o Options) *Sampler {
	if o.Probes == nil {
		o.Probes = HostProbes{}
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = DefaultCgroupRoot
	}
	if o.ProcSelfCgroup == "" {
		o.ProcSelfCgroup = DefaultProcSelfCgroup
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sampler{
		probes:  o.Probes,
		cgroup:  cgroupReader{root: filepath.Clean(o.CgroupRoot), selfFile: o.ProcSelfCgroup},
		version: o.AgentVersion,
		log:     o.Logger.With("component", "collect"),
		prevNet: make(map[string]net.IOCountersStat),
		warned:  make(map[string]bool),
	}
}

// Facts returns the host's static facts as a Hello without labels or
// outbox state. They are read once (host.Info alone takes ~10 ms) and
// cached; the caller gets its own copy.
func (s *Sampler) Facts(ctx context.Context) (*pb.Hello, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadFactsLocked(ctx); err != nil {
		return nil, err
	}
	return cloneHello(s.facts), nil
}

func (s *Sampler) loadFactsLocked(ctx context.Context) error {
	if s.facts != nil {
		return nil
	}
	hi, err := s.probes.HostInfo(ctx)
	if err != nil {
		return fmt.Errorf("collect facts: host info: %w", err)
	}
	cores, err := s.coresLocked(ctx)
	if err != nil {
		return err
	}
	vm, err := s.probes.VirtualMemory(ctx)
	if err != nil {
		return fmt.Errorf("collect facts: memory: %w", err)
	}
	model := ""
	if infos, err := s.probes.CPUInfo(ctx); err != nil {
		s.warnOnceLocked("cpu info", err) // the model is nice to have
	} else {
		model = cpuModel(infos)
	}
	s.facts = &pb.Hello{
		AgentVersion:  s.version,
		Hostname:      hi.Hostname,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		Platform:      strings.TrimSpace(hi.Platform + " " + hi.PlatformVersion),
		KernelVersion: hi.KernelVersion,
		CpuModel:      model,
		CpuCores:      cores,
		MemTotalKib:   vm.Total / 1024,
		BootTimeS:     int64(hi.BootTime),
	}
	return nil
}

func (s *Sampler) coresLocked(ctx context.Context) (uint32, error) {
	if s.cores > 0 {
		return s.cores, nil
	}
	n, err := s.probes.CPUCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("collect: cpu count: %w", err)
	}
	if n <= 0 {
		n = runtime.NumCPU()
	}
	s.cores = uint32(n)
	return s.cores, nil
}

// Sample reads the host at now. CPU times and memory are required; any
// other reading that fails is left out of the report and logged once per
// distinct error.
func (s *Sampler) Sample(ctx context.Context, now time.Time) (*pb.ResourceReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	cores, err := s.coresLocked(ctx)
	if err != nil {
		return nil, err
	}
	times, err := s.probes.CPUTimes(ctx)
	if err != nil {
		return nil, fmt.Errorf("collect: cpu times: %w", err)
	}
	vm, err := s.probes.VirtualMemory(ctx)
	if err != nil {
		return nil, fmt.Errorf("collect: memory: %w", err)
	}
	r := &pb.ResourceReport{
		CpuCores:    cores,
		MemTotalKib: vm.Total / 1024,
		MemUsedKib:  subFloor(vm.Total, vm.Available) / 1024,
	}

	var intervalMs uint64
	if s.havePrev && now.After(s.prevAt) {
		intervalMs = uint64(now.Sub(s.prevAt).Milliseconds())
	}
	if intervalMs > 0 {
		r.IntervalMs = uint32(min(intervalMs, math.MaxUint32))
		r.CpuPermille = cpuPermille(s.prevCPU, times)
	}
	s.prevCPU, s.prevAt, s.havePrev = times, now, true

	if la, err := s.probes.LoadAvg(ctx); err != nil {
		s.warnOnceLocked("load average", err)
	} else {
		r.Load1Centi, r.Load5Centi, r.Load15Centi = centi(la.Load1), centi(la.Load5), centi(la.Load15)
	}
	if sw, err := s.probes.SwapMemory(ctx); err != nil {
		s.warnOnceLocked("swap", err)
	} else {
		r.SwapTotalKib, r.SwapUsedKib = sw.Total/1024, sw.Used/1024
	}
	r.Disks = s.disksLocked(ctx)
	r.Nets = s.netsLocked(ctx, intervalMs)
	r.Temps = s.tempsLocked(ctx)
	if up, err := s.probes.Uptime(ctx); err != nil {
		s.warnOnceLocked("uptime", err)
	} else {
		r.UptimeS = up
	}
	if lim, err := s.cgroup.limits(); err != nil {
		s.warnOnceLocked("cgroup limits", err)
	} else {
		r.Container = lim
	}
	return r, nil
}

// pseudoFS are file systems that hold no user data worth reporting:
// memory-backed, kernel interfaces, read-only images and container layers.
var pseudoFS = map[string]bool{
	"tmpfs": true, "devtmpfs": true, "ramfs": true, "squashfs": true, "erofs": true,
	"overlay": true, "aufs": true, "iso9660": true, "proc": true, "sysfs": true,
	"cgroup": true, "cgroup2": true, "devpts": true, "mqueue": true, "debugfs": true,
	"tracefs": true, "securityfs": true, "pstore": true, "bpf": true, "autofs": true,
	"configfs": true, "fusectl": true, "hugetlbfs": true, "nsfs": true, "efivarfs": true,
	"binfmt_misc": true, "rpc_pipefs": true, "fuse.lxcfs": true, "selinuxfs": true,
}

// disksLocked reports each real, writable file system once. "/" is always
// kept, even as a read-only image or an overlay (a container's root),
// because it is where the agent and its workloads live. A device mounted
// several times (bind mounts) is reported at its shortest mount point.
func (s *Sampler) disksLocked(ctx context.Context) []*pb.DiskUsage {
	parts, err := s.probes.Partitions(ctx)
	if err != nil {
		s.warnOnceLocked("disk partitions", err)
		return nil
	}
	slices.SortStableFunc(parts, func(a, b disk.PartitionStat) int {
		return cmp.Or(cmp.Compare(len(a.Mountpoint), len(b.Mountpoint)), strings.Compare(a.Mountpoint, b.Mountpoint))
	})
	seen := make(map[string]bool, len(parts))
	var out []*pb.DiskUsage
	for _, p := range parts {
		if len(out) == MaxDisks {
			break
		}
		root := p.Mountpoint == "/"
		if !root && (pseudoFS[p.Fstype] || slices.Contains(p.Opts, "ro")) {
			continue
		}
		if p.Device != "" && p.Device != "none" {
			if seen[p.Device] {
				continue
			}
			seen[p.Device] = true
		}
		u, err := s.probes.DiskUsage(ctx, p.Mountpoint)
		if err != nil {
			s.warnOnceLocked("disk usage "+p.Mountpoint, err)
			continue
		}
		if u.Total == 0 {
			continue
		}
		out = append(out, &pb.DiskUsage{Mount: p.Mountpoint, TotalKib: u.Total / 1024, UsedKib: u.Used / 1024})
	}
	slices.SortFunc(out, func(a, b *pb.DiskUsage) int { return strings.Compare(a.Mount, b.Mount) })
	return out
}

// netsLocked reports bytes/s per interface over intervalMs. Loopback,
// interfaces that never carried a byte, and veth pairs (each container's
// traffic is already counted on its bridge) are left out. A counter that
// went backwards (wrap or driver reset) gives a rate of 0, not a huge
// one. An interface seen for the first time has no rate yet.
func (s *Sampler) netsLocked(ctx context.Context, intervalMs uint64) []*pb.NetRate {
	counters, err := s.probes.NetCounters(ctx)
	if err != nil {
		s.warnOnceLocked("network counters", err)
		return nil
	}
	slices.SortFunc(counters, func(a, b net.IOCountersStat) int { return strings.Compare(a.Name, b.Name) })
	prev := s.prevNet
	s.prevNet = make(map[string]net.IOCountersStat, len(counters))
	var out []*pb.NetRate
	for _, c := range counters {
		if c.Name == "lo" || strings.HasPrefix(c.Name, "veth") || c.BytesRecv == 0 && c.BytesSent == 0 {
			continue
		}
		s.prevNet[c.Name] = c
		p, ok := prev[c.Name]
		if !ok || intervalMs == 0 || len(out) == MaxNets {
			continue
		}
		out = append(out, &pb.NetRate{
			Iface:       c.Name,
			RxBytesPerS: rate(p.BytesRecv, c.BytesRecv, intervalMs),
			TxBytesPerS: rate(p.BytesSent, c.BytesSent, intervalMs),
		})
	}
	return out
}

func (s *Sampler) tempsLocked(ctx context.Context) []*pb.Temperature {
	ts, err := s.probes.Temperatures(ctx)
	if err != nil {
		// gopsutil returns what it could read along with warnings about
		// the rest; keep the readings.
		s.warnOnceLocked("temperatures", err)
	}
	var out []*pb.Temperature
	for _, t := range ts {
		// Disconnected hwmon inputs read as absurd values; drop them.
		if t.SensorKey == "" || math.IsNaN(t.Temperature) || t.Temperature < -100 || t.Temperature > 300 {
			continue
		}
		out = append(out, &pb.Temperature{Sensor: t.SensorKey, DeciCelsius: int32(math.Round(t.Temperature * 10))})
	}
	slices.SortFunc(out, func(a, b *pb.Temperature) int { return strings.Compare(a.Sensor, b.Sensor) })
	out = slices.CompactFunc(out, func(a, b *pb.Temperature) bool { return a.Sensor == b.Sensor })
	if len(out) > MaxTemps {
		out = out[:MaxTemps]
	}
	return out
}

// warnOnceLocked logs the first occurrence of each distinct failure of an
// optional reading; it then stays quiet while the host keeps failing the
// same way.
func (s *Sampler) warnOnceLocked(what string, err error) {
	key := what + ": " + err.Error()
	if s.warned[key] {
		return
	}
	if len(s.warned) < 64 {
		s.warned[key] = true
	}
	s.log.Warn("reading left out of resource reports", "reading", what, "error", err)
}

// cpuPermille is the busy share of all cores between two readings of the
// cumulative times, in permille. Guest time is already part of user time
// on Linux, so it is not added again.
func cpuPermille(prev, cur cpu.TimesStat) uint32 {
	pTotal, pBusy := cpuTotals(prev)
	cTotal, cBusy := cpuTotals(cur)
	dTotal, dBusy := cTotal-pTotal, cBusy-pBusy
	if dTotal <= 0 || dBusy <= 0 {
		return 0
	}
	return uint32(min(math.Round(dBusy/dTotal*1000), 1000))
}

func cpuTotals(t cpu.TimesStat) (total, busy float64) {
	total = t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	return total, total - t.Idle - t.Iowait
}

// rate is bytes per second from two cumulative counters; 0 when the
// counter went backwards.
func rate(prev, cur, intervalMs uint64) uint64 {
	if cur < prev || intervalMs == 0 {
		return 0
	}
	d := cur - prev
	if d > math.MaxUint64/1000 {
		return d / intervalMs * 1000
	}
	return d * 1000 / intervalMs
}

func centi(v float64) uint32 {
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return uint32(min(math.Round(v*100), math.MaxUint32))
}

func subFloor(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// cpuModel names the processor: the model name x86 reports, or what ARM
// cores report instead.
func cpuModel(infos []cpu.InfoStat) string {
	for _, i := range infos {
		if i.ModelName != "" {
			return i.ModelName
		}
	}
	for _, i := range infos {
		if v := strings.TrimSpace(i.VendorID + " " + i.Model); v != "" {
			return v
		}
	}
	return ""
}

func cloneHello(h *pb.Hello) *pb.Hello { return proto.Clone(h).(*pb.Hello) }
