package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent"
	"github.com/skyedge/skyedge/cloudcore-bridge/bridge"
	"github.com/skyedge/skyedge/internal/testutil/faultproxy"
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// delivery is what the bridge's registry says it applied from a node.
type delivery struct {
	Applied struct {
		OutboxID  string      `json:"outboxId"`
		Watermark uint64      `json:"watermark"`
		Ranges    [][2]uint64 `json:"ranges"`
	} `json:"applied"`
	Counters struct {
		Applied    uint64 `json:"applied"`
		Duplicates uint64 `json:"duplicates"`
		Events     uint64 `json:"events"`
		Gaps       uint64 `json:"gaps"`
		Dropped    uint64 `json:"dropped"`
	} `json:"counters"`
	RecentEvents []struct {
		Kind       string            `json:"kind"`
		Attributes map[string]string `json:"attributes"`
	} `json:"recentEvents"`
}

func deliveryOf(t testing.TB, httpAddr, node string) delivery {
	t.Helper()
	var d delivery
	switch code := getJSON(t, "http://"+httpAddr+"/api/v1/nodes/"+node, &d); code {
	case 200, 404: // 404: not registered yet, nothing delivered
	default:
		t.Fatalf("GET node %s: HTTP %d", node, code)
	}
	return d
}

// outboxState opens a stopped agent's outbox and returns its state: what
// is still pending and the highest sequence number it ever assigned.
func outboxState(t testing.TB, dataDir, node string) outbox.State {
	t.Helper()
	cfg := outbox.DefaultConfig()
	cfg.NodeID = node
	q, err := badgerq.Open(badgerq.DefaultOptions(filepath.Join(dataDir, "outbox")), cfg)
	if err != nil {
		t.Fatalf("open %s's outbox: %v", node, err)
	}
	defer q.Close()
	return q.State()
}

// checkExactlyOnce checks, against the bridge's registry and the agent's
// own outbox, that every message the agent ever sequenced was applied
// exactly once or is still held by the agent: the bridge's watermark has
// no hole above it, it applied exactly as many messages as the watermark
// says (a duplicate applied twice, or a message lost, breaks the count),
// and the outbox still holds every message above the watermark (those
// produced after the last acknowledgement before the agent stopped).
func checkExactlyOnce(t *testing.T, httpAddr, node, dataDir string) (sequenced uint64) {
	t.Helper()
	st := outboxState(t, dataDir, node)
	last := st.NextSeq - 1
	var pending uint64
	for _, c := range st.Classes {
		pending += uint64(c.Count)
	}
	d := deliveryOf(t, httpAddr, node)
	w := d.Applied.Watermark
	if len(d.Applied.Ranges) != 0 {
		t.Errorf("%s: bridge has applied ranges %v above its watermark %d: a hole", node, d.Applied.Ranges, w)
	}
	if d.Applied.OutboxID != st.ID {
		t.Errorf("%s: bridge tracks outbox %q, agent's is %q", node, d.Applied.OutboxID, st.ID)
	}
	// Held messages are contiguous (reports only), end at the last one
	// sequenced, and cover everything above the watermark; they may overlap
	// it when the agent stopped before an ack reached it (a resend of those
	// is dropped as a duplicate).
	contiguous := pending == 0 || pending == st.LastSeq-st.FirstSeq+1
	if w > last || !contiguous || (w < last && (pending == 0 || st.FirstSeq > w+1 || st.LastSeq != last)) {
		t.Errorf("%s: bridge watermark %d, %d held (%d..%d), %d sequenced: lost", node, w, pending, st.FirstSeq, st.LastSeq, last)
	}
	if d.Counters.Applied != w {
		t.Errorf("%s: bridge applied %d durable messages for watermark %d: lost or duplicated", node, d.Counters.Applied, w)
	}
	if last == 0 {
		t.Errorf("%s: nothing was sequenced", node)
	}
	t.Logf("%s: %d sequenced, %d applied exactly once, %d still held at stop; %d resends dropped as duplicates",
		node, last, w, pending, d.Counters.Duplicates)
	return last
}

// drained waits until the bridge has applied, and the agent deleted,
// everything the running agent had sequenced when drained was called.
func drained(t *testing.T, a *runningAgent, httpAddr, node string, timeout time.Duration) {
	t.Helper()
	target := a.Stats().Outbox.NextSeq - 1
	eventually(t, timeout, func() (bool, string) {
		o := a.Stats().Outbox
		w := deliveryOf(t, httpAddr, node).Applied.Watermark
		return w >= target && (o.FirstSeq == 0 || o.FirstSeq > target),
			fmt.Sprintf("%s to drain up to %d: outbox holds %d..%d, bridge watermark %d", node, target, o.FirstSeq, o.LastSeq, w)
	})
}

// proxied starts a fault-injecting proxy in front of the bridge's broker.
func proxied(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	t.Cleanup(func() { p.Close() })
	return p
}

func fastAgent(dataDir string) func(*agent.Config) {
	return func(c *agent.Config) {
		c.DataDir = dataDir
		c.ReportInterval = 20 * time.Millisecond
		c.Drain.Profile = drain.Unlimited
	}
}

// TestNoLossAcrossLinkCut reports fast through a link that is cut for a
// long while, then restored: everything produced meanwhile arrives once.
func TestNoLossAcrossLinkCut(t *testing.T) {
	cut := 2 * time.Minute
	if testing.Short() {
		cut = 5 * time.Second
	}
	p := newPKI(t)
	b := startBridge(t, p, t.TempDir(), nil)
	link := proxied(t, b.MQTTAddr())
	dirs := map[string]string{"truck-042": t.TempDir(), "sat-7": t.TempDir()}
	agents := map[string]*runningAgent{}
	for name, dir := range dirs {
		agents[name] = startAgent(t, p, name, link.Addr(), nil, fastAgent(dir))
	}
	allOnline(t, b.HTTPAddr(), map[string]map[string]string{"truck-042": nil, "sat-7": nil})

	link.Cut()
	time.Sleep(cut) // the outage itself: agents keep reporting into their outboxes
	for name, a := range agents {
		if s := a.Stats(); s.Outbox.LastSeq == 0 {
			t.Errorf("%s buffered nothing during the cut: %+v", name, s.Outbox)
		}
	}
	link.Restore()
	for name, a := range agents {
		drained(t, a, b.HTTPAddr(), name, 60*time.Second)
	}
	for name, a := range agents {
		a.stop()
		checkExactlyOnce(t, b.HTTPAddr(), name, dirs[name])
	}
}

// TestNoLossThroughBlackhole makes the link swallow every byte without
// TCP noticing, until the keepalive gives up on both sides.
func TestNoLossThroughBlackhole(t *testing.T) {
	p := newPKI(t)
	b := startBridge(t, p, t.TempDir(), nil)
	link := proxied(t, b.MQTTAddr())
	dir := t.TempDir()
	a := startAgent(t, p, "factory-7", link.Addr(), nil, func(c *agent.Config) {
		fastAgent(dir)(c)
		c.KeepAlive = 5 * time.Second
	})
	allOnline(t, b.HTTPAddr(), map[string]map[string]string{"factory-7": nil})

	link.Blackhole()
	eventually(t, 30*time.Second, func() (bool, string) {
		n := nodes(t, b.HTTPAddr())["factory-7"]
		return !n.Online && !a.Connected(), fmt.Sprintf("both sides noticed the dead link: bridge %+v, agent connected %v", n, a.Connected())
	})
	link.Restore()
	drained(t, a, b.HTTPAddr(), "factory-7", 60*time.Second)
	a.stop()
	checkExactlyOnce(t, b.HTTPAddr(), "factory-7", dir)
}

// TestNoLossAcrossBridgeRestart restarts the bridge (and its embedded
// broker) twice while agents report fast.
func TestNoLossAcrossBridgeRestart(t *testing.T) {
	p := newPKI(t)
	data := t.TempDir()
	b := startBridge(t, p, data, nil)
	addr := b.MQTTAddr()
	dir := t.TempDir()
	a := startAgent(t, p, "truck-042", addr, nil, fastAgent(dir))
	allOnline(t, b.HTTPAddr(), map[string]map[string]string{"truck-042": nil})
	for range 2 {
		time.Sleep(time.Second) // let messages flow, some of them unacknowledged at the restart
		b.stop()
		time.Sleep(2 * time.Second) // the bridge is down; the agent buffers
		b = startBridge(t, p, data, func(c *bridge.Config) { c.Embedded.ListenAddr = addr })
	}
	drained(t, a, b.HTTPAddr(), "truck-042", 60*time.Second)
	a.stop()
	checkExactlyOnce(t, b.HTTPAddr(), "truck-042", dir)
}

// TestCorruptOutboxAtStart starts an agent whose outbox is garbage: it
// runs on a fresh one, and the cloud hears the alarm.
func TestCorruptOutboxAtStart(t *testing.T) {
	p := newPKI(t)
	b := startBridge(t, p, t.TempDir(), nil)
	dir := t.TempDir()
	corruptOutbox(t, filepath.Join(dir, "outbox"))
	a := startAgent(t, p, "sat-7", b.MQTTAddr(), nil, fastAgent(dir))
	allOnline(t, b.HTTPAddr(), map[string]map[string]string{"sat-7": nil})
	eventually(t, 20*time.Second, func() (bool, string) {
		d := deliveryOf(t, b.HTTPAddr(), "sat-7")
		for _, e := range d.RecentEvents {
			if e.Kind == "outbox.corrupt" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("the outbox.corrupt alarm at the bridge; events %+v", d.RecentEvents)
	})
	drained(t, a, b.HTTPAddr(), "sat-7", 30*time.Second)
	a.stop()
	checkExactlyOnce(t, b.HTTPAddr(), "sat-7", dir)
}

// corruptOutbox makes a real outbox in dir, then overwrites its manifest
// with garbage, as a failing flash card might.
func corruptOutbox(t *testing.T, dir string) {
	t.Helper()
	cfg := outbox.DefaultConfig()
	cfg.NodeID = "sat-7"
	q, err := badgerq.Open(badgerq.DefaultOptions(dir), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), bytes.Repeat([]byte("not badger "), 8), 0o600); err != nil {
		t.Fatal(err)
	}
}
