package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/internal/testutil/faultproxy"
)

// partitionFleet is a bridge and two eligible nodes, each behind its own
// fault proxy, running one replica of a workload with the given
// disconnect block.
type partitionFleet struct {
	http    string
	proxies map[string]*faultproxy.Proxy
	// host runs the replica; other is the other eligible node.
	host, other string
	pid         int
}

func newPartitionFleet(t *testing.T, name, disconnect string) *partitionFleet {
	t.Helper()
	p := newPKI(t)
	br := startBridge(t, p, t.TempDir(), nil)
	f := &partitionFleet{http: br.HTTPAddr(), proxies: map[string]*faultproxy.Proxy{}}
	for _, n := range []string{"edge-a", "edge-b"} {
		px := proxied(t, br.MQTTAddr())
		f.proxies[n] = px
		startAgent(t, p, n, px.Addr(), map[string]string{"role": "worker"}, nil)
	}
	eventually(t, 15*time.Second, func() (bool, string) {
		ns := nodes(t, f.http)
		return ns["edge-a"].Online && ns["edge-b"].Online, "both nodes online"
	})
	apply(t, f.http, fmt.Sprintf(beatWorkload, name, "v1", disconnect, "worker"))
	for n, r := range running(waitRunningAnywhere(t, f.http, name)) {
		f.host, f.pid = n, r.PID
	}
	f.other = map[string]string{"edge-a": "edge-b", "edge-b": "edge-a"}[f.host]
	if !alive(f.pid) {
		t.Fatalf("replica on %s reports pid %d, which does not exist", f.host, f.pid)
	}
	return f
}

// waitRunningAnywhere waits until name runs on exactly one node.
func waitRunningAnywhere(t testing.TB, httpAddr, name string) apiv1.Workload {
	t.Helper()
	var w apiv1.Workload
	eventually(t, 30*time.Second, func() (bool, string) {
		var ok bool
		if w, ok = workload(t, httpAddr, name); !ok {
			return false, name + " not found"
		}
		return len(running(w)) == 1, name + " running once:" + replicaSummary(w)
	})
	return w
}

// cut partitions the replica's node from the bridge until restore.
func (f *partitionFleet) cut(t *testing.T) {
	f.proxies[f.host].Cut()
	eventually(t, 15*time.Second, func() (bool, string) {
		return !nodes(t, f.http)[f.host].Online, f.host + " seen offline by the bridge"
	})
}

func (f *partitionFleet) restore(t *testing.T) {
	f.proxies[f.host].Restore()
	eventually(t, 20*time.Second, func() (bool, string) {
		return nodes(t, f.http)[f.host].Online, f.host + " back online"
	})
}

// TestPartitionShorterThanLostAfter: with replace false, a node quiet for
// less than lostAfter keeps its copy, nothing is placed elsewhere, and the
// process is never restarted.
func TestPartitionShorterThanLostAfter(t *testing.T) {
	f := newPartitionFleet(t, "stay", "lostAfter: 1m, replace: false")
	f.cut(t)
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		w, _ := workload(t, f.http, "stay")
		for _, r := range w.Replicas {
			if r.Node != f.host {
				t.Fatalf("a copy was placed on %s while %s was disconnected for less than lostAfter:%s", r.Node, f.host, replicaSummary(w))
			}
		}
		if !alive(f.pid) {
			t.Fatalf("the workload on %s stopped during a short partition", f.host)
		}
		time.Sleep(250 * time.Millisecond)
	}
	f.restore(t)
	w := waitRunning(t, f.http, "stay", 20*time.Second, f.host)
	if r := running(w)[f.host]; r.PID != f.pid || r.Restarts != 0 {
		t.Errorf("after the partition the copy runs as pid %d with %d restarts, want the same pid %d, none", r.PID, r.Restarts, f.pid)
	}
}

// TestPartitionPastLostAfterMoves: past lostAfter the node is lost and
// its copy replaced on the other eligible node. The original keeps running
// on the cut-off node (it has no stopAfter); when the node returns, the
// lost copy is stopped and the replacement stays, whatever the reconcile
// policy, which only chooses between copies of a node that returned in
// time (Nomad's disconnect block).
func TestPartitionPastLostAfterMoves(t *testing.T) {
	f := newPartitionFleet(t, "moves", "lostAfter: 3s, replace: false, reconcile: keep-original")
	f.cut(t)
	w := waitRunning(t, f.http, "moves", 30*time.Second, f.other)
	replacement := running(w)[f.other].PID
	if !alive(f.pid) {
		t.Errorf("the original on %s stopped although it has no stopAfter", f.host)
	}
	f.restore(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		return !alive(f.pid), fmt.Sprintf("lost original pid %d on %s still alive after its node returned", f.pid, f.host)
	})
	w = waitRunning(t, f.http, "moves", 20*time.Second, f.other)
	if got := running(w)[f.other].PID; got != replacement {
		t.Errorf("the replacement was restarted: pid %d, want %d", got, replacement)
	}
}

// TestPartitionReplaceKeepOriginal: replace true starts a replacement at
// once; on the node's return within lostAfter, keep-original stops the
// replacement and the original runs on, never restarted.
func TestPartitionReplaceKeepOriginal(t *testing.T) {
	f := newPartitionFleet(t, "keep", "lostAfter: 1m, replace: true, reconcile: keep-original")
	f.cut(t)
	w := waitRunning(t, f.http, "keep", 30*time.Second, f.other)
	replacement := running(w)[f.other].PID
	f.restore(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		return !alive(replacement), fmt.Sprintf("replacement pid %d on %s still alive after keep-original", replacement, f.other)
	})
	w = waitRunning(t, f.http, "keep", 20*time.Second, f.host)
	if r := running(w)[f.host]; r.PID != f.pid || !alive(f.pid) {
		t.Errorf("the original runs as pid %d (alive %v), want the same pid %d", r.PID, alive(f.pid), f.pid)
	}
}

// TestPartitionReplaceNow: replace true places a replacement as soon as
// the node is disconnected; on its return keep-replacement stops the
// original.
func TestPartitionReplaceNow(t *testing.T) {
	f := newPartitionFleet(t, "swap", "lostAfter: 1m, replace: true, reconcile: keep-replacement")
	f.cut(t)
	w := waitRunning(t, f.http, "swap", 30*time.Second, f.other)
	replacement := running(w)[f.other].PID
	f.restore(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		return !alive(f.pid), fmt.Sprintf("original pid %d on %s still alive after keep-replacement", f.pid, f.host)
	})
	w = waitRunning(t, f.http, "swap", 20*time.Second, f.other)
	if got := running(w)[f.other].PID; got != replacement {
		t.Errorf("the replacement was restarted: pid %d, want %d", got, replacement)
	}
}

// TestPartitionLongerThanStopAfter: the agent stops the workload itself
// once it has been without the cloud for stopAfter, and runs it again
// when the link returns.
func TestPartitionLongerThanStopAfter(t *testing.T) {
	f := newPartitionFleet(t, "selfstop", "lostAfter: 1m, stopAfter: 2s")
	f.cut(t)
	start := time.Now()
	eventually(t, 15*time.Second, func() (bool, string) {
		return !alive(f.pid), fmt.Sprintf("pid %d still alive %v into the partition (stopAfter 2s)", f.pid, time.Since(start).Round(time.Second))
	})
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("stopped %v into the partition, before stopAfter", d)
	}
	f.restore(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		w, _ := workload(t, f.http, "selfstop")
		r, ok := running(w)[f.host]
		return ok && r.PID != f.pid && alive(r.PID), "a new process running on " + f.host + ":" + replicaSummary(w)
	})
}
