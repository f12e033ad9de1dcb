package outboxtest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func testAppendStamps(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	h.Clk.Advance(time.Hour)
	unstamped := Event(Start, "boot", false)
	unstamped.SentAtMs = 0
	stamped := Report(Start.Add(time.Minute), 1)
	if seq := h.Append(unstamped); seq != 1 || unstamped.GetSeq() != 1 {
		t.Errorf("first Append() = %d, env.Seq = %d, want 1 and 1", seq, unstamped.GetSeq())
	}
	if got, want := unstamped.GetSentAtMs(), h.Clk.Now().UnixMilli(); got != want {
		t.Errorf("Append() stamped SentAtMs = %d, want the clock's %d", got, want)
	}
	if seq := h.Append(stamped); seq != 2 {
		t.Errorf("second Append() = %d, want 2", seq)
	}
	if got, want := stamped.GetSentAtMs(), Start.Add(time.Minute).UnixMilli(); got != want {
		t.Errorf("Append() changed SentAtMs to %d, want it kept at %d", got, want)
	}
	all := h.All()
	if len(all) != 2 {
		t.Fatalf("Pending() returned %d items, want 2", len(all))
	}
	for _, d := range all {
		want := unstamped
		if d.Seq == 2 {
			want = stamped
		}
		if diff := cmp.Diff(want, d.Env, protocmp.Transform()); diff != "" {
			t.Errorf("pending item %d (-appended +stored):\n%s", d.Seq, diff)
		}
		if !d.ProducedAt.Equal(time.UnixMilli(want.GetSentAtMs())) {
			t.Errorf("item %d ProducedAt = %v, want %v", d.Seq, d.ProducedAt, time.UnixMilli(want.GetSentAtMs()))
		}
	}
	st := h.Q.State()
	if st.NextSeq != 3 || st.FirstSeq != 1 || st.LastSeq != 2 {
		t.Errorf("State() seqs = next %d first %d last %d, want 3 1 2", st.NextSeq, st.FirstSeq, st.LastSeq)
	}
	if c := st.Classes[outbox.Event]; c.Count != 1 || c.Appended != 1 || c.Bytes <= int64(len(all[0].Payload)) {
		t.Errorf("State() event class = %+v, want 1 item of more than its %d payload bytes", c, len(all[0].Payload))
	}
}

func testNotQueued(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	bodies := []*pb.Envelope{
		{NodeId: NodeID, Body: &pb.Envelope_Hello{Hello: &pb.Hello{}}},
		{NodeId: NodeID, Body: &pb.Envelope_Goodbye{Goodbye: &pb.Goodbye{}}},
		{NodeId: NodeID, Body: &pb.Envelope_Ack{Ack: &pb.Ack{}}},
		{NodeId: NodeID, Body: &pb.Envelope_Batch{Batch: &pb.Batch{}}},
		{NodeId: NodeID},
	}
	for _, env := range bodies {
		if _, err := h.Q.Append(ctxb(), env); !errors.Is(err, outbox.ErrNotQueued) {
			t.Errorf("Append(%v) error = %v, want ErrNotQueued", env, err)
		}
		if env.GetSeq() != 0 {
			t.Errorf("rejected Append stamped seq %d", env.GetSeq())
		}
	}
	if st := h.Q.State(); st.NextSeq != 1 || st.LastSeq != 0 {
		t.Errorf("State() after rejected appends = next %d last %d, want 1 and 0", st.NextSeq, st.LastSeq)
	}
}

func testDrainOrder(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	envs := []*pb.Envelope{
		Report(Start, 0),                // 1 telemetry
		Event(Start, "a", false),        // 2 event
		Report(Start, 1),                // 3 telemetry
		Event(Start, "disk.full", true), // 4 control (alarm)
		Event(Start, "b", false),        // 5 event
		{NodeId: NodeID, SentAtMs: 1, Body: &pb.Envelope_Gap{Gap: &pb.Gap{Class: "telemetry", Dropped: 1}}}, // 6 control
		Report(Start, 2), // 7 telemetry
	}
	for i, env := range envs {
		if seq := h.Append(env); seq != uint64(i+1) {
			t.Fatalf("Append #%d = %d, want %d", i, seq, i+1)
		}
	}
	want := []uint64{4, 6, 2, 5, 1, 3, 7}
	if diff := cmp.Diff(want, Seqs(h.All())); diff != "" {
		t.Errorf("drain order (-want +got):\n%s", diff)
	}
}

func appendN(h *Harness, n int) {
	for i := range n {
		h.Append(Report(Start, i))
	}
}

func testAck(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	appendN(h, 14)
	if err := h.Q.Ack(ctxb(), 3, []acks.Range{{First: 9, Last: 12}, {First: 5, Last: 6}, {First: 13, Last: 100}}); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	want := []uint64{4, 7, 8}
	if diff := cmp.Diff(want, Seqs(h.All())); diff != "" {
		t.Errorf("pending after Ack(3, [5-6 9-12 13-100]) (-want +got):\n%s", diff)
	}
	st := h.Q.State()
	if c := st.Classes[outbox.Telemetry]; c.Count != 3 || st.FirstSeq != 4 || st.LastSeq != 8 {
		t.Errorf("State() = count %d first %d last %d, want 3 4 8", c.Count, st.FirstSeq, st.LastSeq)
	}
	// Acking again, and acking a range that overlaps what is gone, is harmless.
	if err := h.Q.Ack(ctxb(), 4, []acks.Range{{First: 1, Last: 7}}); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	if diff := cmp.Diff([]uint64{8}, Seqs(h.All())); diff != "" {
		t.Errorf("pending after Ack(4, [1-7]) (-want +got):\n%s", diff)
	}
	if err := h.Q.Ack(ctxb(), 8, nil); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	st = h.Q.State()
	if st.FirstSeq != 0 || st.LastSeq != 0 || st.Classes[outbox.Telemetry].Bytes != 0 || st.NextSeq != 15 {
		t.Errorf("State() after acking everything = %+v, want empty with NextSeq 15", st)
	}
}

func testAckUnknown(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	if err := h.Q.Ack(ctxb(), 1000, []acks.Range{{First: 2000, Last: 3000}, {First: 0, Last: 0}, {First: 9, Last: 3}}); err != nil {
		t.Fatalf("Ack() on an empty queue error = %v", err)
	}
	appendN(h, 3)
	if err := h.Q.Ack(ctxb(), 0, []acks.Range{{First: 50, Last: 60}}); err != nil {
		t.Fatalf("Ack() of unknown seqs error = %v", err)
	}
	if got := len(h.All()); got != 3 {
		t.Errorf("after acking unknown seqs %d items pending, want 3", got)
	}
	if err := h.Q.Ack(ctxb(), ^uint64(0), nil); err != nil {
		t.Fatalf("Ack(max) error = %v", err)
	}
	if got := len(h.All()); got != 0 {
		t.Errorf("after Ack(max) %d items pending, want 0", got)
	}
}

func testCursorPaging(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	var want []uint64
	var events, reports []uint64
	for i := range 20 {
		if i%3 == 0 {
			events = append(events, h.Append(Event(Start, "e", false)))
		} else {
			reports = append(reports, h.Append(Report(Start, i)))
		}
	}
	want = append(append(want, events...), reports...)
	var got []uint64
	var cur outbox.Cursor
	for page := 0; ; page++ {
		items, next, err := h.Q.Pending(ctxb(), cur, 3, 1<<20)
		if err != nil {
			t.Fatalf("Pending() error = %v", err)
		}
		if len(items) > 3 {
			t.Fatalf("Pending(max 3) returned %d items", len(items))
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			got = append(got, it.Seq)
		}
		cur = next
		if page == 2 {
			// A control message appended mid-drain comes first on the next
			// page even though the cursor has moved on.
			alarm := h.Append(Event(Start, "alarm", true))
			want = slices.Insert(want, len(got), alarm)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged drain (-want +got):\n%s", diff)
	}
	// Items stay pending until acked: a zero cursor reads them again.
	if n := len(h.All()); n != len(want) {
		t.Errorf("re-reading from the zero cursor gave %d items, want %d", n, len(want))
	}
	items, _, err := h.Q.Pending(ctxb(), outbox.Cursor{}, 0, 1<<20)
	if err != nil || len(items) != 0 {
		t.Errorf("Pending(maxItems 0) = %d items, %v; want none", len(items), err)
	}
}

func testPendingMaxBytes(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	appendN(h, 10)
	all := h.All()
	one := len(all[0].Payload)
	items, _, err := h.Q.Pending(ctxb(), outbox.Cursor{}, 100, 1)
	if err != nil {
		t.Fatalf("Pending() error = %v", err)
	}
	if len(items) != 1 {
		t.Errorf("Pending(maxBytes 1) returned %d items, want the first one alone", len(items))
	}
	items, _, err = h.Q.Pending(ctxb(), outbox.Cursor{}, 100, 3*one+one/2)
	if err != nil {
		t.Fatalf("Pending() error = %v", err)
	}
	total := 0
	for _, it := range items {
		total += len(it.Payload)
	}
	if len(items) < 2 || total > 3*one+one/2 {
		t.Errorf("Pending(maxBytes %d) returned %d items of %d bytes", 3*one+one/2, len(items), total)
	}
}

func testConcurrent(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	const writers, each = 8, 150
	seqs := make([][]uint64, writers)
	runConcurrently(writers, func(w int) {
		for i := range each {
			env := Report(Start, i)
			if i%5 == 0 {
				env = Event(Start, "e", i%10 == 0)
			}
			seq, err := h.Q.Append(ctxb(), env)
			if err != nil {
				t.Errorf("Append() error = %v", err)
				return
			}
			seqs[w] = append(seqs[w], seq)
		}
	})
	var all []uint64
	for w, s := range seqs {
		if !slices.IsSorted(s) {
			t.Errorf("writer %d got decreasing seqs", w)
		}
		all = append(all, s...)
	}
	slices.Sort(all)
	for i, s := range all {
		if s != uint64(i+1) {
			t.Fatalf("seqs are not 1..%d without holes or repeats: position %d holds %d", len(all), i, s)
		}
	}
	got := h.All()
	if len(got) != writers*each {
		t.Fatalf("Pending() has %d items, want %d", len(got), writers*each)
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.Class > b.Class || a.Class == b.Class && a.Seq >= b.Seq {
			t.Fatalf("drain order broken at %d: %s/%d then %s/%d", i, a.Class, a.Seq, b.Class, b.Seq)
		}
	}
}

func testClosed(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	h.Append(Report(Start, 0))
	if err := h.Q.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	if _, err := h.Q.Append(ctxb(), Report(Start, 1)); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Append() after Close error = %v, want ErrClosed", err)
	}
	if _, _, err := h.Q.Pending(ctxb(), outbox.Cursor{}, 10, 1000); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Pending() after Close error = %v, want ErrClosed", err)
	}
	if err := h.Q.Ack(ctxb(), 1, nil); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Ack() after Close error = %v, want ErrClosed", err)
	}
	if err := h.Q.Close(); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("second Close() error = %v, want ErrClosed", err)
	}
	if err := h.Q.Run(ctxb()); err != nil {
		t.Errorf("Run() after Close = %v, want nil at once", err)
	}
}
