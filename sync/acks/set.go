// Package acks holds the sequence-number set both ends of the cloud link
// keep: the bridge records which of a node's durable messages it has
// applied (its dedupe watermark) and the agent folds the acks it receives
// into one. A Set is a cumulative base (every sequence number from 1 to
// Cumulative is in the set) plus sorted, disjoint ranges above it, which is
// exactly the shape of a pb.Ack and a pb.Welcome.
//
// The set is bounded: it keeps at most MaxRanges ranges above the base.
// When a new range would exceed that, the highest ranges are forgotten. A
// forgotten sequence number is treated as never seen, so the worst outcome
// is a duplicate (the agent resends it, the bridge applies it again), never
// a loss.
package acks

import (
	"math"
	"slices"
	"sort"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// DefaultMaxRanges bounds the ranges a Set keeps when its limit is not set.
// 1024 ranges encode in at most ~22 KB, well inside one MQTT message.
const DefaultMaxRanges = 1024

// Range is an inclusive range of sequence numbers, First <= Last.
type Range struct {
	First, Last uint64
}

// Len is the number of sequence numbers in r.
func (r Range) Len() uint64 { return r.Last - r.First + 1 }

// Set is a set of sequence numbers: [1, Cumulative()] plus Ranges(). The
// zero value is an empty set with DefaultMaxRanges. A Set is not safe for
// concurrent use.
type Set struct {
	base      uint64
	ranges    []Range // sorted, disjoint, non-adjacent, each First > base+1
	maxRanges int
	forgotten uint64
}

// NewSet returns a set holding [1, base] that keeps at most maxRanges
// ranges above the base (DefaultMaxRanges when maxRanges <= 0).
func NewSet(base uint64, maxRanges int) *Set {
	return &Set{base: base, maxRanges: maxRanges}
}

func (s *Set) limit() int {
	if s.maxRanges <= 0 {
		return DefaultMaxRanges
	}
	return s.maxRanges
}

// Cumulative is the highest sequence number n such that every number in
// [1, n] is in the set; 0 when 1 is not.
func (s *Set) Cumulative() uint64 { return s.base }

// Ranges returns a copy of the ranges above Cumulative, in order.
func (s *Set) Ranges() []Range { return slices.Clone(s.ranges) }

// NumRanges is the number of ranges above Cumulative.
func (s *Set) NumRanges() int { return len(s.ranges) }

// Forgotten counts the sequence numbers dropped to keep within MaxRanges.
func (s *Set) Forgotten() uint64 { return s.forgotten }

// Contains reports whether seq is in the set. Sequence number 0 means "not
// sequenced" and is never in a set.
func (s *Set) Contains(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq <= s.base {
		return true
	}
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].Last >= seq })
	return i < len(s.ranges) && s.ranges[i].First <= seq
}

// Add adds seq and reports whether it was new. Add(0) is a no-op.
func (s *Set) Add(seq uint64) bool {
	return s.AddRange(seq, seq) > 0
}

// AddRange adds every number in [first, last] and returns how many were
// new. A range starting at 0 starts at 1; an empty range adds nothing.
func (s *Set) AddRange(first, last uint64) uint64 {
	if first == 0 {
		first = 1
	}
	if last < first || last <= s.base {
		return 0
	}
	if first <= s.base {
		first = s.base + 1
	}
	added := last - first + 1
	// The ranges [i, j) touch or overlap [first, last] and merge with it.
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].Last >= first-1 })
	j := i
	for j < len(s.ranges) && s.ranges[j].First-1 <= last {
		r := s.ranges[j]
		lo, hi := max(r.First, first), min(r.Last, last)
		if lo <= hi {
			added -= hi - lo + 1
		}
		first, last = min(first, r.First), max(last, r.Last)
		j++
	}
	if first == s.base+1 {
		// The new range extends the base; ranges [i, j) are absorbed
		// (i is 0 here because every range starts above base+1).
		s.base = last
		s.ranges = slices.Delete(s.ranges, 0, j)
		return added
	}
	s.ranges = slices.Replace(s.ranges, i, j, Range{first, last})
	s.trim()
	return added
}

// trim forgets the highest ranges beyond the limit.
func (s *Set) trim() {
	for len(s.ranges) > s.limit() {
		r := s.ranges[len(s.ranges)-1]
		s.forgotten += r.Len()
		s.ranges = s.ranges[:len(s.ranges)-1]
	}
}

// Reset empties the set and makes it hold [1, base]. The bridge resets a
// node's set when the node's outbox was recreated below the watermark.
func (s *Set) Reset(base uint64) {
	s.base = base
	s.ranges = s.ranges[:0]
}

// AddAck adds everything an Ack acknowledges.
func (s *Set) AddAck(a *pb.Ack) uint64 {
	n := s.AddRange(1, a.GetCumulative())
	for _, r := range a.GetRanges() {
		n += s.AddRange(r.GetFirst(), r.GetLast())
	}
	return n
}

// AddWelcome adds everything a Welcome says the cloud applied.
func (s *Set) AddWelcome(w *pb.Welcome) uint64 {
	n := s.AddRange(1, w.GetWatermark())
	for _, r := range w.GetApplied() {
		n += s.AddRange(r.GetFirst(), r.GetLast())
	}
	return n
}

// ToAck returns the set as an Ack.
func (s *Set) ToAck() *pb.Ack {
	return &pb.Ack{Cumulative: s.base, Ranges: ToProto(s.ranges)}
}

// Clone returns an independent copy of s.
func (s *Set) Clone() *Set {
	c := *s
	c.ranges = slices.Clone(s.ranges)
	return &c
}

// ToProto converts ranges to their wire form.
func ToProto(rs []Range) []*pb.SeqRange {
	if len(rs) == 0 {
		return nil
	}
	out := make([]*pb.SeqRange, len(rs))
	backing := make([]pb.SeqRange, len(rs))
	for i, r := range rs {
		backing[i].First, backing[i].Last = r.First, r.Last
		out[i] = &backing[i]
	}
	return out
}

// FromProto converts wire ranges, dropping empty ones (First > Last) and
// clamping a First of 0 to 1. The result is not normalised.
func FromProto(rs []*pb.SeqRange) []Range {
	out := make([]Range, 0, len(rs))
	for _, r := range rs {
		f, l := max(r.GetFirst(), 1), r.GetLast()
		if f <= l {
			out = append(out, Range{f, l})
		}
	}
	return out
}

// Normalize sorts rs and merges overlapping and adjacent ranges, dropping
// empty ones. It reuses rs's storage.
func Normalize(rs []Range) []Range {
	rs = slices.DeleteFunc(rs, func(r Range) bool { return r.First == 0 || r.First > r.Last })
	slices.SortFunc(rs, func(a, b Range) int {
		switch {
		case a.First < b.First:
			return -1
		case a.First > b.First:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].Last == math.MaxUint64 || r.First <= out[n-1].Last+1) {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// AppendSeq appends seq to rs, which must be sorted with every range
// ending before seq, extending the last range when seq follows it.
func AppendSeq(rs []Range, seq uint64) []Range {
	if n := len(rs); n > 0 && rs[n-1].Last+1 == seq {
		rs[n-1].Last = seq
		return rs
	}
	return append(rs, Range{seq, seq})
}

// Count is the number of sequence numbers in normalised ranges.
func Count(rs []Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Len()
	}
	return n
}
