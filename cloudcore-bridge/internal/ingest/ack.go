package ingest

import (
	"log/slog"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/acks"
)

// MaxWelcomeRanges bounds the applied ranges a Welcome carries above its
// watermark. The agent resends what the Welcome does not show applied;
// the bridge drops those resends as duplicates and acknowledges them
// again, so the bound costs traffic, never correctness.
const MaxWelcomeRanges = 64

// outboxChange is what a hello did to a node's applied set.
type outboxChange struct {
	kind outboxChangeKind
	// The set before the hello.
	oldID        string
	oldWatermark uint64
	oldTop       uint64 // highest sequence number in the set
}

type outboxChangeKind int

const (
	outboxSame outboxChangeKind = iota
	// outboxNew: first outbox ID for this node's set.
	outboxNew
	// outboxRecreated: the node names a different outbox than before.
	outboxRecreated
	// outboxLost: same outbox ID, but the node has assigned fewer
	// sequence numbers than the bridge has seen.
	outboxLost
)

// bindOutbox reconciles n's applied set with the outbox state of a hello:
//
//   - a different outbox ID (a recreated outbox numbers from 1 again)
//     starts a new set, or its new messages would be taken for duplicates
//     of the old ones;
//   - the same ID with next_seq (the highest sequence number the agent
//     ever assigned) below the highest one in the set, not just below the
//     watermark, means the agent lost its outbox state without noticing:
//     the set starts again too, or the agent's reuse of a number the set
//     holds above a hole would be dropped;
//   - everything below outbox_first_seq is settled: the agent no longer
//     holds it, so it will never be sent (again).
//
// Starting a new set can only make the bridge apply a resent message
// twice; keeping a set the agent no longer numbers against would drop new
// messages as duplicates, which is a loss. Call it inside Update.
func bindOutbox(n *registry.Node, h *pb.Hello) outboxChange {
	c := outboxChange{oldID: n.AppliedOutbox(), oldWatermark: n.AppliedWatermark(), oldTop: n.AppliedTop()}
	switch id := h.GetOutboxId(); {
	case id != c.oldID:
		c.kind = outboxNew
		if c.oldID != "" {
			c.kind = outboxRecreated
		}
		n.ResetApplied(id)
	case h.GetNextSeq() < c.oldTop:
		c.kind = outboxLost
		n.ResetApplied(id)
	}
	if first := h.GetOutboxFirstSeq(); first > 1 {
		n.Settle(1, first-1)
	}
	return c
}

// log logs a change of outbox; a new set whose predecessor was empty is
// not news.
func (c outboxChange) log(log *slog.Logger, node string, h *pb.Hello) {
	switch c.kind {
	case outboxNew:
		if c.oldTop > 0 {
			log.Info("applied set started for the node's outbox; earlier sequence numbers belonged to no named outbox",
				"node", node, "outbox_id", h.GetOutboxId(), "old_watermark", c.oldWatermark)
		}
	case outboxRecreated:
		log.Info("outbox recreated: the node numbers its messages afresh, the applied set starts again",
			"node", node, "outbox_id", h.GetOutboxId(), "old_outbox_id", c.oldID,
			"old_watermark", c.oldWatermark, "next_seq", h.GetNextSeq())
	case outboxLost:
		log.Warn("node lost its outbox state without a new outbox ID (next_seq below what the bridge applied); the applied set starts again",
			"node", node, "outbox_id", h.GetOutboxId(), "next_seq", h.GetNextSeq(),
			"old_watermark", c.oldWatermark, "old_highest", c.oldTop)
	}
}

// Acknowledge tells nodes what a registry flush has just made durable. It
// is the registry's Config.Durable: a Welcome to every node whose hello
// waited for one, and one Ack with the whole applied set to every node
// whose set changed (or that resent something) since the previous flush,
// however many messages that covers. A node that is gone misses it; its
// next hello's Welcome carries the same state.
func (in *Ingester) Acknowledge(ds []registry.Durable) {
	if in.pub == nil {
		return
	}
	now := in.clk.Now()
	for i := range ds {
		d := &ds[i]
		ranges := acks.ToProto(d.Applied.Ranges.Acks())
		if d.Welcome {
			w := ranges
			if len(w) > MaxWelcomeRanges {
				w = w[:MaxWelcomeRanges]
			}
			env := downEnvelope(d.Node, now.UnixMilli())
			env.Body = &pb.Envelope_Welcome{Welcome: &pb.Welcome{
				Watermark:    d.Applied.Watermark,
				Applied:      w,
				ServerTimeMs: now.UnixMilli(),
				Capability:   protocol.CapabilityVersion,
				OutboxId:     d.Applied.OutboxID,
			}}
			if in.wl != nil {
				env.GetWelcome().DesiredGeneration = in.wl.Generation(d.Node)
			}
			in.send(d.Node, "welcome", env)
		}
		if d.Ack {
			env := downEnvelope(d.Node, now.UnixMilli())
			env.Body = &pb.Envelope_Ack{Ack: &pb.Ack{Cumulative: d.Applied.Watermark, Ranges: ranges, OutboxId: d.Applied.OutboxID}}
			if in.send(d.Node, "ack", env) {
				in.m.AcksSent.Inc()
			}
		}
	}
}

func downEnvelope(node string, nowMs int64) *pb.Envelope {
	return &pb.Envelope{NodeId: node, SentAtMs: nowMs, Capability: protocol.CapabilityVersion}
}

// send publishes env (a kind) to node's down/ack topic and reports
// whether the endpoint took it. A failure (the node is not connected, the
// endpoint is stopping) is expected and only logged at debug level, once
// per node and kind per LogEvery.
func (in *Ingester) send(node, kind string, env *pb.Envelope) bool {
	p, err := protocol.Marshal(env)
	if err == nil {
		err = in.pub.Publish(protocol.DownTopic(node, protocol.StreamAck), p)
	}
	if err != nil {
		if in.once.Allow(node+"\x00"+kind, in.clk.Now()) {
			in.log.Debug("cannot send "+kind+" to node; its next hello's welcome carries the same state",
				"node", node, "error", err)
		}
		return false
	}
	return true
}
