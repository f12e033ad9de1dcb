package badgerq

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

func openKVTest(t *testing.T, dir string) *Queue {
	t.Helper()
	q, err := Open(testOptions(dir), outboxtest.Config(t, clock.NewFake(outboxtest.Start)))
	if err != nil {
		t.Fatalf("Open(%s) error = %v", dir, err)
	}
	return q
}

func kvContents(t *testing.T, kv *KV, prefix string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := kv.Iterate(prefix, func(k string, v []byte) (bool, error) {
		got[k] = string(v)
		return true, nil
	})
	if err != nil {
		t.Fatalf("Iterate(%q) error = %v", prefix, err)
	}
	return got
}

func TestKVSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	q := openKVTest(t, dir)
	kv := q.Local()
	if _, err := kv.Get("desired"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(desired) on a new database error = %v, want ErrNotFound", err)
	}
	for k, v := range map[string]string{"desired": "state-1", "a/1": "x", "a/2": "y", "b": "z"} {
		if err := kv.Set(k, []byte(v)); err != nil {
			t.Fatalf("Set(%s) error = %v", k, err)
		}
	}
	if err := kv.Set("desired", []byte("state-2")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete("never-set"); err != nil {
		t.Errorf("Delete(never-set) error = %v, want nil", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get("desired"); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Get after Close error = %v, want outbox.ErrClosed", err)
	}
	if err := kv.Set("desired", nil); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Set after Close error = %v, want outbox.ErrClosed", err)
	}

	q = openKVTest(t, dir)
	defer q.Close()
	kv = q.Local()
	v, err := kv.Get("desired")
	if err != nil || string(v) != "state-2" {
		t.Errorf("Get(desired) after reopen = %q, %v; want state-2", v, err)
	}
	if got, want := kvContents(t, kv, ""), map[string]string{"desired": "state-2", "a/1": "x", "a/2": "y"}; !cmp.Equal(got, want) {
		t.Errorf("Iterate(\"\") = %v, want %v", got, want)
	}
	if got, want := kvContents(t, kv, "a/"), map[string]string{"a/1": "x", "a/2": "y"}; !cmp.Equal(got, want) {
		t.Errorf("Iterate(a/) = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err = kv.Iterate("", func(string, []byte) (bool, error) { n++; return true, stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Iterate with a failing fn = %v after %d calls, want stop after 1", err, n)
	}
}

// TestKVIsolatedFromQueue checks that the local area and the queue's
// records and metadata do not see each other: queue state, sequence
// numbers and pending items are unchanged by local writes, and the local
// area lists only its own keys, even ones that spell queue keys.
func TestKVIsolatedFromQueue(t *testing.T) {
	dir := t.TempDir()
	q := openKVTest(t, dir)
	ctx := context.Background()
	for i := range 5 {
		if _, err := q.Append(ctx, outboxtest.Event(outboxtest.Start, fmt.Sprintf("e%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	before := q.State()
	kv := q.Local()
	// Keys that would collide with queue keys if the prefix were missing.
	for _, k := range []string{"m/next", "m/id", "q\x01\x00\x00\x00\x00\x00\x00\x00\x01", "desired"} {
		if err := kv.Set(k, []byte("local")); err != nil {
			t.Fatalf("Set(%q) error = %v", k, err)
		}
	}
	after := q.State()
	if before.NextSeq != after.NextSeq || before.FirstSeq != after.FirstSeq || before.LastSeq != after.LastSeq || before.ID != after.ID ||
		before.Classes[outbox.Event].Count != after.Classes[outbox.Event].Count || before.Classes[outbox.Event].Bytes != after.Classes[outbox.Event].Bytes {
		t.Errorf("queue state changed by local writes: %+v -> %+v", before, after)
	}
	items, _, err := q.Pending(ctx, outbox.Cursor{}, 100, 1<<20)
	if err != nil || len(items) != 5 {
		t.Fatalf("Pending() = %d items, %v; want 5", len(items), err)
	}
	if got := kvContents(t, kv, ""); len(got) != 4 {
		t.Errorf("Iterate(\"\") = %v, want the 4 local keys only", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openKVTest(t, dir)
	defer q.Close()
	st := q.State()
	if st.NextSeq != before.NextSeq || st.ID != before.ID || st.LastSeq != before.LastSeq {
		t.Errorf("after reopen: next %d id %q last %d, want %d %q %d", st.NextSeq, st.ID, st.LastSeq, before.NextSeq, before.ID, before.LastSeq)
	}
	if seq, err := q.Append(ctx, outboxtest.Event(outboxtest.Start, "after", false)); err != nil || seq != before.NextSeq {
		t.Errorf("Append after reopen = %d, %v; want %d", seq, err, before.NextSeq)
	}
	if v, err := q.Local().Get("m/next"); err != nil || string(v) != "local" {
		t.Errorf("Get(m/next) = %q, %v; want the local value", v, err)
	}
}
