// Package stamp fills in the header every envelope an agent sends
// carries: who sends it, in which boot, when it was produced, and which
// protocol features the sender speaks.
package stamp

import (
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Stamper stamps envelopes for one node in one boot. Set BootEpoch before
// the first Stamp call; the fields are not changed afterwards, so a
// Stamper is safe for concurrent use.
type Stamper struct {
	NodeID    string
	BootEpoch uint64
	Clock     clock.Clock
}

// Stamp sets env's node, boot epoch and capability, and its production
// time unless the producer already set it. Envelopes are unsequenced
// (seq 0) until the outbox assigns sequence numbers. It returns env.
func (s *Stamper) Stamp(env *pb.Envelope) *pb.Envelope {
	env.NodeId = s.NodeID
	env.BootEpoch = s.BootEpoch
	env.Capability = protocol.CapabilityVersion
	if env.SentAtMs == 0 {
		env.SentAtMs = s.Clock.Now().UnixMilli()
	}
	return env
}
