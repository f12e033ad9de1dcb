package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox"
)

// TestDiskBudgetExhausted runs an agent whose telemetry budget is far too
// small for its outage: the oldest reports are dropped, the drops are
// counted and marked as telemetry gaps, every event arrives, and the
// bridge's watermark still accounts for every sequence number (applied,
// or settled by a gap marker).
func TestDiskBudgetExhausted(t *testing.T) {
	p := newPKI(t)
	b := startBridge(t, p, t.TempDir(), nil)
	link := proxied(t, b.MQTTAddr())
	dir := t.TempDir()
	a := startAgent(t, p, "truck-042", link.Addr(), nil, func(c *agent.Config) {
		fastAgent(dir)(c)
		c.Outbox.Policies[outbox.Telemetry] = outbox.Policy{Quota: 8 << 10, TTL: time.Hour, WhenFull: outbox.DropOldest}
	})
	allOnline(t, b.HTTPAddr(), map[string]map[string]string{"truck-042": nil})

	link.Cut()
	ctx := context.Background()
	const events = 20
	for i := range events {
		if _, err := a.RecordEvent(ctx, &pb.Event{Severity: pb.Event_SEVERITY_WARNING, Kind: "door.open",
			Message: fmt.Sprintf("door opened %d", i)}); err != nil {
			t.Fatalf("RecordEvent %d: %v", i, err)
		}
		time.Sleep(200 * time.Millisecond) // the outage goes on; reports keep coming every 20 ms
	}
	if s := a.Stats().Outbox.Classes[outbox.Telemetry]; s.DroppedQuota == 0 {
		t.Fatalf("no telemetry dropped over an 8 KiB budget: %+v", s)
	}
	link.Restore()
	drained(t, a, b.HTTPAddr(), "truck-042", 60*time.Second)
	a.stop()

	st := outboxState(t, dir, "truck-042")
	d := deliveryOf(t, b.HTTPAddr(), "truck-042")
	t.Logf("sequenced %d; bridge watermark %d, applied %d, dropped %d in %d gap markers, %d events",
		st.NextSeq-1, d.Applied.Watermark, d.Counters.Applied, d.Counters.Dropped, d.Counters.Gaps, d.Counters.Events)
	if d.Counters.Events != events {
		t.Errorf("bridge applied %d events, want all %d", d.Counters.Events, events)
	}
	if d.Counters.Gaps == 0 || d.Counters.Dropped == 0 {
		t.Errorf("bridge heard of no drop: gaps %d, dropped %d", d.Counters.Gaps, d.Counters.Dropped)
	}
	for _, e := range d.RecentEvents {
		if e.Kind == "skyedge.gap" && e.Attributes["class"] != "telemetry" {
			t.Errorf("a gap in class %q, want drops only in telemetry", e.Attributes["class"])
		}
	}
	// Every sequence number is applied or settled by a gap; nothing is
	// applied twice. Whatever the agent still held at its stop lies above
	// the watermark.
	var held uint64
	for _, c := range st.Classes {
		held += uint64(c.Count)
	}
	if len(d.Applied.Ranges) != 0 || d.Applied.Watermark+held < st.NextSeq-1 {
		t.Errorf("watermark %d ranges %v + %d held does not cover the %d sequenced", d.Applied.Watermark, d.Applied.Ranges, held, st.NextSeq-1)
	}
	// Each sequence number was applied or dropped, so together they cover
	// the watermark; they may overlap, since a report sent and applied can
	// be dropped over quota before its ack comes back (and then also named
	// in a gap). More applies than sequence numbers would be duplicates.
	if w := d.Applied.Watermark; d.Counters.Applied > w || d.Counters.Applied+d.Counters.Dropped < w {
		t.Errorf("applied %d, dropped %d, watermark %d: lost or duplicated", d.Counters.Applied, d.Counters.Dropped, w)
	}
}
