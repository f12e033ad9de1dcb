package workloads

import (
	"cmp"
	"slices"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/sync/desired"
)

// Tx is a change to the store in progress (see Store.Update). Reads see
// the store with the transaction's own changes; writes are staged and
// reach memory only after they are on disk. Records are values: change
// one by reading it, modifying the copy and putting it back. A Tx must
// not be used after its Update returns.
type Tx struct {
	s *Store
	// Staged records; a nil value is a deletion.
	workloads map[string]*Workload
	copies    map[string]*Copy
	nodes     map[string]*NodeState
	statuses  map[statusKey]*Status
	audit     []apiv1.PlacementRecord
}

func newTx(s *Store) *Tx {
	return &Tx{
		s: s, workloads: map[string]*Workload{}, copies: map[string]*Copy{},
		nodes: map[string]*NodeState{}, statuses: map[statusKey]*Status{},
	}
}

func (tx *Tx) empty() bool {
	return len(tx.workloads) == 0 && len(tx.copies) == 0 && len(tx.nodes) == 0 &&
		len(tx.statuses) == 0 && len(tx.audit) == 0
}

// Workload returns the workload called name.
func (tx *Tx) Workload(name string) (Workload, bool) {
	w, staged := tx.workloads[name]
	if !staged {
		w = tx.s.workloads[name]
	}
	if w == nil {
		return Workload{}, false
	}
	return *w, true
}

// Workloads returns every workload, sorted by name.
func (tx *Tx) Workloads() []Workload {
	out := make([]Workload, 0, len(tx.s.workloads)+len(tx.workloads))
	for name, w := range tx.s.workloads {
		if _, staged := tx.workloads[name]; !staged {
			out = append(out, *w)
		}
	}
	for _, w := range tx.workloads {
		if w != nil {
			out = append(out, *w)
		}
	}
	slices.SortFunc(out, func(a, b Workload) int { return cmp.Compare(a.Name(), b.Name()) })
	return out
}

// PutWorkload creates or replaces a workload.
func (tx *Tx) PutWorkload(w Workload) { tx.workloads[w.Name()] = &w }

// DeleteWorkload removes a workload record.
func (tx *Tx) DeleteWorkload(name string) { tx.workloads[name] = nil }

// Copy returns the copy with id.
func (tx *Tx) Copy(id string) (Copy, bool) {
	c, staged := tx.copies[id]
	if !staged {
		c = tx.s.copies[id]
	}
	if c == nil {
		return Copy{}, false
	}
	return *c, true
}

// Copies returns the copies of workload ("" for every copy), sorted by
// ID.
func (tx *Tx) Copies(workload string) []Copy {
	var out []Copy
	add := func(id string) {
		if _, staged := tx.copies[id]; !staged {
			out = append(out, *tx.s.copies[id])
		}
	}
	if workload == "" {
		for id := range tx.s.copies {
			add(id)
		}
	} else {
		for id := range tx.s.byWorkload[workload] {
			add(id)
		}
	}
	for _, c := range tx.copies {
		if c != nil && (workload == "" || c.Workload == workload) {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b Copy) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// PutCopy creates or replaces a copy.
func (tx *Tx) PutCopy(c Copy) { tx.copies[c.ID] = &c }

// DeleteCopy removes a copy.
func (tx *Tx) DeleteCopy(id string) { tx.copies[id] = nil }

// Status returns the latest status of workload on node.
func (tx *Tx) Status(workload, node string) (Status, bool) {
	k := statusKey{workload, node}
	st, staged := tx.statuses[k]
	if !staged {
		st = tx.s.statuses[k]
	}
	if st == nil {
		return Status{}, false
	}
	return *st, true
}

// PutStatus records a status.
func (tx *Tx) PutStatus(st Status) { tx.statuses[statusKey{st.Workload, st.Node}] = &st }

// DeleteStatus forgets the status of workload on node.
func (tx *Tx) DeleteStatus(workload, node string) {
	k := statusKey{workload, node}
	if _, ok := tx.Status(workload, node); ok {
		tx.statuses[k] = nil
	}
}

// Set returns node's desired set for changing, creating an empty one for
// a node without a set. Changes count only if the Update succeeds.
func (tx *Tx) Set(node string) (*desired.Set, error) {
	n, err := tx.node(node, true)
	if err != nil {
		return nil, err
	}
	return &n.Set, nil
}

// HasSet reports whether node has a desired set.
func (tx *Tx) HasSet(node string) bool { return tx.current(node) != nil }

// Acked is the generation node acknowledged (0 for an unknown node).
func (tx *Tx) Acked(node string) uint64 {
	if n := tx.current(node); n != nil {
		return n.Acked
	}
	return 0
}

// current returns node's state, staged or stored, without staging it.
func (tx *Tx) current(node string) *NodeState {
	n, staged := tx.nodes[node]
	if !staged {
		n = tx.s.nodes[node]
	}
	return n
}

// SetNames returns the live names of node's set without staging it.
func (tx *Tx) SetNames(node string) []string {
	if n := tx.current(node); n != nil {
		return n.Set.Names()
	}
	return nil
}

// SetGet returns the spec and generation of name in node's set without
// staging it (see desired.Set.Get).
func (tx *Tx) SetGet(node, name string) (specJSON []byte, gen uint64, ok bool) {
	if n := tx.current(node); n != nil {
		return n.Set.Get(name)
	}
	return nil, 0, false
}

// SetGeneration is node's set generation (0 without a set).
func (tx *Tx) SetGeneration(node string) uint64 {
	if n := tx.current(node); n != nil {
		return n.Set.Generation
	}
	return 0
}

// SetNodes returns the nodes that have a desired set, sorted.
func (tx *Tx) SetNodes() []string {
	out := make([]string, 0, len(tx.s.nodes)+len(tx.nodes))
	for id := range tx.s.nodes {
		if n, staged := tx.nodes[id]; !staged || n != nil {
			out = append(out, id)
		}
	}
	for id, n := range tx.nodes {
		if _, stored := tx.s.nodes[id]; !stored && n != nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// node returns the staged copy of node's state, staging it first.
func (tx *Tx) node(node string, create bool) (*NodeState, error) {
	if n, ok := tx.nodes[node]; ok && n != nil {
		return n, nil
	}
	cur := tx.s.nodes[node]
	if cur == nil {
		if !create {
			return nil, nil
		}
		n := &NodeState{}
		tx.nodes[node] = n
		return n, nil
	}
	n, err := cloneNode(cur)
	if err != nil {
		return nil, err
	}
	tx.nodes[node] = n
	return n, nil
}

// Audit appends a record to the residency audit log.
func (tx *Tx) Audit(r apiv1.PlacementRecord) { tx.audit = append(tx.audit, r) }
