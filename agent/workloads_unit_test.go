package agent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/logtest"
	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/internal/clock"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// flakyKV is a kvStore in memory whose writes fail while broken is set.
type flakyKV struct {
	mu     sync.Mutex
	m      map[string][]byte
	broken bool
}

func (k *flakyKV) Get(key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	if !ok {
		return nil, badgerq.ErrNotFound
	}
	return v, nil
}

func (k *flakyKV) Set(key string, val []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.broken {
		return errors.New("disk on fire")
	}
	k.m[key] = val
	return nil
}

// TestDesiredNotStoredIsNotAcked checks that a desired set the node
// cannot store is neither applied nor acknowledged, and that the resend
// after the store recovers is.
func TestDesiredNotStoredIsNotAcked(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := DefaultConfig()
	cfg.Clock, cfg.DataDir = clk, t.TempDir()
	cfg.Workloads.DisableLimits = true
	var acks []uint64
	send := func(_ context.Context, env *pb.Envelope) error {
		acks = append(acks, env.GetDesiredAck().GetGeneration())
		return nil
	}
	publish := func(context.Context, *pb.Envelope) (uint64, error) { return 0, ErrNotRunning }
	w, err := newWorkloads(cfg, &stamp.Stamper{NodeID: node, Clock: clk}, send, publish, func() bool { return false }, logtest.New(t).Logger())
	if err != nil {
		t.Fatal(err)
	}
	kv := &flakyKV{m: map[string][]byte{}, broken: true}
	w.load(kv)
	m := &pb.DesiredState{Generation: 4, Full: true, Assignments: []*pb.WorkloadAssignment{{Name: "a", Generation: 4, SpecJson: []byte(`{"runtime":"exec","exec":{"command":"/bin/true"},"resources":{"cpu":"1m","memory":"1Mi"}}`)}}}
	w.handleDesired(context.Background(), m)
	if s := w.Stats(); s.DesiredFailed != 1 || s.Generation != 0 || len(acks) != 0 || len(w.r.Statuses()) != 0 {
		t.Fatalf("after a failed store: %+v, acks %v, runner %v; want nothing applied or acknowledged", s, acks, w.r.Statuses())
	}
	kv.broken = false
	w.handleDesired(context.Background(), m)
	if s := w.Stats(); s.DesiredApplied != 1 || s.Generation != 4 || len(acks) != 1 || acks[0] != 4 || len(w.r.Statuses()) != 1 {
		t.Fatalf("after the resend: %+v, acks %v, runner %v; want generation 4 applied and acknowledged", s, acks, w.r.Statuses())
	}
	if _, err := kv.Get(desiredKey); err != nil {
		t.Errorf("desired state not stored: %v", err)
	}
}

// TestContact checks the runner's view of the last contact: now while
// connected, the last noted time otherwise, and the stored one after a
// restart until something newer.
func TestContact(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	up := false
	c := contact{clk: clk, connected: func() bool { return up }}
	if got := c.last(); !got.IsZero() {
		t.Errorf("last() before any contact = %v, want zero", got)
	}
	c.restore(t0.Add(-time.Hour))
	if got, ok := c.unsaved(); !got.Equal(t0.Add(-time.Hour)) || ok {
		t.Errorf("unsaved() after restore = %v, %v; want the stored time, nothing to save", got, ok)
	}
	c.note(t0.Add(-2 * time.Hour)) // older: ignored
	if got := c.last(); !got.Equal(t0.Add(-time.Hour)) {
		t.Errorf("last() = %v, want the restored time", got)
	}
	up = true
	clk.Advance(time.Minute)
	if got := c.last(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("last() while connected = %v, want now", got)
	}
	up = false
	clk.Advance(time.Hour)
	if got, ok := c.unsaved(); !got.Equal(t0.Add(time.Minute)) || !ok {
		t.Errorf("unsaved() after the link went down = %v, %v; want the last connected moment, to save", got, ok)
	}
}
