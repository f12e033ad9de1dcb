package acks

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestBinaryRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		ops    []op
		maxLen int
	}{
		{name: "empty", maxLen: 3},
		{name: "watermark only", ops: []op{{1, 1_000_000, false}}, maxLen: 5},
		{name: "watermark and holes", ops: []op{{1, 900, false}, {905, 910, false}, {2000, 2000, false}}, maxLen: 12},
		{name: "high numbers", ops: []op{{1 << 60, 1<<60 + 5, false}}, maxLen: 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSet(0, 0)
			apply(s, tt.ops)
			b, err := s.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary() error = %v", err)
			}
			if len(b) > tt.maxLen {
				t.Errorf("MarshalBinary() is %d bytes, want at most %d", len(b), tt.maxLen)
			}
			got := NewSet(0, 0)
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary(%x) error = %v", b, err)
			}
			if got.Cumulative() != s.Cumulative() || !cmp.Equal(got.Ranges(), s.Ranges(), cmpopts.EquateEmpty()) {
				t.Errorf("round trip = %d %v, want %d %v", got.Cumulative(), got.Ranges(), s.Cumulative(), s.Ranges())
			}
		})
	}
}

func TestUnmarshalBinaryRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"wrong version", []byte{2, 0, 0}},
		{"truncated base", []byte{1, 0x80}},
		{"missing count", []byte{1, 5}},
		{"count lies", []byte{1, 5, 100, 2, 0}},
		{"adjacent range", []byte{1, 5, 1, 1, 0}},
		{"overlapping ranges", []byte{1, 0, 2, 2, 3, 1, 0}},
		{"overflow", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 2, 0}},
		{"trailing bytes", []byte{1, 5, 0, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSet(0, 0)
			s.AddRange(1, 3)
			if err := s.UnmarshalBinary(tt.in); !errors.Is(err, ErrEncoding) {
				t.Errorf("UnmarshalBinary(%x) error = %v, want ErrEncoding", tt.in, err)
			}
			if s.Cumulative() != 3 {
				t.Errorf("after failed UnmarshalBinary, Cumulative() = %d, want the old 3", s.Cumulative())
			}
		})
	}
}
