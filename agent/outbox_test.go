package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/agent/internal/logtest"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"
)

var errStopped = errors.New("sampler stopped by the test")

func (f *fakeSource) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// waitDrained stops src producing and waits until the outbox of a is
// empty, the cloud's acks having deleted everything.
func waitDrained(t *testing.T, a *running, src *fakeSource) outbox.State {
	t.Helper()
	src.fail(errStopped)
	brokertest.WaitFor(t, wait, "the outbox to empty", func() bool { return pending(a.Stats().Outbox) == 0 })
	return a.Stats().Outbox
}

// checkSettled checks that the cloud applied every sequence number from 1
// to the outbox's highest, each once.
func checkSettled(t *testing.T, cloud *brokertest.Cloud, st outbox.State) []brokertest.Applied {
	t.Helper()
	hist := cloud.History(node)
	var got acks.Set
	for _, h := range hist {
		if !got.Add(h.Seq) {
			t.Errorf("seq %d applied twice", h.Seq)
		}
	}
	if top := st.NextSeq - 1; got.Cumulative() != top || got.NumRanges() != 0 {
		t.Errorf("the cloud applied [1, %d] and %v, want exactly [1, %d]", got.Cumulative(), got.Ranges(), top)
	}
	return hist
}

// TestOutageKeepsReports stops the broker for several report intervals:
// the reports of the outage reach the cloud after the reconnect, in
// order, each once, and the outbox empties on the cloud's acks.
func TestOutageKeepsReports(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	src := &fakeSource{}
	cfg := testConfig(t, b, b.ClientTLS(node), t.TempDir())
	cfg.Source = src
	a := start(t, cfg)
	waitApplied(t, cloud, 2)

	b.Stop()
	brokertest.WaitFor(t, wait, "the link to go down", func() bool { return !a.Connected() })
	offline := a.Stats().ReportsQueued
	brokertest.WaitFor(t, wait, "5 reports queued offline", func() bool { return a.Stats().ReportsQueued >= offline+5 })
	if p := pending(a.Stats().Outbox); p < 5 {
		t.Errorf("%d messages pending during the outage, want the 5 reports at least", p)
	}
	b.Restart()
	brokertest.WaitFor(t, wait, "reconnect", a.Connected)
	st := waitDrained(t, a, src)

	hist := checkSettled(t, cloud, st)
	if d := cloud.Duplicates(node); len(d) != 0 {
		t.Errorf("sequence numbers that reached the cloud more than once: %v", d)
	}
	var batched int
	for i, h := range hist {
		if h.Body != "report" {
			t.Errorf("applied %s seq %d, want reports only", h.Body, h.Seq)
		}
		if i > 0 && h.Seq < hist[i-1].Seq {
			t.Errorf("report %d arrived after report %d, want sequence order within the class", h.Seq, hist[i-1].Seq)
		}
		if h.Batch {
			batched++
		}
	}
	if batched < 2 {
		t.Errorf("%d reports arrived in batches, want the backlog of the outage batched", batched)
	}
	if s := a.Stats(); s.ReportsRefused+s.ReportsFailed != 0 || s.Outbox.Classes[outbox.Telemetry].Appended != s.ReportsQueued {
		t.Errorf("Stats() = %+v, want every report queued", s)
	}
}

// TestNothingDeletedWithoutAck checks that a broker's PUBACK deletes
// nothing: with a cloud that applies but does not acknowledge, the outbox
// keeps everything across a reconnect, and drains once acks resume.
func TestNothingDeletedWithoutAck(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	cloud.SetAcking(false)
	src := &fakeSource{}
	cfg := testConfig(t, b, b.ClientTLS(node), t.TempDir())
	cfg.Source = src
	a := start(t, cfg)

	keepsAll := func(when string) {
		t.Helper()
		st := a.Stats().Outbox
		if st.FirstSeq != 1 || uint64(pending(st)) != st.NextSeq-1 {
			t.Errorf("%s: outbox holds [%d, %d], %d messages; want everything from 1 to %d", when, st.FirstSeq, st.LastSeq, pending(st), st.NextSeq-1)
		}
	}
	waitApplied(t, cloud, 3)
	keepsAll("after 3 messages reached the cloud")

	b.Restart()
	brokertest.WaitFor(t, wait, "a second hello", func() bool { return len(cloud.Hellos(node)) == 2 })
	brokertest.WaitFor(t, wait, "the resend of what is pending", func() bool { return len(cloud.Duplicates(node)) >= 3 })
	keepsAll("after a reconnect")
	if h := cloud.Hellos(node)[1].GetHello(); h.GetOutboxFirstSeq() != 1 || h.GetOutboxLastSeq() < 3 {
		t.Errorf("second hello holds the outbox range [%d, %d], want [1, >= 3]", h.GetOutboxFirstSeq(), h.GetOutboxLastSeq())
	}

	cloud.SetAcking(true)
	st := waitDrained(t, a, src)
	checkSettled(t, cloud, st)
}

// TestResendFromWatermark restarts the agent with messages pending that
// the cloud has partly applied: the hello names the pending range and the
// outbox, and the Welcome's watermark and ranges make the agent send only
// what the cloud lacks.
func TestResendFromWatermark(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	cloud.SetAcking(false)
	dir, tlsCfg := t.TempDir(), b.ClientTLS(node)
	cfg := testConfig(t, b, tlsCfg, dir)
	cfg.Source = &fakeSource{}
	a1 := start(t, cfg)
	waitApplied(t, cloud, 2)
	cloud.DropNext(2) // a hole the cloud must ask for again
	brokertest.WaitFor(t, wait, "2 messages lost on the way", func() bool { return cloud.Dropped() == 2 })
	n := cloud.Count(node)
	waitApplied(t, cloud, n+2)
	a1.stop()
	before := a1.Stats().Outbox
	if before.FirstSeq != 1 || uint64(pending(before)) != before.NextSeq-1 {
		t.Fatalf("outbox at stop = %+v, want everything pending (nothing acknowledged)", before)
	}

	cloud.SetAcking(true)
	src := &fakeSource{}
	cfg = testConfig(t, b, tlsCfg, dir)
	cfg.Source = src
	a2 := start(t, cfg)
	brokertest.WaitFor(t, wait, "the second run's hello", func() bool { return len(cloud.Welcomes(node)) == 2 })
	hello := cloud.Hellos(node)[1].GetHello()
	if hello.GetOutboxFirstSeq() != 1 || hello.GetOutboxLastSeq() != before.LastSeq || hello.GetNextSeq() != before.NextSeq-1 || hello.GetOutboxId() != before.ID {
		t.Errorf("hello after restart = outbox [%d, %d], next %d, ID %q; want [1, %d], %d, %q",
			hello.GetOutboxFirstSeq(), hello.GetOutboxLastSeq(), hello.GetNextSeq(), hello.GetOutboxId(), before.LastSeq, before.NextSeq-1, before.ID)
	}
	if w := cloud.Welcomes(node)[1]; w.GetWatermark() < 2 || len(w.GetApplied()) == 0 {
		t.Errorf("welcome after restart = %v, want a watermark and the ranges above the hole", w)
	}
	st := waitDrained(t, a2, src)
	checkSettled(t, cloud, st)
	if d := cloud.Duplicates(node); len(d) != 0 {
		t.Errorf("sequence numbers sent again although the cloud had them: %v", d)
	}
	if s := a2.Stats(); s.Outbox.ID != before.ID || s.AcksIgnored != 0 {
		t.Errorf("Stats() after restart = %+v, want the same outbox %q and no ignored acks", s, before.ID)
	}
}

// TestCorruptOutbox damages every file of the outbox between two runs:
// the agent starts on a fresh outbox with a new ID, and the cloud hears
// the outbox.corrupt alarm in a new sequence space.
func TestCorruptOutbox(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	dir, tlsCfg := t.TempDir(), b.ClientTLS(node)
	cfg := testConfig(t, b, tlsCfg, dir)
	cfg.Source = &fakeSource{}
	a1 := start(t, cfg)
	waitApplied(t, cloud, 3)
	a1.stop()
	oldID := a1.Stats().Outbox.ID

	files, err := filepath.Glob(filepath.Join(dir, OutboxDir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no outbox files in %s: %v", dir, err)
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte(strings.Repeat("garbage ", 64)), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	logs := logtest.New(t)
	cfg = testConfig(t, b, tlsCfg, dir)
	cfg.Source = &fakeSource{}
	cfg.Logger = logs.Logger()
	a2 := start(t, cfg)
	var alarm brokertest.Applied
	brokertest.WaitFor(t, wait, "the outbox.corrupt alarm", func() bool {
		for _, h := range cloud.History(node) {
			if h.Kind == "outbox.corrupt" {
				alarm = h
				return true
			}
		}
		return false
	})
	st := a2.Stats().Outbox
	if st.Recovered == "" || st.ID == "" || st.ID == oldID {
		t.Errorf("outbox after corruption = recovered %q, ID %q; want it moved aside and a new ID (not %q)", st.Recovered, st.ID, oldID)
	}
	if alarm.Seq != 1 {
		t.Errorf("alarm seq = %d, want 1: the new outbox numbers from 1", alarm.Seq)
	}
	hellos := cloud.Hellos(node)
	if id := hellos[len(hellos)-1].GetHello().GetOutboxId(); id != st.ID {
		t.Errorf("hello outbox ID = %q, want the new outbox's %q", id, st.ID)
	}
	if n := cloud.Resets(node); n != 1 {
		t.Errorf("cloud started %d new sequence spaces, want 1", n)
	}
	if n := logs.Count("outbox was unreadable: moved aside and started empty; its unsent messages are lost to the cloud"); n != 1 {
		t.Errorf("logged the corruption %d times, want once", n)
	}
}

func TestRecordEvent(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	cfg := testConfig(t, b, b.ClientTLS(node), t.TempDir())
	cfg.Source = &fakeSource{}
	ctx := context.Background()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := &pb.Event{Severity: pb.Event_SEVERITY_WARNING, Kind: "workload.restarted", Message: "exit status 1", Attributes: map[string]string{"workload": "pump"}}
	if _, err := a.RecordEvent(ctx, ev); !errors.Is(err, ErrNotRunning) {
		t.Errorf("RecordEvent() before Run = %v, want ErrNotRunning", err)
	}
	r := &running{Agent: a, t: t, done: make(chan error, 1)}
	rctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go func() { r.done <- a.Run(rctx) }()
	t.Cleanup(r.stop)
	brokertest.WaitFor(t, wait, "connect", a.Connected)

	seq, err := a.RecordEvent(ctx, ev)
	if err != nil || seq == 0 {
		t.Fatalf("RecordEvent(warning) = %d, %v; want a sequence number", seq, err)
	}
	alarm := &pb.Event{Severity: pb.Event_SEVERITY_ALARM, Kind: "disk.full", Message: "/data at 99%"}
	if _, err := a.RecordEvent(ctx, alarm); err != nil {
		t.Fatalf("RecordEvent(alarm) = %v", err)
	}
	if _, err := a.RecordEvent(ctx, &pb.Event{Severity: pb.Event_SEVERITY_INFO}); err == nil {
		t.Errorf("RecordEvent(event without a kind) = nil error")
	}
	kinds := map[string]bool{}
	brokertest.WaitFor(t, wait, "both events at the cloud", func() bool {
		for _, h := range cloud.History(node) {
			kinds[h.Kind] = true
		}
		return kinds["workload.restarted"] && kinds["disk.full"]
	})
	st := a.Stats()
	if c := st.Outbox.Classes; c[outbox.Control].Appended != 1 || c[outbox.Event].Appended != 1 {
		t.Errorf("outbox classes = %+v, want the alarm in control and the warning in event", c)
	}
	// Failed: the one before Run and the one without a kind.
	if st.EventsQueued != 2 || st.EventsFailed != 2 || st.EventsRefused != 0 {
		t.Errorf("Stats() events = %d queued, %d refused, %d failed; want 2, 0, 2", st.EventsQueued, st.EventsRefused, st.EventsFailed)
	}
	r.stop()
	if _, err := a.RecordEvent(ctx, ev); !errors.Is(err, ErrNotRunning) {
		t.Errorf("RecordEvent() after Run = %v, want ErrNotRunning", err)
	}
}

func TestCheckEvent(t *testing.T) {
	ok := func() *pb.Event {
		return &pb.Event{Severity: pb.Event_SEVERITY_INFO, Kind: "workload.started", Message: "pump started", Attributes: map[string]string{"workload": "pump"}}
	}
	many := map[string]string{}
	for i := range MaxEventAttributes + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	tests := []struct {
		name string
		mod  func(*pb.Event)
		want string // a substring of the error; "" for valid
	}{
		{name: "valid", mod: func(*pb.Event) {}},
		{name: "alarm", mod: func(e *pb.Event) { e.Severity = pb.Event_SEVERITY_ALARM }},
		{name: "no severity", mod: func(e *pb.Event) { e.Severity = pb.Event_SEVERITY_UNSPECIFIED }, want: "severity"},
		{name: "unknown severity", mod: func(e *pb.Event) { e.Severity = 9 }, want: "severity"},
		{name: "no kind", mod: func(e *pb.Event) { e.Kind = "" }, want: `kind "": want 1 to 128 bytes`},
		{name: "long kind", mod: func(e *pb.Event) { e.Kind = strings.Repeat("k", MaxEventKind+1) }, want: "kind"},
		{name: "control character in kind", mod: func(e *pb.Event) { e.Kind = "a\nb" }, want: "kind"},
		{name: "long message", mod: func(e *pb.Event) { e.Message = strings.Repeat("m", MaxEventMessage+1) }, want: "message of 4097 bytes"},
		{name: "invalid UTF-8", mod: func(e *pb.Event) { e.Message = "\xff" }, want: "UTF-8"},
		{name: "too many attributes", mod: func(e *pb.Event) { e.Attributes = many }, want: "33 attributes, at most 32"},
		{name: "empty attribute key", mod: func(e *pb.Event) { e.Attributes = map[string]string{"": "v"} }, want: `attribute ""`},
		{name: "long attribute value", mod: func(e *pb.Event) { e.Attributes = map[string]string{"k": strings.Repeat("v", MaxEventAttrValue+1)} }, want: `attribute "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := ok()
			tt.mod(ev)
			err := checkEvent(ev)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkEvent(%v) = %v, want nil", ev, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkEvent(%v) = %v, want an error containing %q", ev, err, tt.want)
			}
		})
	}
	if err := checkEvent(nil); err == nil {
		t.Errorf("checkEvent(nil) = nil, want an error")
	}
}
