package desired

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Headroom is what a caller should subtract from protocol.MaxPayload to get
// Diff's maxBytes: it covers the envelope fields Diff does not count (node
// ID of up to 64 bytes, boot epoch, sequence, timestamp, capability).
const Headroom = 512

// fixedSize bounds the DesiredState fields other than the lists:
// base_generation and generation (tag + up to 10 bytes each) and full.
const fixedSize = 2*(1+10) + 2

// Diff returns the messages that bring a node holding generation from to
// Generation, in the order they must be applied; nil when from is
// Generation.
//
// From a generation in [Floor, Generation) the messages carry the changes
// in (from, Generation]: assignments added or changed, and names removed.
// From 0, from above Generation (a generation this Set never reached) or
// from below Floor (removals compacted), they carry the whole live set,
// the first with full set.
//
// The changes are split into messages covering consecutive generations
// (each message's generation is the next one's base) so that each, wrapped
// alone in a pb.Envelope, encodes in at most maxBytes; callers pass
// protocol.MaxPayload minus Headroom. An assignment too large for maxBytes
// by itself gets a message of its own, which will not fit: the API that
// accepts specs must keep them well below the limit.
func (s *Set) Diff(from uint64, maxBytes int) []*pb.DesiredState {
	switch {
	case from == s.Generation:
		return nil
	case from == 0 || from > s.Generation || from < s.floor:
		return s.chain(0, true, s.changes(0, false), maxBytes)
	}
	return s.chain(from, false, s.changes(from, true), maxBytes)
}

// change is one name's latest change.
type change struct {
	name string
	*item
}

// changes returns the items changed after from, by generation; tombstones
// only when withRemoved.
func (s *Set) changes(from uint64, withRemoved bool) []change {
	var out []change
	for name, it := range s.items {
		if it.gen > from && (withRemoved || !it.removed) {
			out = append(out, change{name, it})
		}
	}
	slices.SortFunc(out, func(a, b change) int { return cmpUint(a.gen, b.gen) })
	return out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// chain packs changes (sorted by generation) into chained messages; the
// first has full set when full is.
func (s *Set) chain(base uint64, full bool, changes []change, maxBytes int) []*pb.DesiredState {
	var out []*pb.DesiredState
	cur := &pb.DesiredState{BaseGeneration: base, Full: full}
	size, n := fixedSize, 0
	var last uint64
	for _, c := range changes {
		add := fieldSize(c)
		if n > 0 && envelopeSize(size+add) > maxBytes {
			cur.Generation = last
			out = append(out, cur)
			cur = &pb.DesiredState{BaseGeneration: last}
			size, n = fixedSize, 0
		}
		if c.removed {
			cur.Removed = append(cur.Removed, c.name)
		} else {
			cur.Assignments = append(cur.Assignments, &pb.WorkloadAssignment{Name: c.name, Generation: c.gen, SpecJson: c.spec})
		}
		size += add
		n++
		last = c.gen
	}
	cur.Generation = s.Generation
	return append(out, cur)
}

// fieldSize is the encoded size of one change inside a DesiredState.
func fieldSize(c change) int {
	if c.removed {
		return 1 + protowire.SizeBytes(len(c.name))
	}
	a := 1 + protowire.SizeBytes(len(c.name)) + // name
		1 + protowire.SizeVarint(c.gen) + // generation
		1 + protowire.SizeBytes(len(c.spec)) // spec_json
	return 1 + protowire.SizeBytes(a)
}

// envelopeSize is the size of an Envelope holding only a DesiredState of
// body bytes (field 19: a two-byte tag).
func envelopeSize(body int) int { return 2 + protowire.SizeBytes(body) }
