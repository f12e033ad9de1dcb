package desired

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// FuzzDiffApply drives a Set with any sequence of Put, Remove and Compact
// decoded from the input, then checks the protocol's promise: from every
// generation a node can hold (each one the Set went through, and some it
// never reached), applying Diff's messages in order brings a Local holding
// exactly that generation's set to the live set at Generation, each
// message fits the limit, and a message delivered twice changes nothing.
func FuzzDiffApply(f *testing.F) {
	f.Add([]byte{3, 0, 1, 0, 0, 2, 5, 2, 1, 0})
	f.Add([]byte{0, 0, 0, 200, 0, 1, 200, 0, 2, 200, 2, 1, 0, 3, 2, 0, 0, 1, 9})
	f.Add([]byte{9, 0, 0, 1, 2, 0, 0, 3, 3, 0, 0, 0, 2, 0, 0, 3, 9, 0, 1, 1, 1, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		maxBytes := 150 + int(data[0])*20
		data = data[1:]
		type entry struct {
			gen  uint64
			spec string
		}
		var s Set
		live := map[string]entry{}
		snaps := []map[string]entry{{}} // snaps[g]: the live set at generation g
		for len(data) >= 3 && len(snaps) < 64 {
			op, name, arg := data[0]%4, fmt.Sprintf("w%d", data[1]%7), data[2]
			data = data[3:]
			switch op {
			case 0, 1:
				spec := fmt.Sprintf(`{"runtime":"exec","exec":{"command":"/bin/v%d","args":[%q]}}`, arg%5, strings.Repeat("p", int(arg)))
				old, ok := live[name]
				want := !ok || old.spec != spec
				if got := s.Put(name, []byte(spec)); got != want {
					t.Fatalf("Put(%s) = %v, want %v", name, got, want)
				}
				if want {
					live[name] = entry{s.Generation, spec}
				}
			case 2:
				_, ok := live[name]
				if got := s.Remove(name); got != ok {
					t.Fatalf("Remove(%s) = %v, want %v", name, got, ok)
				}
				delete(live, name)
			case 3:
				s.Compact(uint64(arg) % (s.Generation + 1))
			}
			if uint64(len(snaps)) <= s.Generation {
				snaps = append(snaps, maps.Clone(live))
			}
		}
		if uint64(len(snaps)) != s.Generation+1 {
			t.Fatalf("%d snapshots for generation %d", len(snaps), s.Generation)
		}
		for from := uint64(0); from <= s.Generation+2; from++ {
			l := Local{Generation: from, Assignments: map[string]Assignment{}}
			if from <= s.Generation {
				for name, e := range snaps[from] {
					l.Assignments[name] = Assignment{Name: name, Generation: e.gen, SpecJSON: []byte(e.spec)}
				}
			} else {
				l.Assignments["stale"] = Assignment{Name: "stale", Generation: from, SpecJSON: []byte(`{}`)}
			}
			msgs := s.Diff(from, maxBytes)
			if (from == s.Generation) != (msgs == nil) {
				t.Fatalf("Diff(%d) at generation %d = %d messages", from, s.Generation, len(msgs))
			}
			for i, m := range msgs {
				n := len(m.GetAssignments()) + len(m.GetRemoved())
				if size := proto.Size(&pb.Envelope{Body: &pb.Envelope_Desired{Desired: m}}); size > maxBytes && n > 1 {
					t.Fatalf("Diff(%d)[%d]: %d changes in %d bytes, limit %d", from, i, n, size, maxBytes)
				}
				if _, _, err := l.Apply(m); err != nil {
					t.Fatalf("Diff(%d)[%d] (%v): Apply: %v", from, i, m, err)
				}
				if changed, _, err := l.Apply(m); changed || err != nil {
					t.Fatalf("Diff(%d)[%d] applied twice: changed %v, error %v", from, i, changed, err)
				}
			}
			if l.Generation != s.Generation {
				t.Fatalf("Diff(%d): Local at %d, want %d", from, l.Generation, s.Generation)
			}
			if len(l.Assignments) != len(live) {
				t.Fatalf("Diff(%d): Local holds %v, want %d live", from, l.Names(), len(live))
			}
			for name, e := range live {
				a, ok := l.Assignments[name]
				if !ok || a.Generation != e.gen || string(a.SpecJSON) != e.spec {
					t.Fatalf("Diff(%d): Local[%s] = %d %s, want %d %s", from, name, a.Generation, a.SpecJSON, e.gen, e.spec)
				}
			}
		}
	})
}
