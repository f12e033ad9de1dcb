package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func lines(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("line %03d", i))
	}
	return out
}

// writeLines appends "line NNN" lines through a held O_APPEND descriptor,
// as a workload does, rotating after each line like a periodic check.
func writeLines(t *testing.T, f *os.File, r Rotator, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := fmt.Fprintf(f, "line %03d\n", i); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRotateKeepsWriterAndTails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "output.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// "line 000\n" is 9 bytes: 10 lines fill 90 bytes, the rotation size.
	r := Rotator{Path: path, MaxBytes: 90, Files: 3}
	writeLines(t, f, r, 0, 34)

	for name, want := range map[string][]string{
		path + ".2": lines(10, 19),
		path + ".1": lines(20, 29),
		path:        lines(30, 34),
	} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", filepath.Base(name), diff)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists (err %v); Files 3 keeps two rotated files", path, err)
	}

	tests := []struct {
		name string
		n    int
		want []string
	}{
		{name: "within the live file", n: 3, want: lines(32, 34)},
		{name: "across rotated files", n: 12, want: lines(23, 34)},
		{name: "more than kept", n: 100, want: lines(10, 34)},
		{name: "all", n: 0, want: lines(10, 34)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Tail(tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Tail(%d) (-want +got):\n%s", tt.n, diff)
			}
		})
	}
}

func TestTailEdgeCases(t *testing.T) {
	dir := t.TempDir()
	r := Rotator{Path: filepath.Join(dir, "output.log"), MaxBytes: 1 << 20, Files: 3}
	got, err := r.Tail(10)
	if err != nil || len(got) != 0 {
		t.Fatalf("Tail of a missing log = %q, %v; want empty, nil", got, err)
	}
	long := strings.Repeat("x", MaxLine+100)
	if err := os.WriteFile(r.Path, []byte("a\n"+long+"\nno newline"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = r.Tail(0)
	if err != nil {
		t.Fatal(err)
	}
	// The last line has no newline yet: it is being written, and is left
	// out until it is whole.
	want := []string{"a", long[:MaxLine]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Tail(0) (-want +got):\n%s", diff)
	}
	f, err := os.OpenFile(r.Path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" now whole\n")
	f.Close()
	if got, _ := r.Tail(1); len(got) != 1 || got[0] != "no newline now whole" {
		t.Errorf("Tail(1) after the line was finished = %q", got)
	}
	if rotated, err := r.Rotate(); err != nil || rotated {
		t.Errorf("Rotate() of a small file = %v, %v; want false, nil", rotated, err)
	}
}

func TestRotateWithOneFileTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "output.log")
	if err := os.WriteFile(path, []byte(strings.Repeat("y\n", 50)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := Rotator{Path: path, MaxBytes: 10, Files: 1}
	if rotated, err := r.Rotate(); err != nil || !rotated {
		t.Fatalf("Rotate() = %v, %v; want true, nil", rotated, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("after Rotate: size %v, err %v; want 0", fi.Size(), err)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Errorf("Files 1 kept %s.1", path)
	}
}
