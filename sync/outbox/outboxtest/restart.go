package outboxtest

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/faultyq"
)

func skipUnlessPersistent(t *testing.T, impl Impl) {
	if impl.NotPersistent != "" {
		t.Skip("restart case: " + impl.NotPersistent)
	}
}

func testRestartPending(t *testing.T, impl Impl) {
	skipUnlessPersistent(t, impl)
	h := NewHarness(t, impl, nil)
	for i := range 30 {
		switch i % 4 {
		case 0:
			h.Append(Event(Start, "e", false))
		case 1:
			h.Append(Event(Start, "a", true))
		default:
			h.Append(Report(Start, i))
		}
	}
	if err := h.Q.Ack(ctxb(), 4, []acks.Range{{First: 10, Last: 12}}); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	before, stBefore := h.All(), h.Q.State()
	h.Reopen()
	after, stAfter := h.All(), h.Q.State()
	if diff := cmp.Diff(before, after, protocmp.Transform()); diff != "" {
		t.Errorf("pending after restart (-before +after):\n%s", diff)
	}
	for _, c := range outbox.Classes {
		b, a := stBefore.Classes[c], stAfter.Classes[c]
		if a.Count != b.Count || a.Bytes != b.Bytes || a.FirstSeq != b.FirstSeq || a.LastSeq != b.LastSeq {
			t.Errorf("%s after restart = %+v, want the figures of before %+v", c, a, b)
		}
	}
	if stAfter.NextSeq != stBefore.NextSeq || stAfter.FirstSeq != 5 || stAfter.LastSeq != 30 {
		t.Errorf("State() after restart = next %d first %d last %d, want %d 5 30", stAfter.NextSeq, stAfter.FirstSeq, stAfter.LastSeq, stBefore.NextSeq)
	}
}

func testRestartSeq(t *testing.T, impl Impl) {
	skipUnlessPersistent(t, impl)
	h := NewHarness(t, impl, nil)
	appendN(h, 10)
	h.Append(Event(Start, "e", false))
	// Everything acknowledged and deleted: only the persisted counter
	// remembers 11 was used.
	if err := h.Q.Ack(ctxb(), 11, nil); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	h.Reopen()
	if seq := h.Append(Report(Start, 0)); seq != 12 {
		t.Errorf("first Append() after restart = %d, want 12", seq)
	}
	h.Reopen()
	if seq := h.Append(Event(Start, "e", false)); seq != 13 {
		t.Errorf("first Append() after a second restart = %d, want 13", seq)
	}
	if st := h.Q.State(); st.NextSeq != 14 {
		t.Errorf("State().NextSeq = %d, want 14", st.NextSeq)
	}
}

func testRestartGaps(t *testing.T, impl Impl) {
	skipUnlessPersistent(t, impl)
	h := dropOldestHarness(t, impl, 10)
	seqs := appendEvents(t, h, 0, 40)
	before := Gaps(h.All())
	h.Reopen()
	all := h.All()
	if diff := cmp.Diff(before, Gaps(all), protocmp.Transform()); diff != "" {
		t.Errorf("gap markers after restart (-before +after):\n%s", diff)
	}
	seqs = append(seqs, appendEvents(t, h, 40, 40)...)
	all = h.All()
	if n := len(Gaps(all)); n != 2 {
		t.Errorf("%d gap markers, want the old one and a new one", n)
	}
	CheckSettled(t, all, seqs, h.Q.State().NextSeq)
}

// testOutboxID checks the ID of the sequence space: set at creation, kept
// across a restart (when the queue is persistent), different for a new
// store.
func testOutboxID(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	id := h.Q.State().ID
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("State().ID = %q, want 16 hex digits", id)
	}
	h.Append(Report(Start, 0))
	if impl.NotPersistent == "" {
		h.Reopen()
		if got := h.Q.State().ID; got != id {
			t.Errorf("State().ID after restart = %q, want %q", got, id)
		}
	}
	if other := NewHarness(t, impl, nil).Q.State().ID; other == id || other == "" {
		t.Errorf("State().ID of a new store = %q, want one other than %q", other, id)
	}
}

func testFaultsLostReplies(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	fq := faultyq.New(h.Q)
	appendN(h, 6)
	// The ack is applied but its reply lost: retrying is harmless.
	fq.FailAfter(faultyq.OpAck, errInjected, 1)
	if err := fq.Ack(ctxb(), 3, nil); !errors.Is(err, errInjected) {
		t.Fatalf("Ack() error = %v, want the injected fault", err)
	}
	if err := fq.Ack(ctxb(), 3, nil); err != nil {
		t.Fatalf("retried Ack() error = %v", err)
	}
	if diff := cmp.Diff([]uint64{4, 5, 6}, Seqs(h.All())); diff != "" {
		t.Errorf("pending after a lost and a retried ack (-want +got):\n%s", diff)
	}
	// An append whose reply is lost is stored; a retry is a new message
	// with the next number, never a reuse.
	fq.FailAfter(faultyq.OpAppend, errInjected, 1)
	if _, err := fq.Append(ctxb(), Report(Start, 7)); !errors.Is(err, errInjected) {
		t.Fatalf("Append() error = %v, want the injected fault", err)
	}
	seq, err := fq.Append(ctxb(), Report(Start, 7))
	if err != nil || seq != 8 {
		t.Errorf("retried Append() = %d, %v; want 8, nil", seq, err)
	}
	if calls, failed := fq.Calls(faultyq.OpAppend); calls != 2 || failed != 1 {
		t.Errorf("Calls(append) = %d, %d failed; want 2, 1", calls, failed)
	}
}

func testFaultsBeforeCall(t *testing.T, impl Impl) {
	h := NewHarness(t, impl, nil)
	fq := faultyq.New(h.Q)
	appendN(h, 3)
	fq.FailNext(faultyq.OpPending, errInjected, 2)
	cur := outbox.Cursor{After: [outbox.NumClasses]uint64{outbox.Telemetry: 1}}
	for i := range 2 {
		items, got, err := fq.Pending(ctxb(), cur, 10, 1<<20)
		if !errors.Is(err, errInjected) || len(items) != 0 || got != cur {
			t.Fatalf("Pending() #%d = %d items, cursor %v, %v; want the fault and the cursor unchanged", i, len(items), got, err)
		}
	}
	items, _, err := fq.Pending(ctxb(), cur, 10, 1<<20)
	if err != nil || len(items) != 2 {
		t.Fatalf("Pending() after the faults = %d items, %v; want 2", len(items), err)
	}
	fq.FailNext(faultyq.OpAppend, errInjected, 1)
	env := Event(Start, "e", false)
	if _, err := fq.Append(ctxb(), env); !errors.Is(err, errInjected) || env.GetSeq() != 0 {
		t.Fatalf("Append() = seq %d, %v; want the fault and no seq", env.GetSeq(), err)
	}
	if seq, err := fq.Append(ctxb(), env); err != nil || seq != 4 {
		t.Errorf("Append() after the fault = %d, %v; want 4 (no number lost)", seq, err)
	}
	fq.Fail(faultyq.OpAck, errInjected)
	for range 3 {
		if err := fq.Ack(ctxb(), 4, nil); !errors.Is(err, errInjected) {
			t.Fatalf("Ack() error = %v, want the fault until healed", err)
		}
	}
	if n := len(h.All()); n != 4 {
		t.Errorf("%d items pending after failed acks, want 4", n)
	}
	fq.Heal()
	if err := fq.Ack(ctxb(), 4, nil); err != nil {
		t.Fatalf("Ack() after Heal error = %v", err)
	}
	if n := len(h.All()); n != 0 {
		t.Errorf("%d items pending after the healed ack, want 0", n)
	}
}
