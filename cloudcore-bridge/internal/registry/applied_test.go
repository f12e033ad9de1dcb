package registry

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/internal/clock"
)

func TestAppliedSetSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	r := open(t, db, clock.NewFake(t0))
	r.Update("n1", func(n *Node) {
		n.ResetApplied("outbox-a")
		for _, seq := range []uint64{1, 2, 3, 7} {
			if !n.MarkApplied(seq) {
				t.Errorf("MarkApplied(%d) = false for a new seq", seq)
			}
		}
		n.Settle(10, 12)
	})
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := open(t, openDB(t, dir), clock.NewFake(t0))
	got, _ := r2.Get("n1")
	want := Applied{OutboxID: "outbox-a", Watermark: 3, Ranges: SeqRanges{{7, 7}, {10, 12}}}
	if diff := cmp.Diff(want, got.Applied); diff != "" {
		t.Errorf("applied after reopen (-want +got):\n%s", diff)
	}
	r2.Update("n1", func(n *Node) {
		tests := []struct {
			seq  uint64
			want bool
		}{{2, false}, {7, false}, {11, false}, {4, true}, {4, false}, {0, true}}
		for _, tt := range tests {
			if got := n.MarkApplied(tt.seq); got != tt.want {
				t.Errorf("after reopen MarkApplied(%d) = %v, want %v", tt.seq, got, tt.want)
			}
		}
	})
	if got, _ := r2.Get("n1"); got.Applied.Watermark != 4 {
		t.Errorf("watermark after adding 4 = %d, want 4", got.Applied.Watermark)
	}
}

func TestAppliedJSON(t *testing.T) {
	r := open(t, openDB(t, t.TempDir()), clock.NewFake(t0))
	r.Update("quiet", func(*Node) {})
	r.Update("busy", func(n *Node) {
		n.ResetApplied("ob-1")
		n.MarkApplied(1)
		n.MarkApplied(2)
		n.MarkApplied(5)
		n.Counters.Applied, n.Counters.Duplicates = 3, 1
	})
	tests := []struct {
		id   string
		want []string
	}{
		{"quiet", []string{`"applied":{"outboxId":"","watermark":0,"ranges":[]}`, `"applied":0,"duplicates":0`}},
		{"busy", []string{`"applied":{"outboxId":"ob-1","watermark":2,"ranges":[[5,5]]}`, `"applied":3,"duplicates":1`}},
	}
	for _, tt := range tests {
		n, _ := r.Get(tt.id)
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("json.Marshal(%s) = %s, want it to contain %s", tt.id, b, w)
			}
		}
	}
}

func TestAppliedSetIsBounded(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	r := open(t, db, clock.Real)
	const extra = 10
	r.Update("holes", func(n *Node) {
		// 2, 4, 6, ...: every one a range of its own.
		for i := range uint64(MaxAppliedRanges + extra) {
			n.MarkApplied(2*i + 2)
		}
	})
	n, _ := r.Get("holes")
	if got := len(n.Applied.Ranges); got != MaxAppliedRanges {
		t.Errorf("ranges kept = %d, want %d", got, MaxAppliedRanges)
	}
	if n.Applied.Forgotten != extra {
		t.Errorf("forgotten = %d, want %d", n.Applied.Forgotten, extra)
	}
	if last := n.Applied.Ranges[len(n.Applied.Ranges)-1]; last[1] != 2*MaxAppliedRanges {
		t.Errorf("highest range kept = %v, want the lowest %d ranges kept", last, MaxAppliedRanges)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r2 := open(t, openDB(t, dir), clock.Real)
	r2.Update("holes", func(n *Node) { n.MarkApplied(1_000_000) })
	if n, _ := r2.Get("holes"); n.Applied.Forgotten != extra+1 || len(n.Applied.Ranges) != MaxAppliedRanges {
		t.Errorf("after reopen and one more hole: forgotten %d, %d ranges; want %d and %d",
			n.Applied.Forgotten, len(n.Applied.Ranges), extra+1, MaxAppliedRanges)
	}
}

func TestDurableOnlyAfterTheWriteCommits(t *testing.T) {
	db := openDB(t, t.TempDir())
	var calls [][]Durable
	r, err := Open(Config{DB: db, Durable: func(ds []Durable) { calls = append(calls, ds) }})
	if err != nil {
		t.Fatal(err)
	}
	flush := func() error {
		t.Helper()
		calls = nil
		return r.Flush()
	}

	r.Update("n1", func(n *Node) { n.ResetApplied("a"); n.MarkApplied(1); n.MarkApplied(2); n.RequestWelcome() })
	r.Update("n2", func(n *Node) { n.Online = true }) // nothing owed
	if len(calls) != 0 {
		t.Fatalf("Durable called before any flush: %v", calls)
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	want := [][]Durable{{{Node: "n1", Applied: Applied{OutboxID: "a", Watermark: 2}, Ack: true, Welcome: true}}}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("Durable calls of the first flush (-want +got):\n%s", diff)
	}

	// A write that fails owes the ack to the next one that succeeds.
	bad := strings.Repeat("x", 70000) // over Badger's key size limit
	r.Update(bad, func(*Node) {})
	r.Update("n1", func(n *Node) { n.MarkApplied(3) })
	if err := flush(); err == nil {
		t.Fatal("Flush() with an oversized key = nil, want an error")
	}
	if len(calls) != 0 {
		t.Errorf("Durable called after a failed flush: %v", calls)
	}
	s := r.shard(bad)
	s.mu.Lock()
	delete(s.nodes, bad)
	delete(s.dirty, bad)
	s.mu.Unlock()
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	want = [][]Durable{{{Node: "n1", Applied: Applied{OutboxID: "a", Watermark: 3}, Ack: true}}}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("Durable calls after the failure cleared (-want +got):\n%s", diff)
	}

	// A duplicate is acknowledged again; nothing changed, nothing owed.
	r.Update("n1", func(n *Node) { n.MarkApplied(2) })
	r.Update("n2", func(n *Node) { n.Online = false })
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	want = [][]Durable{{{Node: "n1", Applied: Applied{OutboxID: "a", Watermark: 3}, Ack: true}}}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("Durable calls after a duplicate (-want +got):\n%s", diff)
	}
	r.Update("n2", func(n *Node) { n.Online = true })
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Errorf("Durable calls with nothing owed = %v, want none", calls)
	}
}
