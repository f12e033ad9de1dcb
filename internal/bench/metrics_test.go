package bench

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const exposition = `# HELP skyedge_bridge_messages_total MQTT messages from nodes applied, by up stream.
# TYPE skyedge_bridge_messages_total counter
skyedge_bridge_messages_total{stream="bye"} 2
skyedge_bridge_messages_total{stream="hello"} 10
skyedge_bridge_messages_total{stream="report"} 1.2345e+06
# TYPE skyedge_bridge_ingest_latency_seconds histogram
skyedge_bridge_ingest_latency_seconds_bucket{le="0.005"} 100
skyedge_bridge_ingest_latency_seconds_bucket{le="0.01"} 180
skyedge_bridge_ingest_latency_seconds_bucket{le="0.025"} 200
skyedge_bridge_ingest_latency_seconds_bucket{le="+Inf"} 212
skyedge_bridge_ingest_latency_seconds_sum 1.5
skyedge_bridge_ingest_latency_seconds_count 212
go_goroutines 42 1712345678000
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatalf("parseMetrics: %v", err)
	}
	for _, c := range []struct {
		key  string
		want float64
	}{
		{`skyedge_bridge_messages_total{stream="report"}`, 1234500},
		{`skyedge_bridge_ingest_latency_seconds_count`, 212},
		{`go_goroutines`, 42},
	} {
		if got := m[c.key]; got != c.want {
			t.Errorf("metrics[%s] = %v, want %v", c.key, got, c.want)
		}
	}
	if got, want := m.applied(), 212.0-10-2; got != want {
		t.Errorf("applied() = %v, want %v (observed latencies less hellos and goodbyes)", got, want)
	}
	want := []bucket{{0.005, 100}, {0.01, 180}, {0.025, 200}, {math.Inf(1), 212}}
	if diff := cmp.Diff(want, m.histogram(metricLatency), cmp.AllowUnexported(bucket{})); diff != "" {
		t.Errorf("histogram() mismatch (-want +got):\n%s", diff)
	}
	if _, err := parseMetrics(strings.NewReader("novalue\n")); err == nil {
		t.Error("parseMetrics(a line without a value) = nil error, want an error")
	}
}

func TestQuantile(t *testing.T) {
	bs := []bucket{{0.005, 100}, {0.01, 180}, {0.025, 200}, {math.Inf(1), 212}}
	for _, c := range []struct {
		name string
		q    float64
		bs   []bucket
		want float64
	}{
		{"inside the first bucket, from 0", 0.25, bs, 0.005 * 53 / 100},
		{"interpolated in the second", 0.75, bs, 0.005 + 0.005*(159-100)/80},
		{"in +Inf: the last finite bound", 0.99, bs, 0.025},
		{"no observations", 0.5, []bucket{{0.005, 0}, {math.Inf(1), 0}}, 0},
		{"no buckets", 0.5, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := quantile(c.q, c.bs); !cmp.Equal(got, c.want, cmpopts.EquateApprox(0, 1e-12)) {
				t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
			}
		})
	}
	if got := fractionWithin(0.01, bs); got != 180.0/212 {
		t.Errorf("fractionWithin(0.01) = %v, want %v", got, 180.0/212)
	}
}

func TestHistogramDelta(t *testing.T) {
	before, _ := parseMetrics(strings.NewReader(exposition))
	after, _ := parseMetrics(strings.NewReader(strings.ReplaceAll(exposition, `le="+Inf"} 212`, `le="+Inf"} 300`)))
	got := histogramDelta(before, after, metricLatency)
	want := []bucket{{0.005, 0}, {0.01, 0}, {0.025, 0}, {math.Inf(1), 88}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(bucket{})); diff != "" {
		t.Errorf("histogramDelta mismatch (-want +got):\n%s", diff)
	}
}
