package planner

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler/catalog"
	"github.com/skyedge/skyedge/protocol/spec"
)

// Well-known node labels read by the planner.
const (
	LabelLat          = "skyedge.io/lat"
	LabelLon          = "skyedge.io/lon"
	LabelJurisdiction = "skyedge.io/jurisdiction"
	LabelProvider     = "skyedge.io/provider"
	LabelRegion       = "skyedge.io/region"
	// LabelSite marks an agent that runs a cloud region's workloads; its
	// value is the catalog region ID.
	LabelSite = "skyedge.io/site"
)

// Offline reasons that mean a node is gone for good: its copies are lost
// at once instead of after each workload's disconnect.lostAfter.
const (
	ReasonRemoved        = "removed"
	ReasonDecommissioned = "decommissioned"
)

// System reserve kept out of an edge node's capacity for its operating
// system and the agent: ReserveCPUPercent of the CPU, and
// ReserveMemoryPercent of the memory but at most MaxReserveMemory.
const (
	ReserveCPUPercent    = 10
	ReserveMemoryPercent = 10
	MaxReserveMemory     = 256 << 20
)

// Inputs is everything a snapshot is made of.
type Inputs struct {
	// Nodes is the registry's view of the fleet.
	Nodes []registry.Node
	// Catalog lists the cloud regions; nil means none.
	Catalog *catalog.Catalog
	// Copies is every copy that exists; they count against their sites'
	// capacity.
	Copies []scheduler.Placement
	// CapacityErrors maps a region ID to the time until which it is
	// avoided after a capacity error.
	CapacityErrors map[string]time.Time
	Now            time.Time
	// EdgePrices is an optional amortised price of running on an edge
	// node; zero makes edge nodes free, so the cost objective prefers them.
	EdgePrices scheduler.Prices
	// NodeLostAfter, when positive, gives up a node offline for longer:
	// its link becomes lost, whatever the workloads' lostAfter.
	NodeLostAfter time.Duration
}

// RegionAgents maps a catalog region ID to the IDs of the online agents
// that run its workloads, sorted.
type RegionAgents map[string][]string

// Snapshot builds the scheduler's snapshot of in: an edge site per node
// that has reported its facts (region agents excepted), a cloud site per
// catalog region, and the copies. It also returns the online agents of
// each region. It fails only on malformed copies (no ID, or an ID listed
// twice); a node with bad labels is placed without what they said.
func Snapshot(in Inputs) (*scheduler.Snapshot, RegionAgents, error) {
	var regions []scheduler.Site
	if in.Catalog != nil {
		regions = in.Catalog.Sites()
	}
	isRegion := make(map[string]bool, len(regions))
	for i := range regions {
		r := &regions[i]
		isRegion[r.ID] = true
		if until, ok := in.CapacityErrors[r.ID]; ok {
			r.CapacityErrorUntil = until
		}
	}
	agents := RegionAgents{}
	sites := make([]scheduler.Site, 0, len(in.Nodes)+len(regions))
	seen := make(map[string]bool, len(in.Nodes))
	for k := range in.Nodes {
		n := &in.Nodes[k]
		if region, ok := n.Labels[LabelSite]; ok {
			if isRegion[region] && n.Online {
				agents[region] = append(agents[region], n.ID)
			}
			continue
		}
		if n.Facts.CPUCores == 0 || n.Facts.MemTotalKiB == 0 || isRegion[n.ID] || seen[n.ID] {
			continue
		}
		seen[n.ID] = true
		sites = append(sites, edgeSite(n, &in))
	}
	for _, ids := range agents {
		slices.Sort(ids)
	}
	sites = append(sites, regions...)
	allocate(sites, in.Copies)
	snap, err := scheduler.NewSnapshot(in.Now, sites, in.Copies)
	if err != nil {
		return nil, nil, fmt.Errorf("planner: %w", err)
	}
	return snap, agents, nil
}

// edgeSite describes node n as an edge site.
func edgeSite(n *registry.Node, in *Inputs) scheduler.Site {
	attrs := parseLabels(n.Labels)
	s := scheduler.Site{
		ID:           n.ID,
		Kind:         scheduler.KindEdge,
		Labels:       n.Labels,
		Provider:     n.Labels[LabelProvider],
		Region:       n.Labels[LabelRegion],
		Jurisdiction: attrs.jurisdiction,
		Location:     attrs.location,
		Capacity:     EdgeCapacity(n.Facts),
		Prices:       in.EdgePrices,
	}
	switch {
	case n.Online:
		s.Link = scheduler.LinkOnline
	case n.OfflineReason == ReasonRemoved || n.OfflineReason == ReasonDecommissioned:
		s.Link = scheduler.LinkLost
	default:
		s.Link = scheduler.LinkDisconnected
		s.DisconnectedSince = n.LastSeen
		if s.DisconnectedSince.IsZero() {
			s.DisconnectedSince = n.FirstSeen
		}
		if in.NodeLostAfter > 0 && in.Now.Sub(s.DisconnectedSince) > in.NodeLostAfter {
			s.Link = scheduler.LinkLost
		}
	}
	return s
}

// EdgeCapacity is what workloads may reserve on a node with facts f: its
// CPU and memory less the system reserve.
func EdgeCapacity(f registry.Facts) scheduler.Resources {
	cpu := int64(f.CPUCores) * 1000
	mem := int64(min(f.MemTotalKiB, math.MaxInt64/1024)) * 1024
	memReserve := min(mem*ReserveMemoryPercent/100, MaxReserveMemory)
	return scheduler.Resources{
		MilliCPU: cpu - cpu*ReserveCPUPercent/100,
		Memory:   mem - memReserve,
	}
}

// allocate sets each site's Allocated to the sum of the copies on it.
func allocate(sites []scheduler.Site, copies []scheduler.Placement) {
	at := make(map[string]int, len(sites))
	for i := range sites {
		at[sites[i].ID] = i
	}
	for _, c := range copies {
		if i, ok := at[c.Site]; ok {
			sites[i].Allocated = sites[i].Allocated.Add(c.Resources)
		}
	}
}

// labelAttrs is what the well-known labels of a node say.
type labelAttrs struct {
	location     *spec.Location
	jurisdiction string
	problems     []string
}

// parseLabels reads the well-known labels, keeping what is valid and
// saying what is not.
func parseLabels(labels map[string]string) labelAttrs {
	var a labelAttrs
	lat, okLat := degrees(labels, LabelLat, 90, &a.problems)
	lon, okLon := degrees(labels, LabelLon, 180, &a.problems)
	_, hasLat := labels[LabelLat]
	_, hasLon := labels[LabelLon]
	switch {
	case okLat && okLon:
		a.location = &spec.Location{Lat: lat, Lon: lon}
	case hasLat != hasLon:
		set, unset := LabelLat, LabelLon
		if hasLon {
			set, unset = LabelLon, LabelLat
		}
		a.problems = append(a.problems, fmt.Sprintf("label %s without %s; the node has no location", set, unset))
	}
	if j, ok := labels[LabelJurisdiction]; ok {
		if spec.ValidJurisdiction(j) {
			a.jurisdiction = j
		} else {
			a.problems = append(a.problems, fmt.Sprintf("label %s=%q: use an ISO 3166-1 alpha-2 code like DE, or a zone like EU; the node has no jurisdiction", LabelJurisdiction, j))
		}
	}
	return a
}

// LabelProblems says what of a node's well-known labels the planner could
// not use, one sentence each; nil when all is well.
func LabelProblems(labels map[string]string) []string { return parseLabels(labels).problems }

// degrees reads label key as decimal degrees within ±limit; a value
// that is set but unusable adds a problem.
func degrees(labels map[string]string, key string, limit float64, problems *[]string) (float64, bool) {
	s, ok := labels[key]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
		*problems = append(*problems, fmt.Sprintf("label %s=%q: not a number of decimal degrees; the node has no location", key, s))
	case math.Abs(v) > limit:
		*problems = append(*problems, fmt.Sprintf("label %s=%q: out of -%g..%g; the node has no location", key, s, limit, limit))
	default:
		return v, true
	}
	return 0, false
}
