package registry

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := store.Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !db.IsClosed() {
			db.Close()
		}
	})
	return db
}

func open(t *testing.T, db *badger.DB, clk clock.Clock) *Registry {
	t.Helper()
	r, err := Open(Config{DB: db, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stored reads node id's record from the store, bypassing memory.
func stored(t *testing.T, db *badger.DB, id string) (n Node, versions int) {
	t.Helper()
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.AllVersions = true
		it := txn.NewKeyIterator([]byte(keyPrefix+id), opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			versions++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	n, _ = r.Get(id)
	return n, versions
}

func TestUpdateGetList(t *testing.T) {
	clk := clock.NewFake(t0)
	r := open(t, openDB(t, t.TempDir()), clk)
	for _, id := range []string{"n-2", "n-1", "n-3"} {
		r.Update(id, func(n *Node) { n.Online = id != "n-3"; n.Labels = map[string]string{"id": id} })
	}
	if got, want := r.OnlineCount(), 2; got != want {
		t.Errorf("OnlineCount() = %d, want %d", got, want)
	}
	var ids []string
	for _, n := range r.List() {
		ids = append(ids, n.ID)
	}
	if diff := cmp.Diff([]string{"n-1", "n-2", "n-3"}, ids); diff != "" {
		t.Errorf("List() IDs (-want +got):\n%s", diff)
	}
	got, ok := r.Get("n-2")
	want := Node{ID: "n-2", Online: true, FirstSeen: t0, LastSeen: t0, Labels: map[string]string{"id": "n-2"}}
	if !ok {
		t.Fatalf("Get(n-2) found nothing")
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Node{})); diff != "" {
		t.Errorf("Get(n-2) (-want +got):\n%s", diff)
	}
	if _, ok := r.Get("nope"); ok {
		t.Errorf("Get(nope) = found, want not found")
	}

	r.Update("n-1", func(n *Node) { n.Online = false })
	r.Update("n-1", func(n *Node) { n.Online = false })
	if got, want := r.OnlineCount(), 1; got != want {
		t.Errorf("OnlineCount() after one offline twice = %d, want %d", got, want)
	}
	if got, want := r.MarkAllOffline("bridge_restart"), 1; got != want {
		t.Errorf("MarkAllOffline() = %d, want %d", got, want)
	}
	if n, _ := r.Get("n-2"); n.Online || n.OfflineReason != "bridge_restart" {
		t.Errorf("after MarkAllOffline, Get(n-2) = online %v reason %q, want offline bridge_restart", n.Online, n.OfflineReason)
	}
	if got := r.OnlineCount(); got != 0 {
		t.Errorf("OnlineCount() after MarkAllOffline = %d, want 0", got)
	}
}

func TestWriteBehindCoalescesAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	clk := clock.NewFake(t0)
	r := open(t, db, clk)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	for i := range 1000 {
		r.Update("busy", func(n *Node) {
			n.Online = true
			n.Counters.Messages++
			n.LastReport = &Report{CPUPermille: uint32(i)}
		})
	}
	if n, v := stored(t, db, "busy"); v != 0 {
		t.Fatalf("before a flush, store holds %d versions (%+v), want none", v, n)
	}
	// Run may not have started its ticker yet: advance until it flushes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		clk.Advance(DefaultFlushInterval)
		n, versions := stored(t, db, "busy")
		if versions > 0 {
			if versions != 1 || n.Counters.Messages != 1000 || n.LastReport.CPUPermille != 999 {
				t.Fatalf("after one flush: %d versions, messages %d, cpu %d; want 1 version of 1000 messages, cpu 999",
					versions, n.Counters.Messages, n.LastReport.CPUPermille)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no flush within 5s of the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Updates after the last tick are written by the final flush.
	r.Update("late", func(n *Node) { n.AgentVersion = "1.2.3" })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	r2 := open(t, db, clk)
	for _, id := range []string{"busy", "late"} {
		want, _ := r.Get(id)
		got, ok := r2.Get(id)
		if !ok {
			t.Errorf("after reopen Get(%q) found nothing", id)
			continue
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Node{})); diff != "" {
			t.Errorf("after reopen Get(%q) (-before +after):\n%s", id, diff)
		}
	}
	if got := r2.OnlineCount(); got != 1 {
		t.Errorf("after reopen OnlineCount() = %d, want 1", got)
	}
}

func TestFlushWritesManyNodesInOneBatch(t *testing.T) {
	db := openDB(t, t.TempDir())
	var flushes int
	r, err := Open(Config{DB: db, ObserveFlush: func(time.Duration) { flushes++ }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		r.Update(fmt.Sprintf("node-%04d", i), func(n *Node) { n.Online = true })
	}
	if err := r.Flush(); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if err := r.Flush(); err != nil { // nothing dirty: not observed
		t.Fatalf("second Flush() = %v", err)
	}
	if flushes != 1 {
		t.Errorf("flushes observed = %d, want 1", flushes)
	}
	r2 := open(t, db, clock.Real)
	if got := r2.Len(); got != 5000 {
		t.Errorf("reloaded Len() = %d, want 5000", got)
	}
}
