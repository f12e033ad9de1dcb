package outboxtest

import (
	"testing"
	"time"

	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"
)

// Outage describes a simulated time offline: a report every ReportEvery
// and an event every EventEvery for Duration, on the fake clock, with
// nothing acknowledged.
type Outage struct {
	Duration       time.Duration
	ReportEvery    time.Duration
	EventEvery     time.Duration
	TelemetryQuota int64
	// DiskBytes, when set, measures the store on disk; it must stay at or
	// under DiskBudget (checked every 1,000 reports and at the end).
	DiskBytes  func(dir string) int64
	DiskBudget int64
}

// DefaultOutage is a day offline at one report a second (86,400 reports)
// and an event every 10 minutes, with a 1 MiB telemetry budget.
func DefaultOutage() Outage {
	return Outage{
		Duration:       24 * time.Hour,
		ReportEvery:    time.Second,
		EventEvery:     10 * time.Minute,
		TelemetryQuota: 1 << 20,
	}
}

// OutageResult is what an outage left and what draining it took.
type OutageResult struct {
	Reports, Events int
	Settlement      Settlement
	Summaries, Gaps int
	PendingItems    int
	PendingBytes    int64 // payload bytes left to send
	MaxDiskBytes    int64
	Elapsed         time.Duration // real time for the appends
}

// SimulateOutage runs o against impl and checks that telemetry stays
// within its quota (and the store within its disk budget) throughout,
// that every event is kept, that the pending summaries, events and gap
// markers account for every report's sequence number exactly once, and
// that acknowledging page after page drains the queue to empty.
func SimulateOutage(t *testing.T, impl Impl, o Outage) OutageResult {
	h := NewHarness(t, impl, func(c *outbox.Config) { c.Policies[outbox.Telemetry].Quota = o.TelemetryQuota })
	var res OutageResult
	var reports, events []uint64
	checkDisk := func() {
		if o.DiskBytes == nil {
			return
		}
		d := o.DiskBytes(h.Dir)
		res.MaxDiskBytes = max(res.MaxDiskBytes, d)
		if d > o.DiskBudget {
			t.Fatalf("after %d reports the store takes %d bytes on disk, budget %d", len(reports), d, o.DiskBudget)
		}
	}
	start := time.Now()
	perEvent := int(o.EventEvery / o.ReportEvery)
	n := int(o.Duration / o.ReportEvery)
	for i := range n {
		now := h.Clk.Now()
		reports = append(reports, h.Append(Report(now, i)))
		if i%perEvent == 0 {
			events = append(events, h.Append(Event(now, "workload.restarted", false)))
		}
		if b := h.Q.State().Classes[outbox.Telemetry].Bytes; b > o.TelemetryQuota {
			t.Fatalf("after %d reports telemetry holds %d bytes, quota %d", i+1, b, o.TelemetryQuota)
		}
		if i%1000 == 0 {
			checkDisk()
		}
		h.Clk.Advance(o.ReportEvery)
	}
	res.Elapsed = time.Since(start)
	checkDisk()
	res.Reports, res.Events = len(reports), len(events)

	all := h.All()
	res.PendingItems = len(all)
	for _, d := range all {
		res.PendingBytes += int64(len(d.Payload))
		switch {
		case d.Env.GetSummary() != nil:
			res.Summaries++
		case d.Env.GetGap() != nil:
			res.Gaps++
		}
	}
	res.Settlement = CheckSettled(t, all, reports, h.Q.State().NextSeq)
	if ev := CheckSettled(t, all, events, h.Q.State().NextSeq); ev.Raw != len(events) {
		t.Errorf("events: %+v, want all %d kept", ev, len(events))
	}

	// Drain the way an uplink does: page, send, get acked.
	var cur outbox.Cursor
	drained := 0
	for {
		items, next, err := h.Q.Pending(ctxb(), cur, 1000, 120<<10)
		if err != nil {
			t.Fatalf("Pending() error = %v", err)
		}
		if len(items) == 0 {
			break
		}
		drained += len(items)
		var hi uint64
		for _, it := range items {
			hi = max(hi, it.Seq)
		}
		// The cloud acks cumulatively once it has everything below.
		if err := h.Q.Ack(ctxb(), 0, rangesOf(items)); err != nil {
			t.Fatalf("Ack() error = %v", err)
		}
		cur = next
	}
	if drained != len(all) {
		t.Errorf("drained %d items, want %d", drained, len(all))
	}
	if st := h.Q.State(); st.FirstSeq != 0 || st.Classes[outbox.Telemetry].Bytes != 0 {
		t.Errorf("State() after draining = %+v, want empty", st)
	}
	t.Logf("outage of %v: %d reports and %d events appended in %v; pending %d items (%d summaries, %d gap markers, %d events) of %d bytes; reports %+v; max disk %d bytes",
		o.Duration, res.Reports, res.Events, res.Elapsed.Round(time.Millisecond), res.PendingItems, res.Summaries, res.Gaps,
		res.Events, res.PendingBytes, res.Settlement, res.MaxDiskBytes)
	return res
}

// rangesOf lists the items' sequence numbers as ranges.
func rangesOf(items []outbox.Item) []acks.Range {
	rs := make([]acks.Range, len(items))
	for i, it := range items {
		rs[i] = acks.Range{First: it.Seq, Last: it.Seq}
	}
	return acks.Normalize(rs)
}
