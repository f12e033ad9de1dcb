// Package protocol is SkyEdge's wire contract between edge agents and the
// cloud bridge: the MQTT topic layout, the size and QoS limits that keep
// every message acceptable to AWS IoT Core and other brokers, the
// capability version, node identity rules, and a codec that decodes and
// validates envelopes.
//
// The message types themselves are generated from proto/skyedge/v1 into
// package skyedgev1. This package imports nothing else of SkyEdge's, so the
// agent, the bridge and third-party tools can all depend on it.
package protocol
