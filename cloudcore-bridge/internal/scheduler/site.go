package scheduler

import (
	"fmt"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// SiteKind tells edge nodes from cloud regions.
type SiteKind uint8

// Site kinds. The zero value is invalid so that a forgotten kind is caught
// by NewSnapshot instead of silently making a region an edge node.
const (
	KindEdge SiteKind = iota + 1
	KindCloud
)

// String implements fmt.Stringer.
func (k SiteKind) String() string {
	switch k {
	case KindEdge:
		return "edge"
	case KindCloud:
		return "cloud"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// LinkState is an edge node's connection to the cloud, as the registry
// sees it. Cloud regions are always online.
type LinkState uint8

// Link states.
const (
	// LinkOnline: the node reports in time.
	LinkOnline LinkState = iota
	// LinkDisconnected: the node went quiet at DisconnectedSince. Its
	// copies are unknown, not lost: each workload's disconnect.lostAfter
	// decides when they are.
	LinkDisconnected
	// LinkLost: the registry has given the node up (decommissioned, or
	// silent past the fleet-wide limit); its copies are lost at once.
	LinkLost
)

// String implements fmt.Stringer.
func (l LinkState) String() string {
	switch l {
	case LinkOnline:
		return "online"
	case LinkDisconnected:
		return "disconnected"
	case LinkLost:
		return "lost"
	}
	return fmt.Sprintf("link(%d)", uint8(l))
}

// Resources are CPU in millicores and memory in bytes.
type Resources struct {
	MilliCPU int64
	Memory   int64
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.Memory + o.Memory}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.Memory - o.Memory}
}

// String implements fmt.Stringer.
func (r Resources) String() string {
	return spec.FormatMilliCPU(r.MilliCPU) + " CPU, " + spec.FormatBytes(r.Memory) + " memory"
}

// Prices are what running on a site costs, in US dollars. Cloud regions
// take them from the catalog; an edge node's are zero unless the operator
// sets an amortised rate.
type Prices struct {
	CPUHour  float64 // per core-hour
	GBHour   float64 // per GiB of memory per hour
	EgressGB float64 // per GiB leaving the site
}

// Site is somewhere a workload can run: an edge node from the registry or
// a cloud region from the catalog.
type Site struct {
	// ID is unique among sites: the node ID, or a catalog region ID like
	// aws-eu-central-1.
	ID     string
	Kind   SiteKind
	Labels map[string]string
	// Provider, Region and Jurisdiction are where the site is, commercially
	// and legally. Jurisdiction is an ISO 3166-1 alpha-2 code (DE) or a zone
	// name (EU); a site without one is refused by any jurisdiction
	// constraint.
	Provider     string
	Region       string
	Jurisdiction string
	// Location places the site for latency estimates; nil when unknown.
	Location *spec.Location
	// Capacity is what workloads may reserve; Allocated is what is
	// reserved now, including every copy in the snapshot's placements.
	Capacity  Resources
	Allocated Resources
	// Link and DisconnectedSince are the edge node's connection state.
	Link              LinkState
	DisconnectedSince time.Time
	// RTT holds measured (edge) or catalog (cloud) round-trip times to
	// nodes by ID; they take precedence over distance estimates.
	RTT map[string]time.Duration
	// BaseRTT is the access latency added to distance estimates (the last
	// mile of a cellular link, the region's front door).
	BaseRTT time.Duration
	Prices  Prices
	// CapacityErrorUntil keeps a cloud region out of placement after it
	// reported a capacity error, until this time.
	CapacityErrorUntil time.Time
}

// Free returns the capacity not yet allocated.
func (s *Site) Free() Resources { return s.Capacity.Sub(s.Allocated) }

// MarkCapacityError records a capacity error reported at now; the site is
// skipped by placement for cooldown.
func (s *Site) MarkCapacityError(now time.Time, cooldown time.Duration) {
	s.CapacityErrorUntil = now.Add(cooldown)
}

// DefaultCapacityErrorCooldown is how long a capacity error keeps a cloud
// region out of placement unless the caller chooses otherwise.
const DefaultCapacityErrorCooldown = 15 * time.Minute

// CostPerHour estimates what one copy with res and egressBytes per hour
// costs on the site, in dollars per hour.
func (s *Site) CostPerHour(res Resources, egressBytesPerHour int64) float64 {
	return costPerHour(s.Prices, res, egressBytesPerHour)
}

const gib = 1 << 30

func costPerHour(p Prices, res Resources, egress int64) float64 {
	return float64(res.MilliCPU)/1000*p.CPUHour + float64(res.Memory)/gib*p.GBHour + float64(egress)/gib*p.EgressGB
}
