package scheduler

import (
	"fmt"
	"math"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// Distance model for latency estimates: light in fibre covers about
// 204 km per millisecond (refractive index ~1.47), and a round trip
// crosses the distance twice.
const (
	earthRadiusKm = 6371.0088
	fiberKmPerMs  = 204.19
)

// RTTSource says where a round-trip time came from.
type RTTSource uint8

// RTT sources.
const (
	RTTUnknown   RTTSource = iota // no measurement and no locations
	RTTLocal                      // the site is the data source
	RTTMeasured                   // measured by a node, or the catalog's table
	RTTEstimated                  // great-circle distance at fibre speed plus base RTTs
)

// String implements fmt.Stringer.
func (s RTTSource) String() string {
	switch s {
	case RTTLocal:
		return "local"
	case RTTMeasured:
		return "measured"
	case RTTEstimated:
		return "estimated"
	}
	return "unknown"
}

// EstimateRTT estimates the round trip between two points: the
// great-circle distance at fibre speed, there and back, plus each end's
// base (access) latency.
func EstimateRTT(a, b spec.Location, baseA, baseB time.Duration) time.Duration {
	ua, ub := unitVector(a.Lat, a.Lon), unitVector(b.Lat, b.Lon)
	return time.Duration((rttMS(dot(ua, ub)) + ms(baseA) + ms(baseB)) * float64(time.Millisecond))
}

func unitVector(lat, lon float64) [3]float64 {
	φ, λ := lat*math.Pi/180, lon*math.Pi/180
	return [3]float64{math.Cos(φ) * math.Cos(λ), math.Cos(φ) * math.Sin(λ), math.Sin(φ)}
}

func dot(a, b [3]float64) float64 { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }

// rttMS converts the dot product of two unit vectors into the fibre
// round trip in milliseconds.
func rttMS(d float64) float64 {
	return 2 * earthRadiusKm * acos(d) / fiberKmPerMs
}

// acos is arccos to within 2e-8 radians (13 cm on Earth), about five
// times faster than math.Acos, which dominated placements with a latency
// bound over thousands of sites: Abramowitz and Stegun 4.4.46.
func acos(x float64) float64 {
	neg := x < 0
	x = min(math.Abs(x), 1)
	r := math.Sqrt(1-x) * (1.5707963050 + x*(-0.2145988016+x*(0.0889789874+x*(-0.0501743046+
		x*(0.0308918810+x*(-0.0170881256+x*(0.0066700901+x*-0.0012624911)))))))
	if neg {
		return math.Pi - r
	}
	return r
}

// latencyCache holds the round trips of one placement to its data
// source, computed on first use and shared by the latency filter and
// scorer.
type latencyCache struct {
	ready    bool
	srcKnown bool // the source has a location
	srcUnit  [3]float64
	srcBase  float64
	ms       []float32
	src      []RTTSource
}

// RTT returns the round trip from site i to the request's data source in
// milliseconds, and where it came from. Without a data source every site
// is RTTUnknown.
func (c *Cycle) RTT(i int32) (float64, RTTSource) {
	if !c.lat.ready {
		c.prepareRTT()
	}
	if c.lat.ms == nil {
		return 0, RTTUnknown
	}
	if c.lat.src[i] == RTTUnknown && c.lat.srcKnown && c.snap.idx.hasLoc[i] {
		x := &c.snap.idx
		c.lat.ms[i] = float32(rttMS(dot(x.unit[i], c.lat.srcUnit)) + x.baseMS[i] + c.lat.srcBase)
		c.lat.src[i] = RTTEstimated
	}
	return float64(c.lat.ms[i]), c.lat.src[i]
}

func (c *Cycle) prepareRTT() {
	c.lat.ready = true
	ds := c.req.Placement.DataSource
	if ds == nil {
		return
	}
	x := &c.snap.idx
	n := len(c.snap.sites)
	c.lat.ms = make([]float32, n)
	c.lat.src = make([]RTTSource, n)
	if ds.Location != nil {
		c.lat.srcKnown = true
		c.lat.srcUnit = unitVector(ds.Location.Lat, ds.Location.Lon)
		return
	}
	src, ok := x.byID[ds.Node]
	if ok {
		site := &c.snap.sites[src]
		if x.hasLoc[src] {
			c.lat.srcKnown = true
			c.lat.srcUnit = x.unit[src]
		}
		c.lat.srcBase = x.baseMS[src]
		// The source's own measurements, then the sites' measurements to
		// it, which win: a site knows its own path best.
		for id, d := range site.RTT {
			if j, ok := x.byID[id]; ok {
				c.lat.ms[j], c.lat.src[j] = float32(ms(d)), RTTMeasured
			}
		}
	}
	for _, e := range x.rttTo[ds.Node] {
		c.lat.ms[e.site], c.lat.src[e.site] = float32(e.ms), RTTMeasured
	}
	if ok {
		c.lat.ms[src], c.lat.src[src] = 0, RTTLocal
	}
}

// sourceName names the data source for explanations.
func sourceName(req *Request) string {
	ds := req.Placement.DataSource
	switch {
	case ds == nil:
		return "no data source"
	case ds.Location != nil:
		return fmt.Sprintf("(%.4g, %.4g)", ds.Location.Lat, ds.Location.Lon)
	}
	return ds.Node
}
