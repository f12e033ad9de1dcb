package desired

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func execSpec(cmd string) []byte {
	return []byte(fmt.Sprintf(`{"runtime":"exec","exec":{"command":%q}}`, cmd))
}

func TestSetPutRemove(t *testing.T) {
	var s Set
	steps := []struct {
		name    string
		op      func() bool
		want    bool
		wantGen uint64
	}{
		{"put new", func() bool { return s.Put("a", execSpec("/a")) }, true, 1},
		{"put same", func() bool { return s.Put("a", execSpec("/a")) }, false, 1},
		{"put changed", func() bool { return s.Put("a", execSpec("/a2")) }, true, 2},
		{"put second", func() bool { return s.Put("b", execSpec("/b")) }, true, 3},
		{"remove", func() bool { return s.Remove("a") }, true, 4},
		{"remove again", func() bool { return s.Remove("a") }, false, 4},
		{"remove unknown", func() bool { return s.Remove("zz") }, false, 4},
		{"put removed back", func() bool { return s.Put("a", execSpec("/a2")) }, true, 5},
	}
	for _, st := range steps {
		if got := st.op(); got != st.want || s.Generation != st.wantGen {
			t.Fatalf("%s = %v at generation %d, want %v at %d", st.name, got, s.Generation, st.want, st.wantGen)
		}
	}
	if got, want := s.Names(), []string{"a", "b"}; !cmp.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	spec, gen, ok := s.Get("a")
	if !ok || gen != 5 || string(spec) != string(execSpec("/a2")) {
		t.Errorf("Get(a) = %s, %d, %v, want /a2 spec at 5", spec, gen, ok)
	}
	if _, _, ok := s.Get("zz"); ok {
		t.Errorf("Get(zz) found an unknown name")
	}
}

func TestSetPutCopiesSpec(t *testing.T) {
	var s Set
	b := execSpec("/a")
	s.Put("a", b)
	b[0] = 'X'
	if got, _, _ := s.Get("a"); got[0] != '{' {
		t.Fatalf("Get(a) = %s: the Set kept the caller's slice", got)
	}
}

func TestDiff(t *testing.T) {
	var s Set
	s.Put("a", execSpec("/a")) // 1
	s.Put("b", execSpec("/b")) // 2
	s.Put("c", execSpec("/c")) // 3
	s.Remove("b")              // 4
	s.Put("a", execSpec("/A")) // 5
	asg := func(name string, gen uint64, cmd string) *pb.WorkloadAssignment {
		return &pb.WorkloadAssignment{Name: name, Generation: gen, SpecJson: execSpec(cmd)}
	}
	tests := []struct {
		name string
		from uint64
		want []*pb.DesiredState
	}{
		{"up to date", 5, nil},
		{"from 0 is full", 0, []*pb.DesiredState{{Generation: 5, Full: true, Assignments: []*pb.WorkloadAssignment{asg("c", 3, "/c"), asg("a", 5, "/A")}}}},
		{"from 3", 3, []*pb.DesiredState{{BaseGeneration: 3, Generation: 5, Removed: []string{"b"}, Assignments: []*pb.WorkloadAssignment{asg("a", 5, "/A")}}}},
		{"from 1", 1, []*pb.DesiredState{{BaseGeneration: 1, Generation: 5, Removed: []string{"b"}, Assignments: []*pb.WorkloadAssignment{asg("c", 3, "/c"), asg("a", 5, "/A")}}}},
		{"from 4", 4, []*pb.DesiredState{{BaseGeneration: 4, Generation: 5, Assignments: []*pb.WorkloadAssignment{asg("a", 5, "/A")}}}},
		{"from the future is full", 9, []*pb.DesiredState{{Generation: 5, Full: true, Assignments: []*pb.WorkloadAssignment{asg("c", 3, "/c"), asg("a", 5, "/A")}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Diff(tc.from, protocol.MaxPayload-Headroom)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Diff(%d) mismatch (-want +got):\n%s", tc.from, diff)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	var s Set
	s.Put("a", execSpec("/a")) // 1
	s.Put("b", execSpec("/b")) // 2
	s.Remove("a")              // 3
	s.Put("c", execSpec("/c")) // 4
	s.Remove("c")              // 5
	s.Compact(4)
	if s.Floor() != 3 {
		t.Fatalf("Floor() after Compact(4) = %d, want 3", s.Floor())
	}
	if got := s.Diff(2, protocol.MaxPayload); len(got) != 1 || !got[0].GetFull() {
		t.Errorf("Diff(2) below the floor = %v, want one full message", got)
	}
	got := s.Diff(3, protocol.MaxPayload)
	if len(got) != 1 || got[0].GetFull() || !cmp.Equal(got[0].GetRemoved(), []string{"c"}) {
		t.Errorf("Diff(3) at the floor = %v, want a diff removing c", got)
	}
	s.Compact(100) // beyond the generation: clamps
	if s.Floor() != 5 || s.Diff(5, protocol.MaxPayload) != nil {
		t.Errorf("after Compact(100): floor %d, Diff(5) = %v; want 5, nil", s.Floor(), s.Diff(5, protocol.MaxPayload))
	}
}

// TestDiffSplits checks that a large diff is split into chained messages
// that each fit the limit once wrapped in a real envelope.
func TestDiffSplits(t *testing.T) {
	var s Set
	pad := strings.Repeat("x", 9000)
	for i := range 60 {
		s.Put(fmt.Sprintf("w%02d", i), execSpec("/bin/"+pad))
	}
	for i := range 10 {
		s.Remove(fmt.Sprintf("w%02d", i*3))
	}
	const limit = protocol.MaxPayload - Headroom
	for _, from := range []uint64{0, 1, 30, 65} {
		msgs := s.Diff(from, limit)
		if from < 40 && len(msgs) < 2 {
			t.Fatalf("Diff(%d) = %d messages, want a split", from, len(msgs))
		}
		base := from
		for i, m := range msgs {
			if i == 0 && m.GetFull() != (from == 0) {
				t.Errorf("Diff(%d)[0].full = %v", from, m.GetFull())
			}
			if i > 0 && (m.GetFull() || m.GetBaseGeneration() != base) {
				t.Errorf("Diff(%d)[%d]: base %d full %v, want base %d, not full", from, i, m.GetBaseGeneration(), m.GetFull(), base)
			}
			base = m.GetGeneration()
			env := &pb.Envelope{
				NodeId: strings.Repeat("n", protocol.MaxNodeIDLength), BootEpoch: 1 << 62, Seq: 1 << 62,
				SentAtMs: 1 << 62, Capability: protocol.CapabilityVersion,
				Body: &pb.Envelope_Desired{Desired: m},
			}
			b, err := protocol.Marshal(env)
			if err != nil {
				t.Fatalf("Diff(%d)[%d]: %v", from, i, err)
			}
			bare := proto.Size(&pb.Envelope{Body: &pb.Envelope_Desired{Desired: m}})
			if bare > limit {
				t.Errorf("Diff(%d)[%d] is %d bytes, limit %d", from, i, bare, limit)
			}
			if len(b) > protocol.MaxPayload {
				t.Errorf("Diff(%d)[%d] envelope is %d bytes", from, i, len(b))
			}
		}
		if base != s.Generation {
			t.Errorf("Diff(%d) ends at %d, want %d", from, base, s.Generation)
		}
		var l Local
		if from != 0 {
			l = localAt(t, &s, from)
		}
		for i, m := range msgs {
			if _, _, err := l.Apply(m); err != nil {
				t.Fatalf("Apply(Diff(%d)[%d]): %v", from, i, err)
			}
		}
		checkLive(t, &l, &s)
	}
}

// localAt builds a Local at generation from holding what s holds; only
// the assignments that changed at or before from are correct, the rest is
// what the diff must fix.
func localAt(t *testing.T, s *Set, from uint64) Local {
	t.Helper()
	l := Local{Generation: from, Assignments: map[string]Assignment{}}
	for name, it := range s.items {
		if it.gen <= from && !it.removed {
			l.Assignments[name] = Assignment{Name: name, Generation: it.gen, SpecJSON: it.spec}
		}
	}
	return l
}

func checkLive(t *testing.T, l *Local, s *Set) {
	t.Helper()
	if l.Generation != s.Generation {
		t.Fatalf("Local generation %d, want %d", l.Generation, s.Generation)
	}
	if got, want := l.Names(), s.Names(); !cmp.Equal(got, want) {
		t.Fatalf("Local names %v, want %v", got, want)
	}
	for _, name := range s.Names() {
		spec, gen, _ := s.Get(name)
		a := l.Assignments[name]
		if a.Generation != gen || string(a.SpecJSON) != string(spec) {
			t.Fatalf("Local[%s] = gen %d %s, want gen %d %s", name, a.Generation, a.SpecJSON, gen, spec)
		}
	}
}

func TestSetJSON(t *testing.T) {
	var s Set
	s.Put("a", execSpec("/a"))
	s.Put("b", []byte("not json at all"))
	s.Remove("a")
	s.Put("c", nil)
	s.Remove("c")
	s.Compact(4)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got Set
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(%s): %v", b, err)
	}
	if diff := cmp.Diff(s, got, cmp.AllowUnexported(Set{}, item{})); diff != "" {
		t.Errorf("JSON round trip mismatch (-want +got):\n%s", diff)
	}
	// Through a pointer too (a Set inside a stored struct).
	b2, _ := json.Marshal(&s)
	if string(b2) != string(b) {
		t.Errorf("Marshal(&s) = %s, want %s", b2, b)
	}
}

func TestSetUnmarshalRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not json", `{`},
		{"floor above generation", `{"generation":1,"floor":2}`},
		{"item above generation", `{"generation":1,"items":{"a":{"generation":2}}}`},
		{"item at 0", `{"generation":1,"items":{"a":{"generation":0}}}`},
		{"two at one generation", `{"generation":2,"items":{"a":{"generation":2},"b":{"generation":2}}}`},
	}
	for _, tc := range tests {
		var s Set
		if err := json.Unmarshal([]byte(tc.in), &s); err == nil {
			t.Errorf("%s: Unmarshal(%s) = nil error", tc.name, tc.in)
		}
	}
}
