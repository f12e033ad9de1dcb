// Package metrics defines the bridge's Prometheus metrics. They live in a
// registry of their own, never the global one, so that several bridges in
// one process (tests, benchmarks) do not collide and /metrics shows only
// what the bridge exports plus the Go runtime and process collectors.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the bridge's collectors.
type Metrics struct {
	// Registry is the bridge's own Prometheus registry.
	Registry *prometheus.Registry

	// ConnectedNodes is the number of nodes the registry holds online.
	ConnectedNodes prometheus.Gauge
	// Messages counts accepted MQTT messages by up stream.
	Messages *prometheus.CounterVec
	// Rejected counts refused messages, subscriptions and connections by
	// reason (protocol.Reason values, plus "overloaded").
	Rejected *prometheus.CounterVec
	// IngestLatency is the time from a message's production on the node
	// (sent_at_ms) to its application by the bridge.
	IngestLatency prometheus.Histogram
	// HandleSeconds is the time the bridge spends applying one message.
	HandleSeconds prometheus.Histogram
	// RegistryFlush is the duration of one write-behind flush to the store.
	RegistryFlush prometheus.Histogram
	// Duplicates counts durable messages dropped because the node's
	// applied set already held their sequence number.
	Duplicates prometheus.Counter
	// AcksSent counts Acks published to nodes after a flush.
	AcksSent prometheus.Counter
	// HandshakeFailures counts TLS handshakes that failed on the MQTT
	// listener (unknown CA, no client certificate, plaintext, timeout).
	HandshakeFailures prometheus.Counter
	// Handshakes counts completed TLS handshakes on the MQTT listener by
	// resumed="true|false".
	Handshakes *prometheus.CounterVec

	// Workloads is the number of workloads applied (deleting ones
	// included).
	Workloads prometheus.Gauge
	// Copies counts workload copies by state: pending, running, failed,
	// stopping.
	Copies *prometheus.GaugeVec
	// DesiredSent counts DesiredState messages published to nodes.
	DesiredSent prometheus.Counter
	// StatusesApplied counts workload statuses applied (not stale).
	StatusesApplied prometheus.Counter
	// Orphans counts statuses of workloads a node runs without being
	// assigned them.
	Orphans prometheus.Counter
	// LogsRequests counts logs requests by outcome.
	LogsRequests *prometheus.CounterVec
	// ReconcileSeconds is the duration of one controller pass.
	ReconcileSeconds prometheus.Histogram
	// Actions counts the scheduler actions the controller applied, by
	// kind (place, stop, unschedulable).
	Actions *prometheus.CounterVec
}

// New creates the collectors and registers them in a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		ConnectedNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skyedge_bridge_connected_nodes",
			Help: "Nodes currently online.",
		}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skyedge_bridge_messages_total",
			Help: "MQTT messages from nodes applied, by up stream.",
		}, []string{"stream"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skyedge_bridge_rejected_total",
			Help: "Messages, subscriptions and connections refused, by reason.",
		}, []string{"reason"}),
		IngestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skyedge_bridge_ingest_latency_seconds",
			Help: "Time from a message's production on the node to its application by the bridge.",
			// From a LAN round trip to a satellite pass or a long outage.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400},
		}),
		HandleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skyedge_bridge_ingest_handle_seconds",
			Help:    "Time spent decoding, validating and applying one message.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10), // 1 µs .. 262 ms
		}),
		RegistryFlush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skyedge_bridge_registry_flush_seconds",
			Help:    "Duration of one write-behind flush of the node registry to the store.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10), // 100 µs .. 26 s
		}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyedge_bridge_duplicates_total",
			Help: "Durable messages from nodes dropped as duplicates of ones already applied (acknowledged again, not applied).",
		}),
		AcksSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyedge_bridge_acks_sent_total",
			Help: "Acks published to nodes once the messages they cover were written to the store.",
		}),
		HandshakeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyedge_bridge_tls_handshake_failures_total",
			Help: "TLS handshakes that failed on the MQTT listener.",
		}),
		Handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skyedge_bridge_tls_handshakes_total",
			Help: "TLS handshakes completed on the MQTT listener; resumed=\"true\" for reconnecting nodes that resumed a session (no certificate signature or verification).",
		}, []string{"resumed"}),
		Workloads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skyedge_bridge_workloads",
			Help: "Workloads applied, including those being deleted.",
		}),
		Copies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skyedge_bridge_workload_copies",
			Help: "Workload copies placed, by state (pending, running, failed, stopping).",
		}, []string{"state"}),
		DesiredSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyedge_bridge_desired_sent_total",
			Help: "Desired-state messages published to nodes.",
		}),
		StatusesApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyedge_bridge_workload_statuses_total",
			Help: "Workload statuses from nodes applied to the workload store.",
		}),
		Orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyedge_bridge_orphan_statuses_total",
			Help: "Statuses of workloads a node runs although the bridge does not assign them; the node is sent its desired set again.",
		}),
		LogsRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skyedge_bridge_logs_requests_total",
			Help: "Workload logs requests to nodes, by outcome.",
		}, []string{"outcome"}),
		ReconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skyedge_bridge_reconcile_seconds",
			Help:    "Duration of one placement controller pass.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10), // 100 µs .. 26 s
		}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skyedge_bridge_placement_actions_total",
			Help: "Placement actions applied by the controller, by kind.",
		}, []string{"kind"}),
	}
	m.Registry.MustRegister(
		m.ConnectedNodes, m.Messages, m.Rejected, m.IngestLatency, m.HandleSeconds,
		m.RegistryFlush, m.Duplicates, m.AcksSent, m.HandshakeFailures, m.Handshakes,
		m.Workloads, m.Copies, m.DesiredSent, m.StatusesApplied, m.Orphans, m.LogsRequests,
		m.ReconcileSeconds, m.Actions,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
