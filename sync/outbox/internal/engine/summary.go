package engine

import (
	"math"

	"github.com/skyedge/skyedge/sync/acks"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// window accumulates the telemetry of one compaction window: resource
// reports and summaries of shorter windows, merged into one summary whose
// covers are every sequence number it stands for (the reports, the
// summaries it replaces, and what those covered).
type window struct {
	start, end int64 // Unix ms, [start, end)
	members    []Record
	bytes      int64 // the members' size
	reports    uint64
	covers     []acks.Range
	samples    uint64
	cpu, mem   stat
	load, disk stat
	last       *pb.ResourceReport
	lastAt     int64
	lastSeq    uint64
}

func (w *window) member(r Record) {
	r.Payload = nil
	w.members = append(w.members, r)
	w.bytes += r.Size()
	w.covers = append(w.covers, acks.Range{First: r.Seq, Last: r.Seq})
}

// later reports whether a record produced at at with seq is the window's
// latest so far.
func (w *window) later(at int64, seq uint64) bool {
	return w.last == nil || at > w.lastAt || at == w.lastAt && seq > w.lastSeq
}

func (w *window) addReport(r Record, rep *pb.ResourceReport) {
	w.member(r)
	w.reports++
	w.samples++
	w.cpu.add(float64(rep.GetCpuPermille()), 1)
	w.mem.add(float64(rep.GetMemUsedKib()), 1)
	w.load.add(float64(rep.GetLoad1Centi()), 1)
	if d, ok := diskPermille(rep); ok {
		w.disk.add(d, 1)
	}
	if w.later(r.ProducedAt, r.Seq) {
		w.last, w.lastAt, w.lastSeq = rep, r.ProducedAt, r.Seq
	}
}

func (w *window) addSummary(r Record, s *pb.TelemetrySummary) {
	w.member(r)
	w.covers = append(w.covers, acks.FromProto(s.GetCovers())...)
	n := float64(s.GetSamples())
	w.samples += uint64(s.GetSamples())
	w.cpu.merge(s.GetCpuPermille(), n)
	w.mem.merge(s.GetMemUsedKib(), n)
	w.load.merge(s.GetLoad1Centi(), n)
	w.disk.merge(s.GetDiskUsedPermille(), n)
	if s.GetLast() != nil && w.later(r.ProducedAt, r.Seq) {
		w.last, w.lastAt, w.lastSeq = s.GetLast(), r.ProducedAt, r.Seq
	}
}

// summary returns the window's merged summary.
func (w *window) summary() *pb.TelemetrySummary {
	return &pb.TelemetrySummary{
		WindowStartMs:    w.start,
		WindowEndMs:      w.end,
		Samples:          uint32(min(w.samples, math.MaxUint32)),
		CpuPermille:      w.cpu.proto(),
		MemUsedKib:       w.mem.proto(),
		Load1Centi:       w.load.proto(),
		DiskUsedPermille: w.disk.proto(),
		Last:             w.last,
		Covers:           acks.ToProto(acks.Normalize(w.covers)),
	}
}

// diskPermille is the fullest mount's usage in permille of its size.
func diskPermille(rep *pb.ResourceReport) (float64, bool) {
	best, ok := 0.0, false
	for _, d := range rep.GetDisks() {
		if d.GetTotalKib() == 0 {
			continue
		}
		p := float64(d.GetUsedKib()) * 1000 / float64(d.GetTotalKib())
		if !ok || p > best {
			best, ok = p, true
		}
	}
	return best, ok
}

// stat accumulates min, max and a sample-weighted mean.
type stat struct {
	n, min, max, sum float64
}

func (s *stat) add(v, weight float64) {
	if s.n == 0 {
		s.min, s.max = v, v
	}
	s.min, s.max = math.Min(s.min, v), math.Max(s.max, v)
	s.sum += v * weight
	s.n += weight
}

func (s *stat) merge(p *pb.Stat, weight float64) {
	if p == nil || weight <= 0 {
		return
	}
	if s.n == 0 {
		s.min, s.max = p.GetMin(), p.GetMax()
	}
	s.min, s.max = math.Min(s.min, p.GetMin()), math.Max(s.max, p.GetMax())
	s.sum += p.GetMean() * weight
	s.n += weight
}

func (s *stat) proto() *pb.Stat {
	if s.n == 0 {
		return nil
	}
	return &pb.Stat{Min: s.min, Max: s.max, Mean: s.sum / s.n}
}

// floorTo rounds ms down to a multiple of w.
func floorTo(ms, w int64) int64 {
	return ms - ((ms%w)+w)%w
}
