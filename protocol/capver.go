package protocol

// CapabilityVersion is the version of the protocol features this build
// speaks. Each side sends its own in every envelope; a feature the other
// side must understand is used only when the peer's version is at least the
// one that introduced it. Increment it for every such feature and add a
// line to the history below; never decrease it.
//
// History:
//
//	1: 2026-11-24: envelope, hello/welcome, resource reports, events,
//	   goodbye and last will, cumulative+range acks, batches, gap markers,
//	   telemetry summaries.
const CapabilityVersion uint32 = 1

// Capability versions that introduced features a peer may gate on.
const (
	// CapAckedOutbox: the agent keeps durable messages until the cloud's
	// application-level ack and resends from the Welcome watermark.
	CapAckedOutbox uint32 = 1
)
