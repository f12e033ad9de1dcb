package outboxtest

import (
	"testing"

	"github.com/skyedge/skyedge/sync/acks"
)

// Settlement says how a queue accounts for a set of sequence numbers.
type Settlement struct {
	Raw        int // still pending as themselves
	Summarized int // in the covers of a pending summary
	Gapped     int // in the seqs of a pending gap marker
}

// CheckSettled verifies that the pending items all partition the
// sequence space exactly: every sequence number is claimed at most once,
// as a pending item, in a pending summary's covers, or in a pending gap
// marker's seqs; and every number in want is claimed exactly once. This
// is what lets the cloud's watermark move past everything the node ever
// sequenced.
func CheckSettled(t testing.TB, all []Decoded, want []uint64, next uint64) Settlement {
	t.Helper()
	type claim struct{ raw, covered, gapped int }
	claims := map[uint64]*claim{}
	get := func(s uint64) *claim {
		c := claims[s]
		if c == nil {
			c = &claim{}
			claims[s] = c
		}
		return c
	}
	addRanges := func(rs []acks.Range, field func(*claim) *int) {
		for _, r := range rs {
			if r.Last >= next {
				t.Fatalf("range %v reaches past the next seq %d", r, next)
			}
			for s := r.First; s <= r.Last; s++ {
				*field(get(s))++
			}
		}
	}
	for _, d := range all {
		get(d.Seq).raw++
		if s := d.Env.GetSummary(); s != nil {
			addRanges(acks.FromProto(s.GetCovers()), func(c *claim) *int { return &c.covered })
		}
		if g := d.Env.GetGap(); g != nil {
			addRanges(acks.FromProto(g.GetSeqs()), func(c *claim) *int { return &c.gapped })
		}
	}
	for s, c := range claims {
		if n := c.raw + c.covered + c.gapped; n != 1 {
			t.Fatalf("seq %d is claimed %d times (pending %d, covered %d, gapped %d), want once", s, n, c.raw, c.covered, c.gapped)
		}
	}
	var st Settlement
	for _, s := range want {
		c := claims[s]
		switch {
		case c == nil:
			t.Fatalf("seq %d is neither pending, nor covered by a summary, nor in a gap marker", s)
		case c.raw == 1:
			st.Raw++
		case c.covered == 1:
			st.Summarized++
		default:
			st.Gapped++
		}
	}
	return st
}
