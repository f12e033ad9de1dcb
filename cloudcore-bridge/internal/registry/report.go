package registry

import (
	"time"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// SetReport records r, produced at at, as the node's last report. The
// conversion into the JSON-friendly Report is deferred until the record
// is read or written: a busy node's reports mostly replace each other
// unseen between two flushes, and converting each would cost more than
// the rest of its ingest. r must not be modified afterwards.
func (n *Node) SetReport(r *pb.ResourceReport, at time.Time) {
	n.pendingReport = r
	n.LastReport = nil
	n.LastReportAt = at
}

// SetFacts replaces the node's facts with those of a hello.
func (n *Node) SetFacts(h *pb.Hello) {
	f := Facts{
		Hostname:         h.GetHostname(),
		OS:               h.GetOs(),
		Arch:             h.GetArch(),
		Platform:         h.GetPlatform(),
		Kernel:           h.GetKernelVersion(),
		CPUModel:         h.GetCpuModel(),
		CPUCores:         h.GetCpuCores(),
		MemTotalKiB:      h.GetMemTotalKib(),
		SwapTotalKiB:     h.GetSwapTotalKib(),
		ReportIntervalMs: h.GetReportIntervalMs(),
	}
	if s := h.GetBootTimeS(); s > 0 {
		f.BootTime = time.Unix(s, 0).UTC()
	}
	for _, d := range h.GetDisks() {
		f.Disks = append(f.Disks, DiskSize{Mount: d.GetMount(), TotalKiB: d.GetTotalKib()})
	}
	if c := h.GetContainer(); c != nil {
		f.ContainerCPUMaxMilli, f.ContainerMemoryMaxKiB = c.GetCpuMaxMilli(), c.GetMemoryMaxKib()
	}
	n.Facts = f
	n.statics = nil
}

// Statics returns the node's static quantities as a Hello, for
// protocol.ExpandReport. Call it inside Update.
func (n *Node) Statics() *pb.Hello {
	if n.statics == nil {
		f := n.Facts
		h := &pb.Hello{CpuCores: f.CPUCores, MemTotalKib: f.MemTotalKiB, SwapTotalKib: f.SwapTotalKiB, ReportIntervalMs: f.ReportIntervalMs}
		if !f.BootTime.IsZero() {
			h.BootTimeS = f.BootTime.Unix()
		}
		for _, d := range f.Disks {
			h.Disks = append(h.Disks, &pb.DiskUsage{Mount: d.Mount, TotalKib: d.TotalKiB})
		}
		if f.ContainerCPUMaxMilli != 0 || f.ContainerMemoryMaxKiB != 0 {
			h.Container = &pb.ContainerLimits{CpuMaxMilli: f.ContainerCPUMaxMilli, MemoryMaxKib: f.ContainerMemoryMaxKiB}
		}
		n.statics = h
	}
	return n.statics
}

// materialize converts a pending report and brings Applied up to date.
// Call it with the record's lock held, before the record is copied out.
func (n *Node) materialize() {
	n.materializeApplied()
	if n.pendingReport != nil {
		n.LastReport = reportFromProto(n.pendingReport)
		n.pendingReport = nil
	}
}

func reportFromProto(r *pb.ResourceReport) *Report {
	out := &Report{
		CPUCores:     r.GetCpuCores(),
		CPUPermille:  r.GetCpuPermille(),
		Load1Centi:   r.GetLoad1Centi(),
		Load5Centi:   r.GetLoad5Centi(),
		Load15Centi:  r.GetLoad15Centi(),
		MemTotalKiB:  r.GetMemTotalKib(),
		MemUsedKiB:   r.GetMemUsedKib(),
		SwapTotalKiB: r.GetSwapTotalKib(),
		SwapUsedKiB:  r.GetSwapUsedKib(),
		UptimeS:      r.GetUptimeS(),
		IntervalMs:   r.GetIntervalMs(),
	}
	if ds := r.GetDisks(); len(ds) > 0 {
		out.Disks = make([]Disk, len(ds))
		for i, d := range ds {
			out.Disks[i] = Disk{Mount: d.GetMount(), TotalKiB: d.GetTotalKib(), UsedKiB: d.GetUsedKib()}
		}
	}
	if ns := r.GetNets(); len(ns) > 0 {
		out.Nets = make([]Net, len(ns))
		for i, x := range ns {
			out.Nets[i] = Net{Iface: x.GetIface(), RxBytesPerS: x.GetRxBytesPerS(), TxBytesPerS: x.GetTxBytesPerS()}
		}
	}
	if ts := r.GetTemps(); len(ts) > 0 {
		out.Temps = make([]Temp, len(ts))
		for i, x := range ts {
			out.Temps[i] = Temp{Sensor: x.GetSensor(), DeciCelsius: x.GetDeciCelsius()}
		}
	}
	if c := r.GetContainer(); c != nil {
		out.Container = &Container{
			CPUMaxMilli:      c.GetCpuMaxMilli(),
			MemoryMaxKiB:     c.GetMemoryMaxKib(),
			MemoryCurrentKiB: c.GetMemoryCurrentKib(),
		}
	}
	return out
}
