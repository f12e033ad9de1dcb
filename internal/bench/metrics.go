package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Names of the bridge metrics the benchmarks read.
const (
	metricLatency  = "skyedge_bridge_ingest_latency_seconds"
	metricMessages = "skyedge_bridge_messages_total"
)

// metrics is one scrape of a Prometheus text exposition: the value of
// every sample, keyed by its name and labels as exposed (for example
// `skyedge_bridge_messages_total{stream="report"}`).
type metrics map[string]float64

func scrape(ctx context.Context, c *http.Client, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: scrape %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the text format: `name{labels} value [timestamp]`
// lines, comments ignored.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the last space outside the label braces.
		end := strings.LastIndexByte(line, '}')
		rest := line
		key := ""
		if end >= 0 {
			key, rest = line[:end+1], strings.TrimSpace(line[end+1:])
		} else {
			i := strings.IndexByte(line, ' ')
			if i < 0 {
				return nil, fmt.Errorf("bench: metrics line %q has no value", line)
			}
			key, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		if i := strings.IndexByte(rest, ' '); i >= 0 {
			rest = rest[:i] // a timestamp
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			return nil, fmt.Errorf("bench: metrics line %q: %w", line, err)
		}
		m[key] = v
	}
	return m, sc.Err()
}

// messages is the count of applied messages of one up stream.
func (m metrics) messages(stream string) float64 {
	return m[metricMessages+`{stream="`+stream+`"}`]
}

// applied is the number of envelopes the bridge applied that a node
// produces for the registry (reports, summaries, events, gaps, each
// envelope of a batch counted): every envelope whose latency was
// observed, less hellos and goodbyes.
func (m metrics) applied() float64 {
	return m[metricLatency+"_count"] - m.messages("hello") - m.messages("bye")
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64 // upper bound, +Inf for the last
	count float64 // observations <= le
}

// histogram returns the cumulative buckets of name, in order.
func (m metrics) histogram(name string) []bucket {
	prefix := name + `_bucket{le="`
	var out []bucket
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		s := strings.TrimSuffix(k[len(prefix):], `"}`)
		le, err := strconv.ParseFloat(s, 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		out = append(out, bucket{le: le, count: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// histogramDelta is what a histogram observed between two scrapes.
func histogramDelta(before, after metrics, name string) []bucket {
	a, b := after.histogram(name), before.histogram(name)
	prev := make(map[float64]float64, len(b))
	for _, x := range b {
		prev[x.le] = x.count
	}
	for i := range a {
		a[i].count -= prev[a[i].le]
	}
	return a
}

// quantile estimates the q-quantile of cumulative buckets the way
// Prometheus's histogram_quantile does: linear interpolation inside the
// bucket that holds it, the lowest bucket starting at 0, and the last
// finite bound when it falls in +Inf. It returns 0 without observations.
func quantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 {
		return 0
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				if i == 0 {
					return 0
				}
				return bs[i-1].le
			}
			in := b.count - below
			if in <= 0 {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/in
		}
		lower, below = b.le, b.count
	}
	return lower
}

// fractionWithin is the share of observations at or below le, which must
// be one of the bucket bounds.
func fractionWithin(le float64, bs []bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return 0
	}
	for _, b := range bs {
		if b.le == le {
			return b.count / bs[len(bs)-1].count
		}
	}
	return math.NaN()
}

// bucketOf names the bucket holding v, in milliseconds: "(5, 10] ms".
func bucketOf(v float64, bs []bucket) string {
	lower := 0.0
	for _, b := range bs {
		if v <= b.le {
			if math.IsInf(b.le, 1) {
				return fmt.Sprintf("(%g, +Inf) ms", lower*1000)
			}
			return fmt.Sprintf("(%g, %g] ms", lower*1000, b.le*1000)
		}
		lower = b.le
	}
	return "?"
}
