package schedbench

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
)

// BenchmarkPlace measures Place on a synthetic fleet with 100 cloud
// regions. Each call is timed on its own for the percentiles:
// decisions/s counts Place calls, placements/s the replicas they placed
// (1 to 3 per workload), p50-ms and p99-ms the time of one call.
//
//	go test ./cloudcore-bridge/schedbench -run '^$' -bench Place -benchtime 2000x
func BenchmarkPlace(b *testing.B) {
	for _, nodes := range []int{500, 5000, 50000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			snap, reqs, err := Fleet(nodes, 100, 1)
			if err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			replicas := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				d := scheduler.Place(snap, reqs[i%len(reqs)])
				lat = append(lat, time.Since(start))
				replicas += len(d.Assignments)
			}
			b.StopTimer()
			if replicas == 0 {
				b.Fatal("nothing placed")
			}
			var total time.Duration
			for _, l := range lat {
				total += l
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(float64(len(lat))/total.Seconds(), "decisions/s")
			b.ReportMetric(float64(replicas)/total.Seconds(), "placements/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
