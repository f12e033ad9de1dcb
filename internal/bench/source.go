package bench

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"
	"time"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// errPaused is what a paused Source answers instead of a sample, so the
// agent produces no report.
var errPaused = errors.New("simulated node paused by the benchmark")

// production counts what a simulated fleet produced. The counters only
// grow; scenarios take differences.
type production struct {
	paused   atomic.Bool
	samples  atomic.Uint64 // samples handed to agents
	offline  atomic.Uint64 // of which while the agent's link was down
	refusals atomic.Uint64 // samples refused while paused
}

// simSource is the synthetic agent.Source of one simulated node: an ARM
// board with four cores and 4 GiB whose load wanders. Samples are cheap
// (no system calls) so that thousands of nodes fit on one machine, and
// each is counted, to compare with what the bridge applied.
type simSource struct {
	node   string
	boot   time.Time
	rng    *rand.Rand // used by Sample only, which the agent calls from one goroutine
	prod   *production
	online func() bool // the agent's link state; nil before the agent exists

	cpu, mem uint64 // current utilisation, permille of capacity
	disk     uint64 // used KiB of /
	samples  atomic.Uint64
}

func newSimSource(node string, prod *production) *simSource {
	h := fnv.New64a()
	h.Write([]byte(node))
	seed := h.Sum64()
	r := rand.New(rand.NewPCG(seed, seed>>7|1))
	return &simSource{
		node: node,
		boot: time.Now().Add(-time.Duration(3600+r.IntN(86400)) * time.Second).Truncate(time.Second),
		rng:  r,
		prod: prod,
		cpu:  uint64(100 + r.IntN(400)),
		mem:  uint64(200 + r.IntN(400)),
		disk: uint64(4<<20 + r.IntN(8<<20)),
	}
}

// Facts describes the simulated board.
func (s *simSource) Facts(context.Context) (*pb.Hello, error) {
	return &pb.Hello{
		Hostname:      s.node,
		Os:            "linux",
		Arch:          "arm64",
		Platform:      "debian 12.7",
		KernelVersion: "6.1.0-rpi7-rpi-v8",
		CpuModel:      "Cortex-A72",
		CpuCores:      4,
		MemTotalKib:   4 << 20,
		BootTimeS:     s.boot.Unix(),
	}, nil
}

// Sample returns a report whose figures drift a little every time, like a
// real node's. The static quantities are included: the agent leaves out
// those its hello already carried.
func (s *simSource) Sample(_ context.Context, now time.Time) (*pb.ResourceReport, error) {
	if s.prod.paused.Load() {
		s.prod.refusals.Add(1)
		return nil, errPaused
	}
	s.samples.Add(1)
	s.prod.samples.Add(1)
	if s.online != nil && !s.online() {
		s.prod.offline.Add(1)
	}
	s.cpu = drift(s.rng, s.cpu, 40, 980)
	s.mem = drift(s.rng, s.mem, 10, 950)
	s.disk += uint64(s.rng.IntN(64))
	const memTotal = 4 << 20
	return &pb.ResourceReport{
		CpuCores:    4,
		CpuPermille: uint32(s.cpu),
		Load1Centi:  uint32(s.cpu * 4 / 10),
		Load5Centi:  uint32(s.cpu * 4 / 11),
		Load15Centi: uint32(s.cpu * 4 / 12),
		MemTotalKib: memTotal,
		MemUsedKib:  memTotal * s.mem / 1000,
		Disks:       []*pb.DiskUsage{{Mount: "/", TotalKib: 32 << 20, UsedKib: s.disk}},
		Nets: []*pb.NetRate{{
			Iface:       "wwan0",
			RxBytesPerS: uint64(500 + s.rng.IntN(4000)),
			TxBytesPerS: uint64(200 + s.rng.IntN(2000)),
		}},
		Temps:   []*pb.Temperature{{Sensor: "cpu_thermal", DeciCelsius: int32(400 + s.cpu/10)}},
		UptimeS: uint64(now.Sub(s.boot) / time.Second),
	}, nil
}

// drift moves v by up to ±step, kept within [step, ceil].
func drift(r *rand.Rand, v, step, ceil uint64) uint64 {
	v = v + uint64(r.IntN(int(2*step+1))) - step
	return min(max(v, step), ceil)
}
