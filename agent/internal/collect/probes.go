package collect

import (
	"context"
	"strings"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/sensors"
)

// Probes is the part of the host the Sampler reads, one method per
// gopsutil call, so tests can replace the host with a fake. Every method
// is cheap enough to call once per report; HostInfo and CPUInfo are not,
// and the Sampler calls them once.
type Probes interface {
	// CPUTimes returns the cumulative CPU times of all cores together.
	CPUTimes(ctx context.Context) (cpu.TimesStat, error)
	CPUInfo(ctx context.Context) ([]cpu.InfoStat, error)
	// CPUCount returns the number of logical CPUs.
	CPUCount(ctx context.Context) (int, error)
	LoadAvg(ctx context.Context) (*load.AvgStat, error)
	VirtualMemory(ctx context.Context) (*mem.VirtualMemoryStat, error)
	SwapMemory(ctx context.Context) (*mem.SwapMemoryStat, error)
	// Partitions lists the mounted physical file systems.
	Partitions(ctx context.Context) ([]disk.PartitionStat, error)
	DiskUsage(ctx context.Context, mount string) (*disk.UsageStat, error)
	// NetCounters returns the cumulative counters of every interface.
	NetCounters(ctx context.Context) ([]net.IOCountersStat, error)
	// Temperatures returns the sensors it could read; a host without
	// sensors support returns none and no error.
	Temperatures(ctx context.Context) ([]sensors.TemperatureStat, error)
	HostInfo(ctx context.Context) (*host.InfoStat, error)
	// Uptime returns the host's uptime in seconds.
	Uptime(ctx context.Context) (uint64, error)
}

// HostProbes reads the real host through gopsutil.
type HostProbes struct{}

var _ Probes = HostProbes{}

// CPUTimes implements Probes. It reads cumulative times and never uses
// cpu.Percent, which either sleeps or keeps package-global state.
func (HostProbes) CPUTimes(ctx context.Context) (cpu.TimesStat, error) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return cpu.TimesStat{}, err
	}
	if len(ts) == 0 {
		return cpu.TimesStat{}, errNoCPUTimes
	}
	return ts[0], nil
}

// CPUInfo implements Probes.
func (HostProbes) CPUInfo(ctx context.Context) ([]cpu.InfoStat, error) {
	return cpu.InfoWithContext(ctx)
}

// CPUCount implements Probes.
func (HostProbes) CPUCount(ctx context.Context) (int, error) {
	return cpu.CountsWithContext(ctx, true)
}

// LoadAvg implements Probes.
func (HostProbes) LoadAvg(ctx context.Context) (*load.AvgStat, error) {
	return load.AvgWithContext(ctx)
}

// VirtualMemory implements Probes.
func (HostProbes) VirtualMemory(ctx context.Context) (*mem.VirtualMemoryStat, error) {
	return mem.VirtualMemoryWithContext(ctx)
}

// SwapMemory implements Probes.
func (HostProbes) SwapMemory(ctx context.Context) (*mem.SwapMemoryStat, error) {
	return mem.SwapMemoryWithContext(ctx)
}

// Partitions implements Probes.
func (HostProbes) Partitions(ctx context.Context) ([]disk.PartitionStat, error) {
	return disk.PartitionsWithContext(ctx, false)
}

// DiskUsage implements Probes.
func (HostProbes) DiskUsage(ctx context.Context, mount string) (*disk.UsageStat, error) {
	return disk.UsageWithContext(ctx, mount)
}

// NetCounters implements Probes.
func (HostProbes) NetCounters(ctx context.Context) ([]net.IOCountersStat, error) {
	return net.IOCountersWithContext(ctx, true)
}

// Temperatures implements Probes. gopsutil reports platforms it cannot
// read as "not implemented"; that is the normal state of most hosts, not
// an error.
func (HostProbes) Temperatures(ctx context.Context) ([]sensors.TemperatureStat, error) {
	ts, err := sensors.TemperaturesWithContext(ctx)
	if err != nil && strings.Contains(err.Error(), "not implemented") {
		return nil, nil
	}
	return ts, err
}

// HostInfo implements Probes.
func (HostProbes) HostInfo(ctx context.Context) (*host.InfoStat, error) {
	return host.InfoWithContext(ctx)
}

// Uptime implements Probes.
func (HostProbes) Uptime(ctx context.Context) (uint64, error) {
	return host.UptimeWithContext(ctx)
}
