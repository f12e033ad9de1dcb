package protocol

// Limits of the cloud link. They are the tightest of the brokers SkyEdge
// must work with (AWS IoT Core's quotas are the binding ones), so a message
// that passes them is accepted by the embedded broker, Mosquitto, EMQX,
// NATS and AWS IoT Core alike.
const (
	// MaxPayload is the largest MQTT payload, in bytes (AWS IoT Core: 128 KB).
	MaxPayload = 128 * 1024
	// MaxTopicLength is the longest topic name, in bytes.
	MaxTopicLength = 256
	// MaxTopicSlashes is the most '/' separators a topic may have.
	MaxTopicSlashes = 7
	// MaxQoS is the highest MQTT QoS used; AWS IoT Core does not ack QoS 2.
	MaxQoS = 1
	// MaxNodeIDLength bounds node IDs so topics stay within MaxTopicLength
	// and client IDs within AWS IoT Core's 128 bytes.
	MaxNodeIDLength = 64
	// MaxBatchEnvelopes bounds the envelopes in one Batch.
	MaxBatchEnvelopes = 4096
	// MaxLabels bounds the labels a node may carry, and MaxLabelLength the
	// length of a label key or value.
	MaxLabels      = 64
	MaxLabelLength = 253
)
