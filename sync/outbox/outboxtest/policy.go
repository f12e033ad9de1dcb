package outboxtest

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func testQuotaRefuse(t *testing.T, impl Impl) {
	size := Size(Event(Start, "e", false))
	h := NewHarness(t, impl, func(c *outbox.Config) { c.Policies[outbox.Event].Quota = 10 * size })
	accepted := 0
	for ; accepted < 100; accepted++ {
		env := Event(Start.Add(time.Duration(accepted)*time.Second), "e", false)
		if _, err := h.Q.Append(ctxb(), env); err != nil {
			if !errors.Is(err, outbox.ErrFull) {
				t.Fatalf("Append() error = %v, want ErrFull", err)
			}
			if env.GetSeq() != 0 {
				t.Errorf("refused Append left env.Seq = %d, want 0", env.GetSeq())
			}
			break
		}
	}
	if accepted < 9 || accepted > 10 {
		t.Fatalf("a 10-event quota accepted %d events", accepted)
	}
	for range 2 {
		if _, err := h.Q.Append(ctxb(), Event(Start, "e", false)); !errors.Is(err, outbox.ErrFull) {
			t.Fatalf("Append() over quota error = %v, want ErrFull", err)
		}
	}
	st := h.Q.State()
	if c := st.Classes[outbox.Event]; c.Refused != 3 || c.Bytes > 10*size || c.Count != int64(accepted) {
		t.Errorf("event class = %+v, want %d events within %d bytes and 3 refusals", c, accepted, 10*size)
	}
	// Refusals consume no sequence numbers, and other classes carry on.
	if seq := h.Append(Report(Start, 0)); seq != uint64(accepted+1) {
		t.Errorf("Append(report) after refusals = %d, want %d", seq, accepted+1)
	}
	// Run records the refusals in a gap marker.
	h.StartRun()
	var gap *pb.Gap
	h.Eventually("the refusals are in a gap marker", h.Cfg.MaintainInterval, func() bool {
		gaps := Gaps(h.All())
		if len(gaps) == 1 {
			gap = gaps[0]
		}
		return gap != nil
	})
	if gap.GetClass() != "event" || gap.GetReason() != "quota" || gap.GetDropped() != 3 || len(gap.GetSeqs()) != 0 {
		t.Errorf("gap marker = %v, want class event, reason quota, 3 dropped, no seqs", gap)
	}
	// Acknowledged events make room again.
	if err := h.Q.Ack(ctxb(), 5, nil); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	if _, err := h.Q.Append(ctxb(), Event(Start, "e", false)); err != nil {
		t.Errorf("Append() after an ack made room error = %v", err)
	}
}

// dropOldestHarness has an event class of quota events that drops its
// oldest.
func dropOldestHarness(t *testing.T, impl Impl, quota int) *Harness {
	size := Size(Event(Start, "e", false))
	return NewHarness(t, impl, func(c *outbox.Config) {
		c.Policies[outbox.Event] = outbox.Policy{Quota: int64(quota) * size, WhenFull: outbox.DropOldest}
	})
}

func appendEvents(t *testing.T, h *Harness, from, n int) []uint64 {
	var seqs []uint64
	for i := from; i < from+n; i++ {
		seqs = append(seqs, h.Append(Event(Start.Add(time.Duration(i)*time.Second), "e", false)))
		if c := h.Q.State().Classes[outbox.Event]; c.Bytes > h.Cfg.Policies[outbox.Event].Quota {
			t.Fatalf("after append %d the event class holds %d bytes, quota %d", i, c.Bytes, h.Cfg.Policies[outbox.Event].Quota)
		}
	}
	return seqs
}

func testQuotaDropOldest(t *testing.T, impl Impl) {
	h := dropOldestHarness(t, impl, 20)
	seqs := appendEvents(t, h, 0, 100)
	all := h.All()
	st := CheckSettled(t, all, seqs, h.Q.State().NextSeq)
	if st.Raw < 10 || st.Raw > 20 || st.Gapped != 100-st.Raw {
		t.Errorf("settlement = %+v, want 10..20 events kept and the rest in gaps", st)
	}
	var kept []uint64
	for _, d := range all {
		if d.Class == outbox.Event {
			kept = append(kept, d.Seq)
		}
	}
	if kept[0] != seqs[100-len(kept)] {
		t.Errorf("kept events start at seq %d, want the newest %d (from %d)", kept[0], len(kept), seqs[100-len(kept)])
	}
	gaps := Gaps(all)
	if len(gaps) != 1 {
		t.Fatalf("%d gap markers, want 1 (coalesced)", len(gaps))
	}
	g := gaps[0]
	dropped := uint64(100 - len(kept))
	if g.GetClass() != "event" || g.GetReason() != "quota" || g.GetDropped() != dropped {
		t.Errorf("gap = %v, want class event, reason quota, %d dropped", g, dropped)
	}
	if g.GetFirstAtMs() != Start.UnixMilli() || g.GetLastAtMs() != Start.Add(time.Duration(dropped-1)*time.Second).UnixMilli() {
		t.Errorf("gap times = %d..%d, want the production times of events 0..%d", g.GetFirstAtMs(), g.GetLastAtMs(), dropped-1)
	}
	if got := h.Q.State().Classes[outbox.Event].DroppedQuota; got != dropped {
		t.Errorf("State() DroppedQuota = %d, want %d", got, dropped)
	}
}

func testGapCoalesce(t *testing.T, impl Impl) {
	h := dropOldestHarness(t, impl, 10)
	seqs := appendEvents(t, h, 0, 60)
	if n := len(Gaps(h.All())); n != 1 {
		t.Fatalf("%d gap markers after drops before any drain, want 1", n)
	}
	// The marker has now been handed to a drainer: later drops must not
	// rewrite it (the cloud may have applied it), so a second one starts.
	seqs = append(seqs, appendEvents(t, h, 60, 60)...)
	all := h.All()
	gaps := Gaps(all)
	if len(gaps) != 2 {
		t.Fatalf("%d gap markers, want 2", len(gaps))
	}
	st := CheckSettled(t, all, seqs, h.Q.State().NextSeq)
	if uint64(st.Gapped) != gaps[0].GetDropped()+gaps[1].GetDropped() {
		t.Errorf("gaps drop %d+%d, want %d", gaps[0].GetDropped(), gaps[1].GetDropped(), st.Gapped)
	}
	// Acking the markers removes them; new drops start a fresh marker.
	var last uint64
	for _, d := range all {
		last = max(last, d.Seq)
	}
	if err := h.Q.Ack(ctxb(), last, nil); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	more := appendEvents(t, h, 120, 30)
	all = h.All()
	if n := len(Gaps(all)); n != 1 {
		t.Errorf("%d gap markers after acking the old ones and dropping more, want 1", n)
	}
	CheckSettled(t, all, more, h.Q.State().NextSeq)
}

// reportEvery appends a report per period from the harness clock's now
// for d, advancing the clock, and checks the telemetry budget after each.
func reportEvery(t testing.TB, h *Harness, period, d time.Duration, idx map[uint64]int) []uint64 {
	var seqs []uint64
	quota := h.Cfg.Policies[outbox.Telemetry].Quota
	for n := int(d / period); n > 0; n-- {
		i := len(idx)
		seq := h.Append(Report(h.Clk.Now(), i))
		idx[seq] = i
		seqs = append(seqs, seq)
		if b := h.Q.State().Classes[outbox.Telemetry].Bytes; b > quota {
			t.Fatalf("after report %d telemetry holds %d bytes, quota %d", i, b, quota)
		}
		h.Clk.Advance(period)
	}
	return seqs
}

func testCompaction(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, func(c *outbox.Config) { c.Policies[outbox.Telemetry].Quota = 160 << 10 })
	idx := map[uint64]int{}
	seqs := reportEvery(t, h, time.Second, 2*time.Hour, idx)
	all := h.All()
	st := CheckSettled(t, all, seqs, h.Q.State().NextSeq)
	if st.Gapped != 0 || st.Summarized == 0 || st.Raw < 600 {
		t.Errorf("settlement = %+v, want summaries, no gaps, and at least the last 10 minutes raw", st)
	}
	summaries := 0
	for _, d := range all {
		s := d.Env.GetSummary()
		if s == nil {
			continue
		}
		summaries++
		checkSummary(t, d, idx)
		if w := s.GetWindowEndMs() - s.GetWindowStartMs(); w != time.Minute.Milliseconds() {
			t.Errorf("summary %d window %d ms, want one minute", d.Seq, w)
		}
	}
	if got := h.Q.State().Classes[outbox.Telemetry].Summarized; got != uint64(st.Summarized) {
		t.Errorf("State() Summarized = %d, want %d", got, st.Summarized)
	}
	t.Logf("2 h of 1 s reports in 160 KiB: %d raw, %d in %d summaries", st.Raw, st.Summarized, summaries)
}

// checkSummary checks a summary against the reports it covers: the sample
// count, the statistics' bounds, and Last being its latest report.
func checkSummary(t testing.TB, d Decoded, idx map[uint64]int) {
	t.Helper()
	s := d.Env.GetSummary()
	lastI, samples := -1, 0
	minCPU, maxCPU := math.Inf(1), math.Inf(-1)
	for _, r := range s.GetCovers() {
		for q := r.GetFirst(); q <= r.GetLast(); q++ {
			i, ok := idx[q]
			if !ok {
				continue // a summary it replaced
			}
			samples++
			lastI = max(lastI, i)
			cpu := float64(Report(Start, i).GetReport().GetCpuPermille())
			minCPU, maxCPU = math.Min(minCPU, cpu), math.Max(maxCPU, cpu)
		}
	}
	if int(s.GetSamples()) != samples {
		t.Errorf("summary %d has %d samples, covers %d reports", d.Seq, s.GetSamples(), samples)
	}
	c := s.GetCpuPermille()
	if c.GetMin() != minCPU || c.GetMax() != maxCPU || c.GetMean() < minCPU || c.GetMean() > maxCPU {
		t.Errorf("summary %d cpu = %v, want min %v max %v and the mean between", d.Seq, c, minCPU, maxCPU)
	}
	if s.GetLast().GetUptimeS() != uint64(3600+lastI) {
		t.Errorf("summary %d last report has uptime %d, want report %d's", d.Seq, s.GetLast().GetUptimeS(), lastI)
	}
	if s.GetDiskUsedPermille() == nil || s.GetMemUsedKib() == nil || s.GetLoad1Centi() == nil {
		t.Errorf("summary %d lacks statistics: %v", d.Seq, s)
	}
}

func testCompactionTiers(t *testing.T, impl Impl) {
	if RaceEnabled {
		t.Skip("8 simulated hours under four budgets take minutes under the race detector and have no concurrency to check")
	}
	// Windows grow as the budget shrinks: with these tiers 8 hours of
	// reports fit 48 KiB in ten-minute windows, 40 KiB only with hourly
	// ones, 16 KiB only by summarising even the last minutes, and 6 KiB
	// not at all.
	tests := []struct {
		name        string
		quota       int64
		wantDrops   bool
		wantLargest time.Duration // largest summary window; 0: any
	}{
		{"ten-minute windows", 48 << 10, false, 10 * time.Minute},
		{"hourly windows", 40 << 10, false, time.Hour},
		{"recent reports summarised", 16 << 10, false, time.Hour},
		{"drops the oldest", 6 << 10, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHarness(t, impl, func(c *outbox.Config) {
				c.Policies[outbox.Telemetry].Quota = tt.quota
				c.Tiers = []outbox.Tier{
					{Window: time.Minute, MinAge: 2 * time.Minute},
					{Window: 10 * time.Minute, MinAge: 20 * time.Minute},
					{Window: time.Hour, MinAge: 2 * time.Hour},
				}
			})
			idx := map[uint64]int{}
			seqs := reportEvery(t, h, time.Second, 8*time.Hour, idx)
			all := h.All()
			st := CheckSettled(t, all, seqs, h.Q.State().NextSeq)
			windows := map[time.Duration]int{}
			var largest time.Duration
			for _, d := range all {
				if s := d.Env.GetSummary(); s != nil {
					w := time.Duration(s.GetWindowEndMs()-s.GetWindowStartMs()) * time.Millisecond
					windows[w]++
					largest = max(largest, w)
					checkSummary(t, d, idx)
				}
			}
			if (st.Gapped > 0) != tt.wantDrops {
				t.Errorf("settlement = %+v, want drops %v", st, tt.wantDrops)
			}
			if tt.wantLargest != 0 && largest != tt.wantLargest {
				t.Errorf("summary windows = %v, want the largest %v", windows, tt.wantLargest)
			}
			if tt.wantDrops {
				gaps := Gaps(all)
				if len(gaps) == 0 || gaps[0].GetClass() != "telemetry" || gaps[0].GetReason() != "quota" {
					t.Errorf("gaps = %v, want telemetry quota gaps", gaps)
				}
			}
			t.Logf("8 h of 1 s reports in %d KiB: %+v, summary windows %v", tt.quota>>10, st, windows)
		})
	}
}

func testTTL(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, func(c *outbox.Config) {
		c.Policies[outbox.Event].TTL = time.Hour
		c.Policies[outbox.Telemetry].TTL = 30 * time.Minute
	})
	var old []uint64
	for i := range 5 {
		old = append(old, h.Append(Event(Start.Add(time.Duration(i)*time.Second), "old", false)))
	}
	var oldReports []uint64
	for i := range 3 {
		oldReports = append(oldReports, h.Append(Report(Start, i)))
	}
	h.Clk.Advance(2 * time.Hour)
	fresh := h.Append(Event(h.Clk.Now(), "fresh", false))
	h.StartRun()
	h.Eventually("old messages expire", h.Cfg.MaintainInterval, func() bool {
		st := h.Q.State()
		return st.Classes[outbox.Event].Count == 1 && st.Classes[outbox.Telemetry].Count == 0
	})
	h.StopRun()
	all := h.All()
	CheckSettled(t, all, append(append(old, oldReports...), fresh), h.Q.State().NextSeq)
	byClass := map[string]*pb.Gap{}
	for _, g := range Gaps(all) {
		if g.GetReason() != "ttl" {
			t.Errorf("gap %v, want reason ttl", g)
		}
		byClass[g.GetClass()] = g
	}
	if g := byClass["event"]; g.GetDropped() != 5 || g.GetFirstAtMs() != Start.UnixMilli() {
		t.Errorf("event gap = %v, want 5 dropped from %d", g, Start.UnixMilli())
	}
	if g := byClass["telemetry"]; g.GetDropped() != 3 {
		t.Errorf("telemetry gap = %v, want 3 dropped", g)
	}
	st := h.Q.State()
	if st.Classes[outbox.Event].DroppedTTL != 5 || st.Classes[outbox.Telemetry].DroppedTTL != 3 {
		t.Errorf("State() DroppedTTL = %d events, %d telemetry, want 5 and 3",
			st.Classes[outbox.Event].DroppedTTL, st.Classes[outbox.Telemetry].DroppedTTL)
	}
}
