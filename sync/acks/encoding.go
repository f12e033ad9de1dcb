package acks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// encodingVersion is the first byte of the binary form.
const encodingVersion = 1

// ErrEncoding is wrapped by UnmarshalBinary's errors.
var ErrEncoding = errors.New("bad sequence set encoding")

// AppendBinary appends the set's compact binary form to b: a version byte,
// the base and the number of ranges as uvarints, then each range as two
// uvarints, its distance from the end of the previous one and its length
// minus one. A watermark with a few holes takes a handful of bytes.
func (s *Set) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, encodingVersion)
	b = binary.AppendUvarint(b, s.base)
	b = binary.AppendUvarint(b, uint64(len(s.ranges)))
	prev := s.base
	for _, r := range s.ranges {
		b = binary.AppendUvarint(b, r.First-prev)
		b = binary.AppendUvarint(b, r.Last-r.First)
		prev = r.Last
	}
	return b, nil
}

// MarshalBinary returns the set's compact binary form (see AppendBinary).
func (s *Set) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 16+6*len(s.ranges)))
}

// UnmarshalBinary replaces the set's contents with the decoded form. The
// set's range limit is kept; ranges beyond it are forgotten.
func (s *Set) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] != encodingVersion {
		return fmt.Errorf("%w: unknown version", ErrEncoding)
	}
	rest := data[1:]
	next := func(what string) (uint64, error) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, fmt.Errorf("%w: truncated %s", ErrEncoding, what)
		}
		rest = rest[n:]
		return v, nil
	}
	base, err := next("base")
	if err != nil {
		return err
	}
	n, err := next("range count")
	if err != nil {
		return err
	}
	// Each range takes at least two bytes; a larger count is a lie.
	if n > uint64(len(rest))/2 {
		return fmt.Errorf("%w: %d ranges in %d bytes", ErrEncoding, n, len(rest))
	}
	ranges := make([]Range, 0, n)
	prev := base
	for i := uint64(0); i < n; i++ {
		gap, err := next("range start")
		if err != nil {
			return err
		}
		length, err := next("range length")
		if err != nil {
			return err
		}
		// Ranges are disjoint and non-adjacent: each starts at least two
		// past the previous end.
		if gap < 2 || prev > math.MaxUint64-gap || prev+gap > math.MaxUint64-length {
			return fmt.Errorf("%w: range %d out of order or overflowing", ErrEncoding, i)
		}
		r := Range{First: prev + gap, Last: prev + gap + length}
		ranges = append(ranges, r)
		prev = r.Last
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrEncoding, len(rest))
	}
	s.base, s.ranges = base, ranges
	s.trim()
	return nil
}
