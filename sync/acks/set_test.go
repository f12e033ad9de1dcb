package acks

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// op is one mutation in a table case: a range to add, or a reset.
type op struct {
	first, last uint64
	reset       bool
}

func apply(s *Set, ops []op) []uint64 {
	var added []uint64
	for _, o := range ops {
		if o.reset {
			s.Reset(o.first)
			continue
		}
		added = append(added, s.AddRange(o.first, o.last))
	}
	return added
}

func TestSetAddRange(t *testing.T) {
	tests := []struct {
		name       string
		max        int
		ops        []op
		wantAdded  []uint64
		wantCum    uint64
		wantRanges []Range
	}{
		{name: "empty", wantRanges: nil},
		{name: "contiguous singles", ops: []op{{1, 1, false}, {2, 2, false}, {3, 3, false}},
			wantAdded: []uint64{1, 1, 1}, wantCum: 3},
		{name: "zero is ignored", ops: []op{{0, 0, false}}, wantAdded: []uint64{0}},
		{name: "range from zero starts at one", ops: []op{{0, 5, false}}, wantAdded: []uint64{5}, wantCum: 5},
		{name: "hole then fill", ops: []op{{1, 1, false}, {3, 3, false}, {5, 7, false}, {2, 2, false}},
			wantAdded: []uint64{1, 1, 3, 1}, wantCum: 3, wantRanges: []Range{{5, 7}}},
		{name: "fill absorbs several ranges", ops: []op{{3, 3, false}, {5, 6, false}, {9, 9, false}, {1, 8, false}},
			wantAdded: []uint64{1, 2, 1, 5}, wantCum: 9},
		{name: "adjacent ranges merge", ops: []op{{10, 12, false}, {13, 15, false}, {7, 9, false}},
			wantAdded: []uint64{3, 3, 3}, wantRanges: []Range{{7, 15}}},
		{name: "overlap counts only new", ops: []op{{10, 20, false}, {15, 25, false}, {5, 30, false}},
			wantAdded: []uint64{11, 5, 10}, wantRanges: []Range{{5, 30}}},
		{name: "duplicate adds nothing", ops: []op{{1, 4, false}, {2, 3, false}, {7, 8, false}, {8, 8, false}},
			wantAdded: []uint64{4, 0, 2, 0}, wantCum: 4, wantRanges: []Range{{7, 8}}},
		{name: "empty range", ops: []op{{5, 4, false}}, wantAdded: []uint64{0}},
		{name: "reset forgets ranges", ops: []op{{1, 3, false}, {9, 9, false}, {100, 0, true}, {101, 101, false}},
			wantAdded: []uint64{3, 1, 1}, wantCum: 101},
		{name: "reset lower", ops: []op{{1, 50, false}, {10, 0, true}, {12, 12, false}},
			wantAdded: []uint64{50, 1}, wantCum: 10, wantRanges: []Range{{12, 12}}},
		{name: "top of the number space", ops: []op{{math.MaxUint64 - 1, math.MaxUint64, false}, {1, math.MaxUint64 - 2, false}},
			wantAdded: []uint64{2, math.MaxUint64 - 2}, wantCum: math.MaxUint64},
		{name: "bounded forgets the highest", max: 2, ops: []op{{3, 3, false}, {5, 5, false}, {7, 7, false}, {1, 1, false}},
			wantAdded: []uint64{1, 1, 1, 1}, wantCum: 1, wantRanges: []Range{{3, 3}, {5, 5}}},
		{name: "bounded merge keeps within limit", max: 2, ops: []op{{3, 3, false}, {6, 6, false}, {4, 5, false}, {9, 9, false}},
			wantAdded: []uint64{1, 1, 2, 1}, wantRanges: []Range{{3, 6}, {9, 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSet(0, tt.max)
			added := apply(s, tt.ops)
			if diff := cmp.Diff(tt.wantAdded, added); diff != "" {
				t.Errorf("AddRange counts (-want +got):\n%s", diff)
			}
			if got := s.Cumulative(); got != tt.wantCum {
				t.Errorf("Cumulative() = %d, want %d", got, tt.wantCum)
			}
			if diff := cmp.Diff(tt.wantRanges, s.Ranges(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Ranges() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetContains(t *testing.T) {
	s := NewSet(0, 0)
	s.AddRange(1, 10)
	s.AddRange(20, 25)
	s.Add(30)
	tests := []struct {
		seq  uint64
		want bool
	}{
		{0, false}, {1, true}, {10, true}, {11, false}, {19, false}, {20, true},
		{25, true}, {26, false}, {30, true}, {31, false}, {math.MaxUint64, false},
	}
	for _, tt := range tests {
		if got := s.Contains(tt.seq); got != tt.want {
			t.Errorf("Contains(%d) = %v, want %v", tt.seq, got, tt.want)
		}
	}
}

func TestSetAddReturnsWhetherNew(t *testing.T) {
	s := NewSet(5, 0)
	for _, tt := range []struct {
		seq  uint64
		want bool
	}{{3, false}, {6, true}, {6, false}, {8, true}, {7, true}, {8, false}, {0, false}} {
		if got := s.Add(tt.seq); got != tt.want {
			t.Errorf("Add(%d) = %v, want %v", tt.seq, got, tt.want)
		}
	}
	if got := s.Cumulative(); got != 8 {
		t.Errorf("Cumulative() = %d, want 8", got)
	}
}

func TestSetAckRoundTrip(t *testing.T) {
	s := NewSet(0, 0)
	s.AddRange(1, 41)
	s.AddRange(50, 60)
	s.Add(70)
	want := &pb.Ack{Cumulative: 41, Ranges: []*pb.SeqRange{{First: 50, Last: 60}, {First: 70, Last: 70}}}
	if diff := cmp.Diff(want, s.ToAck(), protocmp.Transform()); diff != "" {
		t.Errorf("ToAck() (-want +got):\n%s", diff)
	}
	got := NewSet(0, 0)
	if n := got.AddAck(s.ToAck()); n != 53 {
		t.Errorf("AddAck() = %d, want 53", n)
	}
	if diff := cmp.Diff(s.ToAck(), got.ToAck(), protocmp.Transform()); diff != "" {
		t.Errorf("AddAck(ToAck()) (-want +got):\n%s", diff)
	}
	w := NewSet(0, 0)
	w.AddWelcome(&pb.Welcome{Watermark: 41, Applied: want.Ranges})
	if diff := cmp.Diff(want, w.ToAck(), protocmp.Transform()); diff != "" {
		t.Errorf("AddWelcome() (-want +got):\n%s", diff)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   []Range
		want []Range
	}{
		{"nil", nil, []Range{}},
		{"unsorted overlapping", []Range{{10, 12}, {1, 3}, {2, 5}, {13, 13}}, []Range{{1, 5}, {10, 13}}},
		{"drops empty and zero", []Range{{5, 4}, {0, 3}, {7, 7}}, []Range{{7, 7}}},
		{"max value", []Range{{math.MaxUint64, math.MaxUint64}, {5, math.MaxUint64}}, []Range{{5, math.MaxUint64}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Normalize(append([]Range(nil), tt.in...))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Normalize(%v) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestAppendSeqAndCount(t *testing.T) {
	var rs []Range
	for _, s := range []uint64{3, 4, 5, 9, 11, 12} {
		rs = AppendSeq(rs, s)
	}
	want := []Range{{3, 5}, {9, 9}, {11, 12}}
	if diff := cmp.Diff(want, rs); diff != "" {
		t.Errorf("AppendSeq (-want +got):\n%s", diff)
	}
	if got := Count(rs); got != 6 {
		t.Errorf("Count(%v) = %d, want 6", rs, got)
	}
}

func TestProtoConversion(t *testing.T) {
	in := []*pb.SeqRange{{First: 0, Last: 2}, {First: 9, Last: 8}, {First: 5, Last: 5}}
	got := FromProto(in)
	want := []Range{{1, 2}, {5, 5}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FromProto (-want +got):\n%s", diff)
	}
	back := ToProto(got)
	if diff := cmp.Diff([]*pb.SeqRange{{First: 1, Last: 2}, {First: 5, Last: 5}}, back, protocmp.Transform()); diff != "" {
		t.Errorf("ToProto (-want +got):\n%s", diff)
	}
}
