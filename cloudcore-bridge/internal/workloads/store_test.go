package workloads

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/internal/clock"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/protocol/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := store.Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openStore(t *testing.T, db *badger.DB, limit int) *Store {
	t.Helper()
	s, err := Open(Config{DB: db, Clock: clock.NewFake(t0), AuditLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func workload(name string, mut ...func(*spec.Workload)) Workload {
	w := spec.Workload{
		APIVersion: spec.APIVersion, Kind: spec.KindWorkload, Metadata: spec.Metadata{Name: name},
		Spec: spec.WorkloadSpec{
			Runtime:   spec.RuntimeExec,
			Exec:      &spec.ExecSpec{Command: "/bin/sleep", Args: []string{"3600"}},
			Resources: spec.Resources{CPU: "100m", Memory: "16Mi"},
			Placement: spec.Placement{Replicas: 1},
		},
	}
	for _, m := range mut {
		m(&w)
	}
	w.Default()
	return Workload{Spec: w, Revision: "rev-" + name, CreatedAt: t0, UpdatedAt: t0}
}

// populate writes a workload, a copy on node n1 and n1's set.
func populate(t *testing.T, s *Store) {
	t.Helper()
	changed, err := s.Update(func(tx *Tx) error {
		w := workload("web")
		tx.PutWorkload(w)
		set, err := tx.Set("n1")
		if err != nil {
			return err
		}
		set.Put("web", []byte(`{"runtime":"exec"}`))
		tx.PutCopy(Copy{ID: "web-0-a", Workload: "web", Revision: w.Revision, Site: "n1", Kind: KindEdge, Node: "n1",
			State: CopyPending, PlacedAt: t0, AssignedGeneration: set.Generation, Generation: set.Generation,
			Resources: scheduler.Resources{MilliCPU: 100, Memory: 16 << 20}})
		tx.Audit(apiv1.PlacementRecord{At: t0, Workload: "web", Site: "n1", Action: "place", Cause: "pending"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"n1"}, changed); diff != "" {
		t.Fatalf("Update changed nodes (-want +got):\n%s", diff)
	}
}

func status(name string, gen uint64, state pb.WorkloadStatus_State) *pb.WorkloadStatus {
	return &pb.WorkloadStatus{Name: name, Generation: gen, State: state, StartedAtMs: t0.UnixMilli()}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	s := openStore(t, db, 0)
	populate(t, s)
	if _, err := s.ApplyStatus("n1", "ob", 7, status("web", 1, pb.WorkloadStatus_STATE_RUNNING), t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acknowledge("n1", 1); err != nil {
		t.Fatal(err)
	}
	wantW, wantC, wantS, wantA := s.Workloads(), s.Copies(""), s.Statuses(""), s.Audit("")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	defer db.Close()
	r := openStore(t, db, 0)
	if diff := cmp.Diff(wantW, r.Workloads()); diff != "" {
		t.Errorf("workloads after reopen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantC, r.Copies("")); diff != "" {
		t.Errorf("copies after reopen (-want +got):\n%s", diff)
	}
	if r.Copies("")[0].State != CopyRunning {
		t.Errorf("copy state = %q, want running", r.Copies("")[0].State)
	}
	if diff := cmp.Diff(wantS, r.Statuses("")); diff != "" {
		t.Errorf("statuses after reopen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantA, r.Audit("web")); diff != "" || len(wantA) != 1 {
		t.Errorf("audit after reopen (-want +got):\n%s", diff)
	}
	gen, acked, ok := r.Desired("n1")
	if !ok || gen != 1 || acked != 1 {
		t.Errorf("Desired(n1) = %d, %d, %v; want 1, 1, true", gen, acked, ok)
	}
	if got := r.DesiredNames("n1"); !cmp.Equal(got, []string{"web"}) {
		t.Errorf("DesiredNames(n1) = %v, want [web]", got)
	}
}

func TestFailedWriteChangesNothing(t *testing.T) {
	db := openDB(t, t.TempDir())
	s := openStore(t, db, 0)
	populate(t, s)
	db.Close()
	_, err := s.Update(func(tx *Tx) error {
		tx.DeleteWorkload("web")
		set, err := tx.Set("n1")
		if err != nil {
			return err
		}
		set.Remove("web")
		return nil
	})
	if err == nil {
		t.Fatal("Update on a closed database succeeded")
	}
	if _, ok := s.Workload("web"); !ok {
		t.Error("workload deleted from memory although the write failed")
	}
	if gen, _, _ := s.Desired("n1"); gen != 1 {
		t.Errorf("set generation = %d after a failed write, want 1", gen)
	}
}

func TestStatusesApplyInSequenceOrder(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, 0)
	populate(t, s)
	apply := func(seq uint64, state pb.WorkloadStatus_State) StatusOutcome {
		t.Helper()
		out, err := s.ApplyStatus("n1", "ob", seq, status("web", 1, state), t0)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := apply(5, pb.WorkloadStatus_STATE_RUNNING); !out.Changed || out.Copy != "web-0-a" {
		t.Errorf("running status: %+v, want the copy changed", out)
	}
	// An older status arriving late (a resend after a reconnect) is stale.
	if out := apply(3, pb.WorkloadStatus_STATE_STARTING); !out.Stale {
		t.Errorf("older status: %+v, want stale", out)
	}
	if st, _ := s.Status("web", "n1"); st.State != StateRunning || st.Seq != 5 {
		t.Errorf("status = %s seq %d, want running seq 5", st.State, st.Seq)
	}
	// A new outbox numbers afresh.
	out, err := s.ApplyStatus("n1", "ob2", 1, status("web", 1, pb.WorkloadStatus_STATE_FAILED), t0)
	if err != nil || out.Stale || !out.Changed {
		t.Errorf("status of a new outbox: %+v, %v; want applied", out, err)
	}
	if c := s.Copies("web")[0]; c.State != CopyFailed {
		t.Errorf("copy state = %q, want failed", c.State)
	}
}

func TestOrphanStatus(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, 0)
	populate(t, s)
	out, err := s.ApplyStatus("n2", "ob", 1, status("web", 4, pb.WorkloadStatus_STATE_RUNNING), t0)
	if err != nil || !out.Orphan {
		t.Fatalf("status from a node without the workload: %+v, %v; want an orphan", out, err)
	}
	if st, ok := s.Status("web", "n2"); !ok || !st.Orphan {
		t.Errorf("orphan status not recorded: %+v", st)
	}
	// The node stops it: nothing to keep.
	out, err = s.ApplyStatus("n2", "ob", 2, status("web", 4, pb.WorkloadStatus_STATE_REMOVED), t0)
	if err != nil || out.Orphan {
		t.Fatalf("removed status: %+v, %v; want no orphan", out, err)
	}
	if _, ok := s.Status("web", "n2"); ok {
		t.Error("status of a removed orphan still held")
	}
}

func TestCapacityErrorOfACloudCopy(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, 0)
	_, err := s.Update(func(tx *Tx) error {
		tx.PutWorkload(workload("batch"))
		tx.PutCopy(Copy{ID: "batch-0-x", Workload: "batch", Site: "aws-eu-central-1", Kind: KindCloud, Node: "gw", State: CopyPending, AssignedGeneration: 3})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := status("batch", 3, pb.WorkloadStatus_STATE_FAILED)
	st.LastError = "RunTask: Insufficient capacity in eu-central-1a"
	out, err := s.ApplyStatus("gw", "ob", 1, st, t0)
	if err != nil || !out.CapacityError || out.Site != "aws-eu-central-1" {
		t.Errorf("ApplyStatus(capacity failure) = %+v, %v; want a capacity error in aws-eu-central-1", out, err)
	}
}

func TestStatusPicksTheCopyOfItsGeneration(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, 0)
	// An old copy stopping and its replacement on the same node.
	_, err := s.Update(func(tx *Tx) error {
		tx.PutWorkload(workload("web"))
		tx.PutCopy(Copy{ID: "old", Workload: "web", Site: "n1", Kind: KindEdge, Node: "n1", State: CopyRunning, AssignedGeneration: 2, Stopping: true})
		tx.PutCopy(Copy{ID: "new", Workload: "web", Site: "n1", Kind: KindEdge, Node: "n1", State: CopyPending, AssignedGeneration: 5})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seq  uint64
		gen  uint64
		want string
	}{{1, 2, "old"}, {2, 4, "old"}, {3, 5, "new"}, {4, 9, "new"}} {
		out, err := s.ApplyStatus("n1", "ob", tc.seq, status("web", tc.gen, pb.WorkloadStatus_STATE_RUNNING), t0)
		if err != nil || out.Copy != tc.want {
			t.Errorf("status of generation %d is about %q (%v), want %q", tc.gen, out.Copy, err, tc.want)
		}
	}
}

func TestAcknowledgeCompacts(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, 0)
	populate(t, s)
	if _, err := s.Update(func(tx *Tx) error {
		set, err := tx.Set("n1")
		if err != nil {
			return err
		}
		set.Remove("web") // generation 2, a tombstone
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if msgs := s.Diff("n1", 1, 1<<16); len(msgs) != 1 || len(msgs[0].GetRemoved()) != 1 {
		t.Fatalf("Diff(1) = %v, want the removal", msgs)
	}
	cur, known, err := s.Acknowledge("n1", 2)
	if err != nil || !known || cur != 2 {
		t.Fatalf("Acknowledge = %d, %v, %v", cur, known, err)
	}
	// The tombstone is gone: a node still at 1 gets the full set.
	if msgs := s.Diff("n1", 1, 1<<16); len(msgs) != 1 || !msgs[0].GetFull() {
		t.Errorf("Diff(1) after compaction = %v, want a full set", msgs)
	}
	// A generation the store never reached is not recorded.
	if _, _, err := s.Acknowledge("n1", 40); err != nil {
		t.Fatal(err)
	}
	if _, acked, _ := s.Desired("n1"); acked != 0 {
		t.Errorf("acked = %d after a generation from the future, want 0", acked)
	}
	if _, known, _ := s.Acknowledge("nobody", 3); known {
		t.Error("Acknowledge of a node without a set reported it known")
	}
}

func TestAuditIsBounded(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	s := openStore(t, db, 5)
	for i := range 12 {
		if _, err := s.Update(func(tx *Tx) error {
			tx.Audit(apiv1.PlacementRecord{Workload: "w", Slot: i, Action: "place"})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	slots := func(rs []apiv1.PlacementRecord) string {
		out := ""
		for _, r := range rs {
			out += fmt.Sprint(r.Slot, " ")
		}
		return out
	}
	if got, want := slots(s.Audit("")), "11 10 9 8 7 "; got != want {
		t.Errorf("audit = %s, want %s", got, want)
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	r := openStore(t, db, 3) // a smaller limit trims on open
	if got, want := slots(r.Audit("w")), "11 10 9 "; got != want {
		t.Errorf("audit after reopen = %s, want %s", got, want)
	}
	if _, err := r.Update(func(tx *Tx) error {
		tx.Audit(apiv1.PlacementRecord{Workload: "w", Slot: 12})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := slots(r.Audit("w")), "12 11 10 "; got != want {
		t.Errorf("audit = %s, want %s", got, want)
	}
}

func TestStatusOfAnUnacknowledgedRemovalIsNoOrphan(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, 0)
	populate(t, s)
	if _, _, err := s.Acknowledge("n1", 1); err != nil {
		t.Fatal(err)
	}
	// The copy is gone and the removal is on its way to the node.
	if _, err := s.Update(func(tx *Tx) error {
		tx.DeleteCopy("web-0-a")
		set, err := tx.Set("n1")
		if err != nil {
			return err
		}
		set.Remove("web")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, err := s.ApplyStatus("n1", "ob", 1, status("web", 1, pb.WorkloadStatus_STATE_RUNNING), t0)
	if err != nil || out.Orphan {
		t.Errorf("status before the removal is acknowledged: %+v, %v; want no orphan", out, err)
	}
	if _, _, err := s.Acknowledge("n1", 2); err != nil {
		t.Fatal(err)
	}
	out, err = s.ApplyStatus("n1", "ob", 2, status("web", 1, pb.WorkloadStatus_STATE_RUNNING), t0)
	if err != nil || !out.Orphan {
		t.Errorf("status after the removal was acknowledged: %+v, %v; want an orphan", out, err)
	}
}
