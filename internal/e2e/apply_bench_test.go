package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkApplyToRunning measures the time from `apply` to running on
// connected nodes: a bridge and 10 agents in this process (each with its
// own Badger outbox, over mutual TLS), 100 exec workloads applied one
// after another through the HTTP API, placed by the scheduler. A
// workload's latency runs from the start of its POST to the moment its
// node saw the process running (the replica's `since`, on the same
// clock). Each iteration applies 100 new workloads, then deletes them
// (untimed).
//
//	go test ./internal/e2e -run '^$' -bench ApplyToRunning -benchtime 3x
func BenchmarkApplyToRunning(b *testing.B) {
	const agents, workloads = 10, 100
	p := newPKI(b)
	br := startBridge(b, p, b.TempDir(), nil)
	api := br.HTTPAddr()
	for i := range agents {
		startAgent(b, p, fmt.Sprintf("edge-%02d", i), br.MQTTAddr(), map[string]string{"role": "bench"}, nil)
	}
	eventually(b, 30*time.Second, func() (bool, string) {
		online := 0
		for _, n := range nodes(b, api) {
			if n.Online && n.Facts.CPUCores > 0 {
				online++
			}
		}
		return online == agents, fmt.Sprintf("%d/%d nodes online", online, agents)
	})
	var lat []time.Duration
	b.ResetTimer()
	for it := range b.N {
		applied := make(map[string]time.Time, workloads)
		for k := range workloads {
			name := fmt.Sprintf("sleep-%d-%03d", it, k)
			applied[name] = time.Now()
			apply(b, api, fmt.Sprintf(sleepWorkload, name))
		}
		pending := keySet(applied)
		eventually(b, 2*time.Minute, func() (bool, string) {
			for name := range pending {
				w, ok := workload(b, api, name)
				if !ok {
					continue
				}
				for _, r := range running(w) {
					lat = append(lat, r.Since.Sub(applied[name]))
					delete(pending, name)
				}
			}
			return len(pending) == 0, fmt.Sprintf("%d of %d workloads not running yet", len(pending), workloads)
		})
		b.StopTimer()
		for name := range applied {
			deleteWorkload(b, api, name)
		}
		eventually(b, 2*time.Minute, func() (bool, string) {
			left := 0
			for name := range applied {
				if _, ok := workload(b, api, name); ok {
					left++
				}
			}
			return left == 0, fmt.Sprintf("%d workloads still being deleted", left)
		})
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
}

const sleepWorkload = `apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: %s}
spec:
  runtime: exec
  exec: {command: /bin/sleep, args: ["3600"]}
  resources: {cpu: 10m, memory: 4Mi}
  stopGracePeriod: 1s
  placement:
    tier: edge
    nodeSelector: {matchLabels: {role: bench}}
`

func keySet(m map[string]time.Time) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
