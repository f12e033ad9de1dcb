package desired

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Set is the cloud's versioned desired set of one node: the live
// assignments by name, each with the generation at which it last changed,
// and tombstones of removed names not yet compacted. The zero value is an
// empty set at generation 0.
type Set struct {
	// Generation is the generation of the latest change. Read it; change
	// it only through Put and Remove.
	Generation uint64

	// floor is the highest generation of a compacted tombstone: a diff
	// can be computed from any generation in [floor, Generation].
	floor uint64
	items map[string]*item
}

type item struct {
	gen     uint64
	spec    []byte // nil for a tombstone
	removed bool
}

// Put assigns name the spec (JSON of a spec.WorkloadSpec). It returns true
// and bumps Generation by one when name is new, was removed, or had a
// different spec; it returns false and changes nothing when the spec is
// the same. The Set keeps its own copy of specJSON.
func (s *Set) Put(name string, specJSON []byte) bool {
	if it, ok := s.items[name]; ok && !it.removed && bytes.Equal(it.spec, specJSON) {
		return false
	}
	if s.items == nil {
		s.items = map[string]*item{}
	}
	s.Generation++
	s.items[name] = &item{gen: s.Generation, spec: bytes.Clone(specJSON)}
	if s.items[name].spec == nil {
		s.items[name].spec = []byte{}
	}
	return true
}

// Remove unassigns name. It returns true and bumps Generation when name was
// live, leaving a tombstone so diffs carry the removal; it returns false
// when name is unknown or already removed.
func (s *Set) Remove(name string) bool {
	it, ok := s.items[name]
	if !ok || it.removed {
		return false
	}
	s.Generation++
	s.items[name] = &item{gen: s.Generation, removed: true}
	return true
}

// Names returns the live names, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.items))
	for name, it := range s.items {
		if !it.removed {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Len is the number of live assignments.
func (s *Set) Len() int {
	n := 0
	for _, it := range s.items {
		if !it.removed {
			n++
		}
	}
	return n
}

// Get returns the spec of a live name and the generation at which it last
// changed; ok is false for unknown and removed names. The returned slice
// must not be modified.
func (s *Set) Get(name string) (specJSON []byte, gen uint64, ok bool) {
	it, found := s.items[name]
	if !found || it.removed {
		return nil, 0, false
	}
	return it.spec, it.gen, true
}

// Floor is the lowest generation a diff can start from; a node below it
// gets the full set.
func (s *Set) Floor() uint64 { return s.floor }

// Compact forgets the tombstones of removals at or below acked, the
// generation the node has acknowledged: the node no longer needs them. A
// node that later claims an older generation gets the full set.
func (s *Set) Compact(acked uint64) {
	acked = min(acked, s.Generation)
	maps.DeleteFunc(s.items, func(_ string, it *item) bool {
		if it.removed && it.gen <= acked {
			s.floor = max(s.floor, it.gen)
			return true
		}
		return false
	})
}

// setJSON is how a Set is stored.
type setJSON struct {
	Generation uint64              `json:"generation"`
	Floor      uint64              `json:"floor,omitempty"`
	Items      map[string]itemJSON `json:"items,omitempty"`
}

type itemJSON struct {
	Generation uint64 `json:"generation"`
	// Spec is the spec JSON, kept as bytes (base64) so that any bytes
	// Put accepted round-trip exactly.
	Spec    []byte `json:"spec,omitempty"`
	Removed bool   `json:"removed,omitempty"`
}

// MarshalJSON encodes the whole Set, tombstones included.
func (s Set) MarshalJSON() ([]byte, error) {
	out := setJSON{Generation: s.Generation, Floor: s.floor}
	if len(s.items) > 0 {
		out.Items = make(map[string]itemJSON, len(s.items))
		for name, it := range s.items {
			out.Items[name] = itemJSON{Generation: it.gen, Spec: it.spec, Removed: it.removed}
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes a Set written by MarshalJSON and checks that it is
// consistent: no item or floor above the generation, at most one change
// per generation.
func (s *Set) UnmarshalJSON(b []byte) error {
	var in setJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("decode desired set: %w", err)
	}
	if in.Floor > in.Generation {
		return fmt.Errorf("decode desired set: floor %d above generation %d", in.Floor, in.Generation)
	}
	items := make(map[string]*item, len(in.Items))
	gens := make(map[uint64]string, len(in.Items))
	for name, it := range in.Items {
		if it.Generation == 0 || it.Generation > in.Generation {
			return fmt.Errorf("decode desired set: %q at generation %d, want 1..%d", name, it.Generation, in.Generation)
		}
		if other, dup := gens[it.Generation]; dup {
			return fmt.Errorf("decode desired set: %q and %q both changed at generation %d", name, other, it.Generation)
		}
		gens[it.Generation] = name
		n := &item{gen: it.Generation, removed: it.Removed}
		if !it.Removed {
			n.spec = it.Spec
			if n.spec == nil {
				n.spec = []byte{}
			}
		}
		items[name] = n
	}
	*s = Set{Generation: in.Generation, floor: in.Floor, items: items}
	return nil
}
