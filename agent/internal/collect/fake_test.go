package collect

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/sensors"
)

// fakeProbes is a scripted host. A probe named in errs fails with that
// error; calls counts the calls of each probe.
type fakeProbes struct {
	times   cpu.TimesStat
	infos   []cpu.InfoStat
	cores   int
	load    load.AvgStat
	vm      mem.VirtualMemoryStat
	swap    mem.SwapMemoryStat
	parts   []disk.PartitionStat
	usage   map[string]disk.UsageStat
	nets    []net.IOCountersStat
	temps   []sensors.TemperatureStat
	host    host.InfoStat
	uptime  uint64
	errs    map[string]error
	calls   map[string]int
	tempErr error // returned along with temps, like gopsutil's warnings
}

func (f *fakeProbes) call(name string) error {
	if f.calls == nil {
		f.calls = make(map[string]int)
	}
	f.calls[name]++
	return f.errs[name]
}

func (f *fakeProbes) CPUTimes(context.Context) (cpu.TimesStat, error) {
	return f.times, f.call("cpu times")
}

func (f *fakeProbes) CPUInfo(context.Context) ([]cpu.InfoStat, error) {
	return f.infos, f.call("cpu info")
}

func (f *fakeProbes) CPUCount(context.Context) (int, error) { return f.cores, f.call("cpu count") }

func (f *fakeProbes) LoadAvg(context.Context) (*load.AvgStat, error) {
	if err := f.call("load"); err != nil {
		return nil, err
	}
	l := f.load
	return &l, nil
}

func (f *fakeProbes) VirtualMemory(context.Context) (*mem.VirtualMemoryStat, error) {
	if err := f.call("memory"); err != nil {
		return nil, err
	}
	v := f.vm
	return &v, nil
}

func (f *fakeProbes) SwapMemory(context.Context) (*mem.SwapMemoryStat, error) {
	if err := f.call("swap"); err != nil {
		return nil, err
	}
	s := f.swap
	return &s, nil
}

func (f *fakeProbes) Partitions(context.Context) ([]disk.PartitionStat, error) {
	return append([]disk.PartitionStat(nil), f.parts...), f.call("partitions")
}

func (f *fakeProbes) DiskUsage(_ context.Context, mount string) (*disk.UsageStat, error) {
	if err := f.call("usage " + mount); err != nil {
		return nil, err
	}
	u, ok := f.usage[mount]
	if !ok {
		return nil, errors.New("no such mount")
	}
	return &u, nil
}

func (f *fakeProbes) NetCounters(context.Context) ([]net.IOCountersStat, error) {
	return append([]net.IOCountersStat(nil), f.nets...), f.call("net")
}

func (f *fakeProbes) Temperatures(context.Context) ([]sensors.TemperatureStat, error) {
	if err := f.call("temps"); err != nil {
		return nil, err
	}
	return f.temps, f.tempErr
}

func (f *fakeProbes) HostInfo(context.Context) (*host.InfoStat, error) {
	if err := f.call("host info"); err != nil {
		return nil, err
	}
	h := f.host
	return &h, nil
}

func (f *fakeProbes) Uptime(context.Context) (uint64, error) { return f.uptime, f.call("uptime") }

// recorder is a slog.Handler that keeps every record's message.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		msg += " " + a.Key + "=" + a.Value.String()
		return true
	})
	r.msgs = append(r.msgs, msg)
	return nil
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}
