package bridge

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// outboxHello is a hello stating the agent's outbox: its ID, the range it
// still holds and the highest sequence number it ever assigned.
func outboxHello(id, outboxID string, first, last, next uint64) *pb.Envelope {
	h := hello(id, nil)
	hh := h.GetHello()
	hh.OutboxId, hh.OutboxFirstSeq, hh.OutboxLastSeq, hh.NextSeq = outboxID, first, last, next
	return h
}

// seqReport is report seq of node id; its CPU figure is cpu, so a test can
// tell which copy was applied.
func seqReport(id string, seq uint64, cpu uint32) *pb.Envelope {
	env := report(id, cpu)
	env.Seq = seq
	return env
}

func seqRanges(rs ...[2]uint64) []*pb.SeqRange {
	out := make([]*pb.SeqRange, len(rs))
	for i, r := range rs {
		out[i] = &pb.SeqRange{First: r[0], Last: r[1]}
	}
	return out
}

// awaitAck reads the node's down topic until an Ack equal to want
// arrives, skipping Welcomes and other Acks (the client delivers messages
// concurrently, in any order).
func (s *sim) awaitAck(t testing.TB, want *pb.Ack) {
	t.Helper()
	s.await(t, "ack "+fmt.Sprint(want), func(env *pb.Envelope) bool {
		return env.GetAck() != nil && proto.Equal(env.GetAck(), want)
	})
}

// awaitWelcome reads the node's down topic until a Welcome arrives and
// returns it. The client delivers messages concurrently, in any order:
// a test that wants a particular Welcome has none other in flight.
func (s *sim) awaitWelcome(t testing.TB) *pb.Welcome {
	t.Helper()
	var w *pb.Welcome
	s.await(t, "a welcome", func(env *pb.Envelope) bool { w = env.GetWelcome(); return w != nil })
	return w
}

func (s *sim) await(t testing.TB, what string, match func(*pb.Envelope) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var got []string
	for {
		select {
		case env := <-s.down:
			if match(env) {
				return
			}
			got = append(got, protocol.BodyName(env)+" "+fmt.Sprint(env.GetAck(), env.GetWelcome()))
		case <-deadline:
			t.Fatalf("node %s: no %s within 10s; received %v", s.id, what, got)
		}
	}
}

func TestAcksInOrder(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	truck := connect(t, "tls://"+b.MQTTAddr(), "truck-1", p.clientTLS(t, "truck-1"))
	truck.send(t, outboxHello("truck-1", "ob-1", 0, 0, 0))
	if w := truck.awaitWelcome(t); w.GetWatermark() != 0 || len(w.GetApplied()) != 0 {
		t.Errorf("first contact welcome = %v, want watermark 0 and nothing applied", w)
	}
	const n = 20
	for seq := range uint64(n) {
		truck.send(t, seqReport("truck-1", seq+1, uint32(seq+1)))
	}
	truck.awaitAck(t, &pb.Ack{Cumulative: n, OutboxId: "ob-1"})

	var raw struct {
		Applied  map[string]any `json:"applied"`
		Counters map[string]any `json:"counters"`
	}
	getJSON(t, b, "/api/v1/nodes/truck-1", &raw)
	wantApplied := map[string]any{"outboxId": "ob-1", "watermark": float64(n), "ranges": []any{}}
	if diff := cmp.Diff(wantApplied, raw.Applied); diff != "" {
		t.Errorf(`node JSON "applied" (-want +got):\n%s`, diff)
	}
	if raw.Counters["applied"] != float64(n) || raw.Counters["duplicates"] != float64(0) {
		t.Errorf("node JSON counters = %v, want applied %d, duplicates 0", raw.Counters, n)
	}
	if got := metric(t, b, "skyedge_bridge_acks_sent_total"); got < 1 || got > n {
		t.Errorf("skyedge_bridge_acks_sent_total = %v, want 1..%d (coalesced per flush)", got, n)
	}
}

func TestDuplicatesAreAckedNotApplied(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	node := connect(t, "tls://"+b.MQTTAddr(), "sat-1", p.clientTLS(t, "sat-1"))
	node.send(t, outboxHello("sat-1", "ob-1", 0, 0, 0))
	for seq := range uint64(3) {
		node.send(t, seqReport("sat-1", seq+1, uint32(100+seq+1)))
	}
	node.awaitAck(t, &pb.Ack{Cumulative: 3, OutboxId: "ob-1"})

	// The same seq again, as after a lost ack: acknowledged again.
	node.send(t, seqReport("sat-1", 2, 999))
	node.awaitAck(t, &pb.Ack{Cumulative: 3, OutboxId: "ob-1"})
	// A batch overlapping what was applied.
	node.send(t, &pb.Envelope{NodeId: "sat-1", Body: &pb.Envelope_Batch{Batch: &pb.Batch{Envelopes: []*pb.Envelope{
		seqReport("sat-1", 2, 998), seqReport("sat-1", 3, 997), seqReport("sat-1", 4, 104), seqReport("sat-1", 5, 105),
	}}}})
	node.awaitAck(t, &pb.Ack{Cumulative: 5, OutboxId: "ob-1"})

	n, _ := getNode(t, b, "sat-1")
	if n.Counters.Applied != 5 || n.Counters.Duplicates != 3 {
		t.Errorf("counters = %+v, want 5 applied, 3 duplicates", n.Counters)
	}
	if n.LastReport == nil || n.LastReport.CPUPermille != 105 {
		t.Errorf("last report = %+v, want seq 5's (cpu 105): a duplicate was applied", n.LastReport)
	}
	if got := metric(t, b, "skyedge_bridge_duplicates_total"); got != 3 {
		t.Errorf("skyedge_bridge_duplicates_total = %v, want 3", got)
	}
}

func TestOutOfOrderAndSettledSeqs(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	node := connect(t, "tls://"+b.MQTTAddr(), "van-1", p.clientTLS(t, "van-1"))
	node.send(t, outboxHello("van-1", "ob-1", 1, 6, 6))
	node.awaitWelcome(t)

	// Control traffic drains before telemetry: 5 and 6 first.
	event := func(seq uint64) *pb.Envelope {
		return &pb.Envelope{NodeId: "van-1", Seq: seq, SentAtMs: time.Now().UnixMilli(),
			Body: &pb.Envelope_Event{Event: &pb.Event{Severity: pb.Event_SEVERITY_ALARM, Kind: "door.open"}}}
	}
	node.send(t, event(5))
	node.send(t, event(6))
	node.awaitAck(t, &pb.Ack{Cumulative: 0, Ranges: seqRanges([2]uint64{5, 6}), OutboxId: "ob-1"})
	for seq := range uint64(4) {
		node.send(t, seqReport("van-1", seq+1, 1))
	}
	node.awaitAck(t, &pb.Ack{Cumulative: 6, OutboxId: "ob-1"})

	// A gap settles the telemetry the node dropped (7, 8).
	node.send(t, &pb.Envelope{NodeId: "van-1", Seq: 9, Body: &pb.Envelope_Gap{Gap: &pb.Gap{
		Class: "telemetry", Dropped: 2, Reason: "quota", Seqs: seqRanges([2]uint64{7, 8})}}})
	node.awaitAck(t, &pb.Ack{Cumulative: 9, OutboxId: "ob-1"})
	// A summary settles the reports it replaces (10..12).
	node.send(t, &pb.Envelope{NodeId: "van-1", Seq: 13, Body: &pb.Envelope_Summary{Summary: &pb.TelemetrySummary{
		Samples: 3, Covers: seqRanges([2]uint64{10, 12})}}})
	node.awaitAck(t, &pb.Ack{Cumulative: 13, OutboxId: "ob-1"})
	if n, _ := getNode(t, b, "van-1"); n.Counters.Applied != 8 || n.Counters.Duplicates != 0 {
		t.Errorf("counters = %+v, want 8 applied (2 events, 4 reports, a gap, a summary) and no duplicate", n.Counters)
	}
}

func TestAppliedSetSurvivesRestart(t *testing.T) {
	p := newPKI(t)
	cfg := embeddedConfig(t, p)
	b := start(t, cfg)
	node := connect(t, "tls://"+b.MQTTAddr(), "plant-7", p.clientTLS(t, "plant-7"))
	node.send(t, outboxHello("plant-7", "ob-1", 0, 0, 0))
	for _, seq := range []uint64{1, 2, 3, 4, 5, 8} {
		node.send(t, seqReport("plant-7", seq, uint32(seq)))
	}
	node.awaitAck(t, &pb.Ack{Cumulative: 5, Ranges: seqRanges([2]uint64{8, 8}), OutboxId: "ob-1"})
	node.client.Disconnect(0)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}

	b2 := start(t, cfg)
	node = connect(t, "tls://"+b2.MQTTAddr(), "plant-7", p.clientTLS(t, "plant-7"))
	// The agent deleted what was acknowledged and still holds 6 and 7.
	node.send(t, outboxHello("plant-7", "ob-1", 6, 7, 8))
	w := node.awaitWelcome(t)
	if want := seqRanges([2]uint64{8, 8}); w.GetWatermark() != 5 || !proto.Equal(&pb.Ack{Ranges: w.GetApplied()}, &pb.Ack{Ranges: want}) {
		t.Errorf("welcome after the restart = %v, want watermark 5 and 8 applied", w)
	}
	// Resends of what was applied before the restart are duplicates.
	node.send(t, seqReport("plant-7", 3, 333))
	node.send(t, seqReport("plant-7", 8, 888))
	node.send(t, seqReport("plant-7", 6, 6))
	node.send(t, seqReport("plant-7", 7, 7))
	node.awaitAck(t, &pb.Ack{Cumulative: 8, OutboxId: "ob-1"})
	if n, _ := getNode(t, b2, "plant-7"); n.Counters.Applied != 8 || n.Counters.Duplicates != 2 {
		t.Errorf("counters after the restart = %+v, want 8 applied and 2 duplicates", n.Counters)
	}
}

// TestAckWaitsForTheFlush drives the registry's flushes by hand (a fake
// clock) and checks that nothing is acknowledged before the flush that
// writes it, and that what was acknowledged is in the store.
func TestAckWaitsForTheFlush(t *testing.T) {
	p := newPKI(t)
	cfg := embeddedConfig(t, p)
	clk := clock.NewFake(time.Now())
	cfg.Clock = clk
	cfg.FlushInterval = time.Second
	b := start(t, cfg)
	node := connect(t, "tls://"+b.MQTTAddr(), "buoy-1", p.clientTLS(t, "buoy-1"))
	node.send(t, outboxHello("buoy-1", "ob-1", 0, 0, 0))
	for seq := range uint64(3) {
		node.send(t, seqReport("buoy-1", seq+1, 1))
	}
	if n, _ := getNode(t, b, "buoy-1"); n.Counters.Applied != 3 {
		t.Fatalf("applied = %d after the PUBACKs, want 3", n.Counters.Applied)
	}
	select {
	case env := <-node.down:
		t.Fatalf("node received %v before any flush", env)
	case <-time.After(300 * time.Millisecond):
	}
	// The flusher may not have started its ticker yet: advance until the
	// ack comes.
	deadline := time.Now().Add(10 * time.Second)
	for acked := false; !acked; {
		clk.Advance(cfg.FlushInterval)
		select {
		case env := <-node.down:
			if a := env.GetAck(); a != nil {
				if a.GetCumulative() != 3 {
					t.Fatalf("ack after the flush = %v, want cumulative 3", a)
				}
				acked = true
			}
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no ack within 10s of advancing the clock")
		}
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(cfg.DataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := registry.Open(registry.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := reg.Get("buoy-1"); n.Applied.OutboxID != "ob-1" || n.Applied.Watermark < 3 {
		t.Errorf("stored applied set = %+v, want outbox ob-1 holding the acknowledged 1..3", n.Applied)
	}
}

func TestOutboxChangeResetsTheSet(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	node := connect(t, "tls://"+b.MQTTAddr(), "drone-1", p.clientTLS(t, "drone-1"))
	node.send(t, outboxHello("drone-1", "ob-1", 0, 0, 0))
	node.awaitWelcome(t) // before anything else is sent: the only one in flight
	for seq := range uint64(5) {
		node.send(t, seqReport("drone-1", seq+1, 1))
	}
	node.awaitAck(t, &pb.Ack{Cumulative: 5, OutboxId: "ob-1"})

	steps := []struct {
		name     string
		hello    *pb.Envelope
		wantMark uint64 // of the fresh set: what lies below the outbox's first seq
		wantLog  []string
	}{
		{"new outbox ID", outboxHello("drone-1", "ob-2", 3, 3, 3), 2, []string{"outbox recreated", "level=INFO"}},
		{"same ID, next_seq below what was applied", outboxHello("drone-1", "ob-2", 2, 2, 2), 1, []string{"lost its outbox state", "level=WARN"}},
	}
	applied := uint64(5)
	for _, s := range steps {
		node.send(t, s.hello)
		if w := node.awaitWelcome(t); w.GetWatermark() != s.wantMark || len(w.GetApplied()) != 0 {
			t.Errorf("%s: welcome = %v, want a fresh set with watermark %d", s.name, w, s.wantMark)
		}
		if got := b.logs.count(s.wantLog...); got != 1 {
			t.Errorf("%s: %d log lines with %q, want 1", s.name, got, s.wantLog)
		}
		// The outbox's first seq is new in the fresh set, not a duplicate.
		node.send(t, seqReport("drone-1", s.wantMark+1, 1))
		node.awaitAck(t, &pb.Ack{Cumulative: s.wantMark + 1, OutboxId: "ob-2"})
		applied++
		n, _ := getNode(t, b, "drone-1")
		if n.Counters.Applied != applied || n.Counters.Duplicates != 0 || n.Applied.OutboxID != "ob-2" {
			t.Errorf("%s: counters %+v, outbox %q; want %d applied, no duplicate, outbox ob-2", s.name, n.Counters, n.Applied.OutboxID, applied)
		}
	}
}

func TestExternalAcks(t *testing.T) {
	p := newPKI(t)
	m := startMosquitto(t, p)
	b := start(t, externalConfig(t, p, m, "bridge-a"))
	node := connect(t, "tls://"+m.Addr, "ship-1", p.clientTLS(t, "ship-1"))
	node.send(t, outboxHello("ship-1", "ob-1", 0, 0, 0))
	node.awaitWelcome(t)
	for seq := range uint64(10) {
		node.send(t, seqReport("ship-1", seq+1, 1))
	}
	node.awaitAck(t, &pb.Ack{Cumulative: 10, OutboxId: "ob-1"})
	node.send(t, seqReport("ship-1", 4, 1))
	node.awaitAck(t, &pb.Ack{Cumulative: 10, OutboxId: "ob-1"})
	eventually(t, 5*time.Second, func() string {
		if n, _ := getNode(t, b, "ship-1"); n.Counters.Applied != 10 || n.Counters.Duplicates != 1 {
			return fmt.Sprintf("counters through mosquitto = %+v, want 10 applied, 1 duplicate", n.Counters)
		}
		return ""
	})
}

// TestWelcomeCarriesWhatTheShutdownFlushWrote stops the bridge before any
// periodic flush: the final flush writes the applied set, the endpoint is
// already gone so the node hears no ack, and the next bridge's Welcome
// tells it instead.
func TestWelcomeCarriesWhatTheShutdownFlushWrote(t *testing.T) {
	p := newPKI(t)
	cfg := embeddedConfig(t, p)
	cfg.Clock = clock.NewFake(time.Now()) // no periodic flush
	cfg.FlushInterval = time.Second
	b := start(t, cfg)
	node := connect(t, "tls://"+b.MQTTAddr(), "rig-1", p.clientTLS(t, "rig-1"))
	node.send(t, outboxHello("rig-1", "ob-1", 0, 0, 0))
	for seq := range uint64(4) {
		node.send(t, seqReport("rig-1", seq+1, 1))
	}
	if err := b.stop(); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	select {
	case env := <-node.down:
		t.Errorf("node received %v from a bridge that was stopping", env)
	default:
	}
	node.client.Disconnect(0)

	cfg.Clock, cfg.FlushInterval = clock.Real, 20*time.Millisecond
	b2 := start(t, cfg)
	node = connect(t, "tls://"+b2.MQTTAddr(), "rig-1", p.clientTLS(t, "rig-1"))
	node.send(t, outboxHello("rig-1", "ob-1", 1, 4, 4))
	if w := node.awaitWelcome(t); w.GetWatermark() != 4 {
		t.Errorf("welcome after the restart = %v, want watermark 4", w)
	}
	// What the agent resends anyway is not applied twice.
	node.send(t, seqReport("rig-1", 2, 1))
	node.awaitAck(t, &pb.Ack{Cumulative: 4, OutboxId: "ob-1"})
	if n, _ := getNode(t, b2, "rig-1"); n.Counters.Applied != 4 || n.Counters.Duplicates != 1 {
		t.Errorf("counters = %+v, want 4 applied and 1 duplicate", n.Counters)
	}
}
