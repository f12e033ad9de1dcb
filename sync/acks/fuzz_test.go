package acks

import (
	"testing"
)

// FuzzSet drives a Set with a stream of operations decoded from the input
// and compares it with a map after every step. The first byte picks the
// range limit: with a generous one the set must equal the model; with a
// tight one it may forget, but only above its cumulative base, and never
// claim a number the model lacks.
func FuzzSet(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0, 3})
	f.Add([]byte{1, 1, 5, 3, 1, 9, 2, 0, 4, 1, 1, 1, 0, 7})
	f.Add([]byte{2, 2, 10, 4, 3, 20, 0, 0, 40, 1, 30, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		const span = 64 // sequence numbers exercised: 0..span+15
		maxRanges := []int{1000, 1, 2, 3}[data[0]%4]
		exact := maxRanges >= span
		s := NewSet(0, maxRanges)
		model := map[uint64]bool{}
		base := uint64(0)
		data = data[1:]
		for len(data) >= 2 {
			kind, a := data[0]%4, uint64(data[1])%span
			data = data[2:]
			switch kind {
			case 0, 1:
				want := a != 0 && !model[a] && a > base
				if got := s.Add(a); exact && got != want {
					t.Fatalf("Add(%d) = %v, want %v", a, got, want)
				}
				if a != 0 && a > base {
					model[a] = true
				}
			case 2:
				if len(data) == 0 {
					return
				}
				l := a + uint64(data[0])%16
				data = data[1:]
				var want uint64
				for x := max(a, 1); x <= l; x++ {
					if x > base && !model[x] {
						want++
						model[x] = true
					}
				}
				if got := s.AddRange(a, l); exact && got != want {
					t.Fatalf("AddRange(%d, %d) = %d, want %d", a, l, got, want)
				}
			case 3:
				s.Reset(a)
				base, model = a, map[uint64]bool{}
			}
			check(t, s, base, model, exact)
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary() error = %v", err)
		}
		back := NewSet(0, maxRanges)
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(MarshalBinary()) error = %v", err)
		}
		if back.Cumulative() != s.Cumulative() || len(back.Ranges()) != len(s.Ranges()) {
			t.Fatalf("binary round trip = %d %v, want %d %v", back.Cumulative(), back.Ranges(), s.Cumulative(), s.Ranges())
		}
	})
}

func check(t *testing.T, s *Set, base uint64, model map[uint64]bool, exact bool) {
	t.Helper()
	in := func(x uint64) bool { return x != 0 && (x <= base || model[x]) }
	cum := base
	for in(cum + 1) {
		cum++
	}
	if exact && s.Cumulative() != cum {
		t.Fatalf("Cumulative() = %d, want %d", s.Cumulative(), cum)
	}
	if s.Cumulative() < base || s.Cumulative() > cum {
		t.Fatalf("Cumulative() = %d, want within [%d, %d]", s.Cumulative(), base, cum)
	}
	for x := uint64(0); x < 64+16; x++ {
		got := s.Contains(x)
		if exact && got != in(x) {
			t.Fatalf("Contains(%d) = %v, want %v", x, got, in(x))
		}
		if got && !in(x) {
			t.Fatalf("Contains(%d) = true for a number never added", x)
		}
		if x <= s.Cumulative() && x != 0 && !got {
			t.Fatalf("Contains(%d) = false below Cumulative() %d", x, s.Cumulative())
		}
	}
	prev := s.Cumulative()
	for i, r := range s.Ranges() {
		if r.First < prev+2 || r.Last < r.First {
			t.Fatalf("Ranges()[%d] = %v after %d: not sorted, disjoint and non-adjacent", i, r, prev)
		}
		prev = r.Last
	}
}
