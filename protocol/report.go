package protocol

import (
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// SetHelloStatics copies the static quantities of a resource sample into
// hello, so that reports made afterwards can leave them out.
func SetHelloStatics(hello *pb.Hello, r *pb.ResourceReport) {
	if r == nil {
		return
	}
	if r.GetCpuCores() != 0 {
		hello.CpuCores = r.GetCpuCores()
	}
	if r.GetMemTotalKib() != 0 {
		hello.MemTotalKib = r.GetMemTotalKib()
	}
	hello.SwapTotalKib = r.GetSwapTotalKib()
	hello.Disks = hello.Disks[:0]
	for _, d := range r.GetDisks() {
		hello.Disks = append(hello.Disks, &pb.DiskUsage{Mount: d.GetMount(), TotalKib: d.GetTotalKib()})
	}
	hello.Container = nil
	if c := r.GetContainer(); c != nil {
		hello.Container = &pb.ContainerLimits{CpuMaxMilli: c.GetCpuMaxMilli(), MemoryMaxKib: c.GetMemoryMaxKib()}
	}
}

// CompactReport removes from r, in place, the static quantities that equal
// those of hello, the Hello the cloud last received from this agent (see
// the ResourceReport comment in the .proto). With a nil hello it leaves r
// whole. It returns r.
func CompactReport(r *pb.ResourceReport, hello *pb.Hello) *pb.ResourceReport {
	if hello == nil || r == nil {
		return r
	}
	if r.CpuCores == hello.GetCpuCores() {
		r.CpuCores = 0
	}
	if r.MemTotalKib == hello.GetMemTotalKib() {
		r.MemTotalKib = 0
	}
	if r.SwapTotalKib == hello.GetSwapTotalKib() {
		r.SwapTotalKib = 0
	}
	if hello.GetBootTimeS() > 0 {
		r.UptimeS = 0
	}
	if r.IntervalMs == hello.GetReportIntervalMs() {
		r.IntervalMs = 0
	}
	for _, d := range r.Disks {
		if helloDisk(hello, d.GetMount()) == d.TotalKib {
			d.TotalKib = 0
		}
	}
	if c, hc := r.Container, hello.GetContainer(); c != nil && hc != nil {
		if c.CpuMaxMilli == hc.GetCpuMaxMilli() {
			c.CpuMaxMilli = 0
		}
		if c.MemoryMaxKib == hc.GetMemoryMaxKib() {
			c.MemoryMaxKib = 0
		}
	}
	return r
}

// ExpandReport restores, in place, the static quantities a report left
// out, from hello (the node's latest Hello) and the envelope's sent_at_ms.
// A quantity the report carries wins over the Hello's. It returns r.
func ExpandReport(r *pb.ResourceReport, hello *pb.Hello, sentAtMs int64) *pb.ResourceReport {
	if hello == nil || r == nil {
		return r
	}
	if r.CpuCores == 0 {
		r.CpuCores = hello.GetCpuCores()
	}
	if r.MemTotalKib == 0 {
		r.MemTotalKib = hello.GetMemTotalKib()
	}
	if r.SwapTotalKib == 0 {
		r.SwapTotalKib = hello.GetSwapTotalKib()
	}
	if r.IntervalMs == 0 {
		r.IntervalMs = hello.GetReportIntervalMs()
	}
	if r.UptimeS == 0 && hello.GetBootTimeS() > 0 && sentAtMs/1000 > hello.GetBootTimeS() {
		r.UptimeS = uint64(sentAtMs/1000 - hello.GetBootTimeS())
	}
	for _, d := range r.Disks {
		if d.TotalKib == 0 {
			d.TotalKib = helloDisk(hello, d.GetMount())
		}
	}
	if c, hc := r.Container, hello.GetContainer(); c != nil && hc != nil {
		if c.CpuMaxMilli == 0 {
			c.CpuMaxMilli = hc.GetCpuMaxMilli()
		}
		if c.MemoryMaxKib == 0 {
			c.MemoryMaxKib = hc.GetMemoryMaxKib()
		}
	}
	return r
}

func helloDisk(hello *pb.Hello, mount string) uint64 {
	for _, d := range hello.GetDisks() {
		if d.GetMount() == mount {
			return d.GetTotalKib()
		}
	}
	return 0
}
