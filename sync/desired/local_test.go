package desired

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func asg(name string, gen uint64, specJSON string) *pb.WorkloadAssignment {
	return &pb.WorkloadAssignment{Name: name, Generation: gen, SpecJson: []byte(specJSON)}
}

const (
	specA = `{"runtime":"exec","exec":{"command":"/a"}}`
	specB = `{"runtime":"exec","exec":{"command":"/b"}}`
)

func TestLocalApply(t *testing.T) {
	// Each step applies to the Local the previous steps left.
	steps := []struct {
		name        string
		msg         *pb.DesiredState
		wantChanged bool
		wantRefused []string
		wantErr     error
		wantGen     uint64
		wantNames   []string
		check       func(*Local) string
	}{
		{"first full", &pb.DesiredState{Generation: 2, Full: true, Assignments: []*pb.WorkloadAssignment{asg("a", 1, specA), asg("b", 2, specB)}}, true, nil, nil, 2, []string{"a", "b"}, nil},
		{"same full again", &pb.DesiredState{Generation: 2, Full: true, Assignments: []*pb.WorkloadAssignment{asg("a", 1, specA), asg("b", 2, specB)}}, false, nil, nil, 2, []string{"a", "b"}, nil},
		{"diff removes b", &pb.DesiredState{BaseGeneration: 2, Generation: 3, Removed: []string{"b"}}, true, nil, nil, 3, []string{"a"}, nil},
		{"the same diff again", &pb.DesiredState{BaseGeneration: 2, Generation: 3, Removed: []string{"b"}}, false, nil, nil, 3, []string{"a"}, nil},
		{"an older diff", &pb.DesiredState{BaseGeneration: 1, Generation: 2, Assignments: []*pb.WorkloadAssignment{asg("b", 2, specB)}}, false, nil, nil, 3, []string{"a"}, nil},
		{"a gap", &pb.DesiredState{BaseGeneration: 4, Generation: 5, Assignments: []*pb.WorkloadAssignment{asg("c", 5, specB)}}, false, nil, ErrBaseMismatch, 3, []string{"a"}, nil},
		{"removing an unknown name", &pb.DesiredState{BaseGeneration: 3, Generation: 4, Removed: []string{"zz"}}, false, nil, nil, 4, []string{"a"}, nil},
		{"bad entries do not block good ones", &pb.DesiredState{BaseGeneration: 4, Generation: 8, Assignments: []*pb.WorkloadAssignment{
			asg("Bad_Name", 5, specA), asg("a", 6, `{"runtime":`), asg("c", 7, specB), asg("d", 8, `{"runtime":"exec","exec":{"command":"/d"},"extraField":1}`),
		}}, true, []string{"Bad_Name", "a"}, nil, 8, []string{"a", "c", "d"}, nil},
		{"a name twice", &pb.DesiredState{BaseGeneration: 8, Generation: 10, Assignments: []*pb.WorkloadAssignment{asg("e", 9, specA), asg("e", 10, specB)}}, true, []string{"e"}, nil, 10, []string{"a", "c", "d", "e"}, func(l *Local) string {
			if g := l.Assignments["e"].Generation; g != 9 {
				return "e not the first of the two"
			}
			return ""
		}},
		{"full replaces, a bad one keeps its old entry", &pb.DesiredState{Generation: 7, Full: true, Assignments: []*pb.WorkloadAssignment{asg("c", 7, specB), asg("a", 6, `[]`)}}, true, []string{"a"}, nil, 7, []string{"a", "c"}, nil},
	}
	var l Local
	for _, st := range steps {
		changed, refused, err := l.Apply(st.msg)
		var refusedNames []string
		for _, r := range refused {
			refusedNames = append(refusedNames, r.Name)
			if r.Err == nil {
				t.Errorf("%s: refusal of %s without an error", st.name, r.Name)
			}
		}
		if changed != st.wantChanged || !cmp.Equal(refusedNames, st.wantRefused) || !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
			t.Fatalf("%s: Apply = %v, %v, %v; want %v, %v, %v", st.name, changed, refusedNames, err, st.wantChanged, st.wantRefused, st.wantErr)
		}
		if l.Generation != st.wantGen || !cmp.Equal(l.Names(), st.wantNames) {
			t.Fatalf("%s: Local at %d with %v, want %d with %v", st.name, l.Generation, l.Names(), st.wantGen, st.wantNames)
		}
		if st.check != nil {
			if msg := st.check(&l); msg != "" {
				t.Fatalf("%s: %s", st.name, msg)
			}
		}
	}
	if a := l.Assignments["a"]; string(a.SpecJSON) != specA || a.Spec.Exec == nil || a.Spec.Exec.Command != "/a" {
		t.Errorf("a = %s (%+v), want the last valid spec kept", a.SpecJSON, a.Spec)
	}
}

func TestLocalJSON(t *testing.T) {
	var l Local
	if _, _, err := l.Apply(&pb.DesiredState{Generation: 4, Full: true, Assignments: []*pb.WorkloadAssignment{asg("a", 1, specA), asg("b", 4, specB)}}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var got Local
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(%s): %v", b, err)
	}
	if diff := cmp.Diff(l, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{`, `{"generation":1,"assignments":[{"name":"UP","generation":1,"spec":"e30="}]}`, `{"generation":1,"assignments":[{"name":"a","generation":1,"spec":"e30="},{"name":"a","generation":1,"spec":"e30="}]}`} {
		var l Local
		if err := json.Unmarshal([]byte(bad), &l); err == nil {
			t.Errorf("Unmarshal(%s) = nil error", bad)
		}
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{"a": true, "hello-exec": true, "": false, "-a": false, "A": false, "a/b": false, "..": false} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}
