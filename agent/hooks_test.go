package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/memq"
)

// TestSimulatorHooks runs an agent the way a fleet simulator does: its
// own dialer (binding 127.0.0.2, as the simulator spreads its nodes over
// source addresses) and an in-memory outbox. Reports
// still go through the outbox and are acknowledged by the cloud, and no
// Badger database is created.
func TestSimulatorHooks(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	cfg := testConfig(t, b, b.ClientTLS(node), t.TempDir())
	var dials atomic.Int32
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		return d.DialContext(ctx, network, addr)
	}
	var opened atomic.Int32
	cfg.OpenOutbox = func(oc outbox.Config) (outbox.Queue, error) {
		opened.Add(1)
		if oc.NodeID != node || oc.BootEpoch != 1 {
			t.Errorf("OpenOutbox config: node %q epoch %d, want %q and 1", oc.NodeID, oc.BootEpoch, node)
		}
		return memq.Open(oc)
	}
	a := start(t, cfg)
	waitApplied(t, cloud, 3)
	a.stop()
	if dials.Load() == 0 || opened.Load() != 1 {
		t.Errorf("dials %d, outbox opened %d times; want >= 1 and 1", dials.Load(), opened.Load())
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, OutboxDir)); !os.IsNotExist(err) {
		t.Errorf("a Badger outbox was created beside the injected one: %v", err)
	}
	if s := a.Stats(); s.ReportsQueued < 3 || s.Drain.Envelopes < 3 {
		t.Errorf("Stats() = %+v, want reports queued and sent through the outbox", s)
	}
}
