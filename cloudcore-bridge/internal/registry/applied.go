package registry

import (
	"encoding/json"

	"github.com/skyedge/skyedge/sync/acks"
)

// MaxAppliedRanges bounds the ranges above the watermark that a node's
// applied set keeps. Ranges appear when messages arrive out of order (an
// agent drains its control class before its telemetry) and are absorbed
// as the holes fill; a node that leaves more holes than this has the
// highest ranges forgotten (see acks.Set), which can only make the bridge
// apply a resent message twice, never lose one. 256 ranges stay a few
// kilobytes in the node's record and in an Ack.
const MaxAppliedRanges = 256

// Applied is a node's applied set: which of its durable messages (by
// sequence number) the bridge has applied or settled, in one outbox's
// sequence space. It is stored in the node's record, so that it is
// written atomically with what it describes, and served by the API as
//
//	"applied": {"outboxId": "...", "watermark": N, "ranges": [[a, b], ...]}
type Applied struct {
	// OutboxID is the agent's outbox the sequence numbers belong to
	// (Hello.outbox_id); empty until a hello names one.
	OutboxID string `json:"outboxId"`
	// Watermark is the highest sequence number n such that 1..n are all
	// applied or settled.
	Watermark uint64 `json:"watermark"`
	// Ranges are the inclusive ranges applied above Watermark, in order.
	Ranges SeqRanges `json:"ranges"`
	// Forgotten counts sequence numbers dropped from Ranges to stay within
	// MaxAppliedRanges, since the set was started.
	Forgotten uint64 `json:"forgotten,omitempty"`
}

// SeqRanges are inclusive sequence ranges, in JSON [[first, last], ...]
// ([] when empty).
type SeqRanges [][2]uint64

// MarshalJSON writes [] for no ranges.
func (r SeqRanges) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("[]"), nil
	}
	return json.Marshal([][2]uint64(r))
}

// Acks converts r to acks ranges.
func (r SeqRanges) Acks() []acks.Range {
	out := make([]acks.Range, len(r))
	for i, x := range r {
		out[i] = acks.Range{First: x[0], Last: x[1]}
	}
	return out
}

// appliedState is the live side of Applied, kept next to the record and
// changed in place under the shard's lock: dedupe is on every message's
// path, so it must not copy the set each time.
type appliedState struct {
	set *acks.Set
	// forgotten is Applied.Forgotten when set was built.
	forgotten uint64
	// stale: Applied does not reflect set yet.
	stale bool
	// ackDue: the set changed, or a duplicate arrived, since the last
	// flush; welcomeDue: a hello waits for its Welcome.
	ackDue, welcomeDue bool
}

// appliedSet returns the node's live applied set, building it from
// Applied the first time.
func (n *Node) appliedSet() *acks.Set {
	if n.applied.set == nil {
		s := acks.NewSet(n.Applied.Watermark, MaxAppliedRanges)
		for _, r := range n.Applied.Ranges {
			s.AddRange(r[0], r[1])
		}
		n.applied.set, n.applied.forgotten = s, n.Applied.Forgotten
	}
	return n.applied.set
}

// MarkApplied records durable message seq as applied and reports whether
// it is new; false means a duplicate that must not be applied again. Either
// way the node's next flush acknowledges it (a duplicate usually means the
// node missed an ack). seq 0 (not sequenced) is never recorded and reports
// true. Call it inside Update.
func (n *Node) MarkApplied(seq uint64) bool {
	if seq == 0 {
		return true
	}
	n.applied.ackDue = true
	if !n.appliedSet().Add(seq) {
		return false
	}
	n.applied.stale = true
	return true
}

// HasApplied reports whether durable message seq is in the applied set,
// without recording anything. Call it inside Update or View.
func (n *Node) HasApplied(seq uint64) bool {
	return seq != 0 && n.appliedSet().Contains(seq)
}

// Settle adds [first, last] to the applied set without applying anything:
// sequence numbers that will never arrive (dropped by the node, replaced
// by a summary, or deleted from its outbox). Call it inside Update.
func (n *Node) Settle(first, last uint64) {
	if n.appliedSet().AddRange(first, last) > 0 {
		n.applied.stale, n.applied.ackDue = true, true
	}
}

// AppliedOutbox is the outbox ID of the node's applied set. Call it inside
// Update or View.
func (n *Node) AppliedOutbox() string { return n.Applied.OutboxID }

// AppliedWatermark is the applied set's cumulative watermark. Call it
// inside Update.
func (n *Node) AppliedWatermark() uint64 { return n.appliedSet().Cumulative() }

// AppliedTop is the highest sequence number in the applied set (0 when it
// is empty). Call it inside Update.
func (n *Node) AppliedTop() uint64 {
	s := n.appliedSet()
	if k := s.NumRanges(); k > 0 {
		return s.Ranges()[k-1].Last
	}
	return s.Cumulative()
}

// ResetApplied starts a new, empty applied set for the outbox outboxID.
// Call it inside Update.
func (n *Node) ResetApplied(outboxID string) {
	n.Applied = Applied{OutboxID: outboxID}
	n.applied.set = acks.NewSet(0, MaxAppliedRanges)
	// What was due to the old outbox means nothing to the new one.
	n.applied.forgotten, n.applied.stale, n.applied.ackDue = 0, false, false
}

// SetAppliedOutbox names the outbox of the current applied set, keeping
// its contents. Call it inside Update.
func (n *Node) SetAppliedOutbox(outboxID string) { n.Applied.OutboxID = outboxID }

// RequestWelcome asks for a Welcome to be sent once the next flush has
// made the applied set durable. Call it inside Update.
func (n *Node) RequestWelcome() { n.applied.welcomeDue = true }

// materializeApplied brings Applied up to date with the live set. Call it
// with the record's lock held.
func (n *Node) materializeApplied() {
	if !n.applied.stale {
		return
	}
	s := n.applied.set
	n.Applied.Watermark = s.Cumulative()
	n.Applied.Forgotten = n.applied.forgotten + s.Forgotten()
	n.Applied.Ranges = nil
	if k := s.NumRanges(); k > 0 {
		rs := make(SeqRanges, k)
		for i, r := range s.Ranges() {
			rs[i] = [2]uint64{r.First, r.Last}
		}
		n.Applied.Ranges = rs
	}
	n.applied.stale = false
}

// Durable is one node's applied set as a flush has just made it durable,
// with what the node is owed: an Ack (the set changed, or a duplicate
// arrived, since the previous flush) and/or a Welcome (a hello arrived).
type Durable struct {
	Node    string
	Applied Applied
	Ack     bool
	Welcome bool
}
