package drain

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/outbox"
)

// Field numbers of pb.Envelope and pb.Batch used to assemble a batch
// without decoding the stored envelopes.
const (
	fieldNodeID     = 1
	fieldBootEpoch  = 2
	fieldSentAt     = 4
	fieldCapability = 5
	fieldBatch      = 14
	fieldEnvelopes  = 1
)

// Header is what a batch envelope says about its sender.
type Header struct {
	NodeID    string
	BootEpoch uint64
	SentAtMs  int64
}

// StreamOf is the up stream an item travels on when sent alone.
func StreamOf(c outbox.Class) string {
	if c == outbox.Telemetry {
		return protocol.StreamReport
	}
	return protocol.StreamEvent
}

// Build packs the longest prefix of items that fits maxBytes and
// maxEnvelopes into one MQTT payload and returns it with its stream and
// the number of items used. One item is sent as itself; several go in a
// pb.Batch envelope, assembled from the stored bytes (the result is what
// a deterministic proto.Marshal of the decoded batch produces). The first
// item is always used, whatever its size.
func Build(h Header, items []outbox.Item, maxBytes, maxEnvelopes int) (payload []byte, stream string, n int) {
	if len(items) == 0 {
		return nil, "", 0
	}
	head := appendHeader(nil, h)
	body := 0
	for n < len(items) && n < maxEnvelopes {
		l := len(items[n].Payload)
		nb := body + 1 + protowire.SizeVarint(uint64(l)) + l
		if n > 0 && len(head)+1+protowire.SizeVarint(uint64(nb))+nb > maxBytes {
			break
		}
		body, n = nb, n+1
	}
	if n == 1 {
		return items[0].Payload, StreamOf(items[0].Class), 1
	}
	b := make([]byte, 0, len(head)+1+protowire.SizeVarint(uint64(body))+body)
	b = append(b, head...)
	b = protowire.AppendTag(b, fieldBatch, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(body))
	for _, it := range items[:n] {
		b = protowire.AppendTag(b, fieldEnvelopes, protowire.BytesType)
		b = protowire.AppendBytes(b, it.Payload)
	}
	return b, protocol.StreamBatch, n
}

// appendHeader encodes the envelope fields before the body, skipping zero
// values as proto3 does.
func appendHeader(b []byte, h Header) []byte {
	if h.NodeID != "" {
		b = protowire.AppendTag(b, fieldNodeID, protowire.BytesType)
		b = protowire.AppendString(b, h.NodeID)
	}
	if h.BootEpoch != 0 {
		b = protowire.AppendTag(b, fieldBootEpoch, protowire.VarintType)
		b = protowire.AppendVarint(b, h.BootEpoch)
	}
	if h.SentAtMs != 0 {
		b = protowire.AppendTag(b, fieldSentAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(h.SentAtMs))
	}
	b = protowire.AppendTag(b, fieldCapability, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(protocol.CapabilityVersion))
}
