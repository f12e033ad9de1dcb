package desired

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// ErrBaseMismatch is returned by Local.Apply for a diff whose base is not
// the generation the node holds. Nothing is applied; the node acks its
// generation and the cloud sends the diff from there.
var ErrBaseMismatch = errors.New("desired state diff does not start at the generation held")

// Assignment is one workload the node must run, as the cloud sent it.
type Assignment struct {
	Name string
	// Generation is the node generation at which the assignment last
	// changed.
	Generation uint64
	// SpecJSON is the spec as received; Spec is the same, decoded.
	SpecJSON []byte
	Spec     spec.WorkloadSpec
}

// Refusal is an assignment Apply could not take: a name that is not a
// workload name, or a spec that is not a workload spec. It does not stop
// the rest of the message: the name keeps what it held before, if
// anything.
type Refusal struct {
	Name       string
	Generation uint64
	Err        error
}

// Local is the desired set a node holds: the generation it reached and its
// assignments by name. The zero value is an empty set at generation 0.
type Local struct {
	Generation  uint64
	Assignments map[string]Assignment
}

// Apply brings l to m's generation.
//
// A full message replaces everything. A diff must start at l.Generation:
// one that ends at or below it was already applied (false, nil: applying a
// message twice changes nothing); any other is refused with
// ErrBaseMismatch and l is unchanged. Assignments that cannot be taken are
// returned as refusals; the others apply. changed reports whether the
// assignments changed (a new generation with the same assignments is not a
// change).
func (l *Local) Apply(m *pb.DesiredState) (changed bool, refused []Refusal, err error) {
	if !m.GetFull() {
		if m.GetGeneration() <= l.Generation {
			return false, nil, nil
		}
		if m.GetBaseGeneration() != l.Generation {
			return false, nil, fmt.Errorf("%w: diff (%d, %d] on generation %d", ErrBaseMismatch, m.GetBaseGeneration(), m.GetGeneration(), l.Generation)
		}
	}
	next := make(map[string]Assignment, len(l.Assignments)+len(m.GetAssignments()))
	if !m.GetFull() {
		maps.Copy(next, l.Assignments)
	}
	seen := make(map[string]bool, len(m.GetAssignments()))
	for _, a := range m.GetAssignments() {
		name := a.GetName()
		as, err := decodeAssignment(a)
		if err == nil && seen[name] {
			err = errors.New("assigned twice in one message")
		}
		seen[name] = true
		if err != nil {
			refused = append(refused, Refusal{Name: name, Generation: a.GetGeneration(), Err: err})
			if old, ok := l.Assignments[name]; ok {
				next[name] = old
			}
			continue
		}
		next[name] = as
	}
	if !m.GetFull() {
		for _, name := range m.GetRemoved() {
			if !seen[name] {
				delete(next, name)
			}
		}
	}
	changed = !sameAssignments(l.Assignments, next)
	l.Assignments = next
	l.Generation = m.GetGeneration()
	return changed, refused, nil
}

// decodeAssignment checks a's name and decodes its spec.
func decodeAssignment(a *pb.WorkloadAssignment) (Assignment, error) {
	if err := ValidateName(a.GetName()); err != nil {
		return Assignment{}, err
	}
	var s spec.WorkloadSpec
	if err := json.Unmarshal(a.GetSpecJson(), &s); err != nil {
		return Assignment{}, fmt.Errorf("spec of %q at generation %d: %w", a.GetName(), a.GetGeneration(), err)
	}
	return Assignment{Name: a.GetName(), Generation: a.GetGeneration(), SpecJSON: bytes.Clone(a.GetSpecJson()), Spec: s}, nil
}

// ValidateName checks a workload name by the rules of protocol/spec (a DNS
// label); the name also names directories and cgroups on the node.
func ValidateName(name string) error {
	w := spec.Workload{Metadata: spec.Metadata{Name: name}}
	err := w.Validate()
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) {
		return nil
	}
	for _, e := range j.Unwrap() {
		var fe *spec.FieldError
		if errors.As(e, &fe) && fe.Field == "metadata.name" {
			return fmt.Errorf("workload name %q: %s", name, fe.Fix)
		}
	}
	return nil
}

func sameAssignments(a, b map[string]Assignment) bool {
	return maps.EqualFunc(a, b, func(x, y Assignment) bool {
		return x.Generation == y.Generation && bytes.Equal(x.SpecJSON, y.SpecJSON)
	})
}

// Names returns the names of the assignments, sorted.
func (l *Local) Names() []string {
	return slices.Sorted(maps.Keys(l.Assignments))
}

// List returns the assignments sorted by name.
func (l *Local) List() []Assignment {
	out := make([]Assignment, 0, len(l.Assignments))
	for _, name := range l.Names() {
		out = append(out, l.Assignments[name])
	}
	return out
}

type localJSON struct {
	Generation  uint64           `json:"generation"`
	Assignments []assignmentJSON `json:"assignments,omitempty"`
}

type assignmentJSON struct {
	Name       string `json:"name"`
	Generation uint64 `json:"generation"`
	// Spec is the spec JSON exactly as received (base64).
	Spec []byte `json:"spec"`
}

// MarshalJSON encodes the generation and the assignments as received.
func (l Local) MarshalJSON() ([]byte, error) {
	out := localJSON{Generation: l.Generation}
	for _, a := range l.List() {
		out.Assignments = append(out.Assignments, assignmentJSON{Name: a.Name, Generation: a.Generation, Spec: a.SpecJSON})
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote, decoding every spec again.
// An entry that no longer decodes is an error: the stored state is not
// what this build wrote.
func (l *Local) UnmarshalJSON(b []byte) error {
	var in localJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("decode local desired state: %w", err)
	}
	next := Local{Generation: in.Generation, Assignments: make(map[string]Assignment, len(in.Assignments))}
	var bad []string
	for _, a := range in.Assignments {
		as, err := decodeAssignment(&pb.WorkloadAssignment{Name: a.Name, Generation: a.Generation, SpecJson: a.Spec})
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if _, dup := next.Assignments[a.Name]; dup {
			bad = append(bad, fmt.Sprintf("%q stored twice", a.Name))
			continue
		}
		next.Assignments[a.Name] = as
	}
	if len(bad) > 0 {
		return fmt.Errorf("decode local desired state: %s", strings.Join(bad, "; "))
	}
	*l = next
	return nil
}
