package workloads

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Workloads returns every workload, sorted by name.
func (s *Store) Workloads() []Workload {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Workload, 0, len(s.workloads))
	for _, w := range s.workloads {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b Workload) int { return cmp.Compare(a.Name(), b.Name()) })
	return out
}

// Workload returns the workload called name.
func (s *Store) Workload(name string) (Workload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.workloads[name]
	if !ok {
		return Workload{}, false
	}
	return *w, true
}

// Copies returns the copies of workload ("" for every copy), sorted by
// ID.
func (s *Store) Copies(workload string) []Copy {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Copy
	if workload == "" {
		out = make([]Copy, 0, len(s.copies))
		for _, c := range s.copies {
			out = append(out, *c)
		}
	} else {
		for id := range s.byWorkload[workload] {
			out = append(out, *s.copies[id])
		}
	}
	slices.SortFunc(out, func(a, b Copy) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Statuses returns the latest status of each node running workload ("":
// every status), sorted by workload then node.
func (s *Store) Statuses(workload string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for k, st := range s.statuses {
		if workload == "" || k.workload == workload {
			out = append(out, *st)
		}
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Workload, b.Workload), cmp.Compare(a.Node, b.Node))
	})
	return out
}

// Status returns the latest status of workload on node.
func (s *Store) Status(workload, node string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.statuses[statusKey{workload, node}]
	if !ok {
		return Status{}, false
	}
	return *st, true
}

// Desired returns node's set generation and the generation it
// acknowledged; ok is false for a node the store has no set for.
func (s *Store) Desired(node string) (generation, acked uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[node]
	if !ok {
		return 0, 0, false
	}
	return n.Set.Generation, n.Acked, true
}

// HasSet reports whether node has a desired set.
func (s *Store) HasSet(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.nodes[node]
	return ok
}

// DesiredNames returns the workloads in node's set, sorted.
func (s *Store) DesiredNames(node string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.nodes[node]; ok {
		return n.Set.Names()
	}
	return nil
}

// Nodes returns the IDs of the nodes with a desired set, sorted.
func (s *Store) Nodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.nodes))
	for id := range s.nodes {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Diff returns the messages that bring node from generation from to its
// set's generation (see desired.Set.Diff); nil for a node without a set
// or already there.
func (s *Store) Diff(node string, from uint64, maxBytes int) []*pb.DesiredState {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[node]
	if !ok {
		return nil
	}
	return n.Set.Diff(from, maxBytes)
}

// Full returns node's whole live set as messages that replace whatever
// the node holds, even when it claims the set's generation; nil for a
// node without a set.
func (s *Store) Full(node string, maxBytes int) []*pb.DesiredState {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[node]
	if !ok {
		return nil
	}
	if n.Set.Generation == 0 {
		return []*pb.DesiredState{{Full: true}}
	}
	return n.Set.Diff(0, maxBytes)
}

// Acknowledge records that node holds generation (a DesiredAck, or the
// applied generation of its hello) and forgets the tombstones at or below
// it. A generation above the set's is one this store never reached (it
// was restored from an older copy): it is not recorded, and the next
// diff replaces the node's set; the acknowledged generation becomes 0,
// what the store knows the node holds. It returns the set's generation and
// whether the node is known.
func (s *Store) Acknowledge(node string, generation uint64) (current uint64, known bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[node]
	if !ok {
		return 0, false, nil
	}
	current = n.Set.Generation
	acked := generation
	if acked > current {
		acked = 0
	}
	if acked == n.Acked {
		// Compact(acked) ran when acked was first recorded, and every
		// later change is above it.
		return current, true, nil
	}
	next, err := cloneNode(n)
	if err != nil {
		return current, true, err
	}
	next.Acked = acked
	next.Set.Compact(acked)
	tx := newTx(s)
	tx.nodes[node] = next
	if err := s.write(tx); err != nil {
		return current, true, err
	}
	s.nodes[node] = next
	return current, true, nil
}

// cloneNode deep-copies n.
func cloneNode(n *NodeState) (*NodeState, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("copy desired set: %w", err)
	}
	out := new(NodeState)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("copy desired set: %w", err)
	}
	return out, nil
}

// Audit returns the placement records of workload ("" for all), newest
// first.
func (s *Store) Audit(workload string) []apiv1.PlacementRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]apiv1.PlacementRecord, 0)
	for i := len(s.audit) - 1; i >= 0; i-- {
		if r := s.audit[i].rec; workload == "" || r.Workload == workload {
			out = append(out, r)
		}
	}
	return out
}
