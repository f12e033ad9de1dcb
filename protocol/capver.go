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
//	2: 2026-11-25: workloads: desired state with generations (down/desired,
//	   DesiredAck), workload statuses (durable, control class), logs
//	   request/response (down/logs, up/logs); Ack and Welcome name the
//	   outbox they acknowledge (outbox_id).
const CapabilityVersion uint32 = 2

// Capability versions that introduced features a peer may gate on.
const (
	// CapAckedOutbox: the agent keeps durable messages until the cloud's
	// application-level ack and resends from the Welcome watermark.
	CapAckedOutbox uint32 = 1
	// CapWorkloads: desired state, workload statuses and logs requests.
	CapWorkloads uint32 = 2
)
