package controller

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler/catalog"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/internal/clock"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/protocol/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeFleet is the registry's contents, changed by the test.
type fakeFleet struct {
	mu    sync.Mutex
	nodes map[string]registry.Node
}

func (f *fakeFleet) List() []registry.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]registry.Node, 0, len(f.nodes))
	for _, n := range f.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b registry.Node) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (f *fakeFleet) Get(id string) (registry.Node, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[id]
	return n, ok
}

func (f *fakeFleet) put(n registry.Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes == nil {
		f.nodes = map[string]registry.Node{}
	}
	f.nodes[n.ID] = n
}

// edge is an online edge node with 4 cores and 8 GiB.
func edge(id string, labels ...string) registry.Node {
	n := registry.Node{ID: id, Online: true, FirstSeen: t0, LastSeen: t0,
		Facts: registry.Facts{CPUCores: 4, MemTotalKiB: 8 << 20}}
	if len(labels) > 0 {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			n.Labels[labels[i]] = labels[i+1]
		}
	}
	return n
}

// sender records the nodes whose sets changed.
type sender struct {
	mu    sync.Mutex
	nodes []string
}

func (s *sender) Changed(nodes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = append(s.nodes, nodes...)
}

type fixture struct {
	c     *Controller
	st    *workloads.Store
	fleet *fakeFleet
	clk   *clock.Fake
	sent  *sender
	seq   uint64
}

func newFixture(t *testing.T, cat *catalog.Catalog, nodes ...registry.Node) *fixture {
	t.Helper()
	db, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{fleet: &fakeFleet{}, clk: clock.NewFake(t0), sent: &sender{}}
	for _, n := range nodes {
		f.fleet.put(n)
	}
	f.st, err = workloads.Open(workloads.Config{DB: db, Clock: f.clk})
	if err != nil {
		t.Fatal(err)
	}
	f.c, err = New(Config{Store: f.st, Nodes: f.fleet, Catalog: cat, Sender: f.sent, Clock: f.clk})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// apply parses and applies a workload document.
func (f *fixture) apply(t *testing.T, doc string) {
	t.Helper()
	w, err := spec.ParseWorkload([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.c.Apply(w); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) pass(t *testing.T) {
	t.Helper()
	if err := f.c.Pass(); err != nil {
		t.Fatalf("Pass: %v", err)
	}
}

// active returns the nodes of workload's active copies, sorted.
func (f *fixture) active(workload string) []string {
	var out []string
	for _, cp := range f.st.Copies(workload) {
		if !cp.Stopping {
			out = append(out, cp.Node)
		}
	}
	slices.Sort(out)
	return out
}

// stopping returns the nodes of workload's stopping copies, sorted.
func (f *fixture) stopping(workload string) []string {
	var out []string
	for _, cp := range f.st.Copies(workload) {
		if cp.Stopping {
			out = append(out, cp.Node)
		}
	}
	slices.Sort(out)
	return out
}

// ack makes node acknowledge its set's generation, as its agent would.
func (f *fixture) ack(t *testing.T, node string) {
	t.Helper()
	gen, _, _ := f.st.Desired(node)
	if _, _, err := f.st.Acknowledge(node, gen); err != nil {
		t.Fatal(err)
	}
}

// report makes node report workload in state, about its current
// assignment.
func (f *fixture) report(t *testing.T, node, workload string, state pb.WorkloadStatus_State) {
	t.Helper()
	f.seq++
	gen, _, _ := f.st.Desired(node)
	st := &pb.WorkloadStatus{Name: workload, Generation: gen, State: state, StartedAtMs: f.clk.Now().UnixMilli()}
	if _, err := f.st.ApplyStatus(node, "ob-"+node, f.seq, st, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
}

// setOffline marks node disconnected as of now.
func (f *fixture) setOffline(id string) {
	n, _ := f.fleet.Get(id)
	n.Online, n.OfflineReason, n.LastSeen = false, "connection_lost", f.clk.Now()
	f.fleet.put(n)
}

func (f *fixture) setOnline(id string) {
	n, _ := f.fleet.Get(id)
	n.Online, n.OfflineReason, n.LastSeen = true, "", f.clk.Now()
	f.fleet.put(n)
}

const catalogDoc = `apiVersion: skyedge.io/v1alpha1
kind: CloudCatalog
regions:
  - id: aws-eu-central-1
    provider: aws
    region: eu-central-1
    jurisdiction: DE
    location: {lat: 50.11, lon: 8.68}
    prices: {cpuHour: 0.04, gbHour: 0.005, egressGB: 0.09}
    capacity: {cpu: "100", memory: 400Gi}
  - id: gcp-europe-west3
    provider: gcp
    region: europe-west3
    jurisdiction: DE
    location: {lat: 50.11, lon: 8.68}
    prices: {cpuHour: 0.06, gbHour: 0.006, egressGB: 0.12}
    capacity: {cpu: "100", memory: 400Gi}
`

func loadCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.LoadCatalog([]byte(catalogDoc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
