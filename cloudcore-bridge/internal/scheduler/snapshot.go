package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Snapshot is the fleet at one instant: every site, every copy, and the
// time. It is immutable once built, so any number of Place calls may share
// it, concurrently or not. NewSnapshot indexes it once (label columns,
// interned provider/region/jurisdiction, unit vectors for distances) so
// that each placement touches flat arrays, not maps.
type Snapshot struct {
	now        time.Time
	sites      []Site      // sorted by ID
	placements []Placement // sorted by ID
	idx        index
}

// index holds per-site columns, indexed like Snapshot.sites.
type index struct {
	byID     map[string]int32
	all      []int32 // 0..n-1
	kind     []SiteKind
	link     []LinkState
	provider attribute
	region   attribute
	juris    attribute
	capCPU   []int64
	capMem   []int64
	allocCPU []int64
	allocMem []int64
	unit     [][3]float64 // location on the unit sphere
	hasLoc   []bool
	baseMS   []float64
	prices   []Prices
	cooling  []bool // capacity error still in force at now
	anyCool  bool
	labels   map[string]*labelColumn
	// rttTo lists, per node ID, the sites that hold an RTT to it.
	rttTo map[string][]rttEntry
	// placements
	placeSite  []int32 // site of each placement, -1 when not in the snapshot
	bySite     [][]int32
	byWorkload map[string][]int32
}

// attribute interns one string attribute of the sites.
type attribute struct {
	of    []int32 // per site
	names []string
	ids   map[string]int32
}

func (a *attribute) add(v string) {
	id, ok := a.ids[v]
	if !ok {
		id = int32(len(a.names))
		a.ids[v] = id
		a.names = append(a.names, v)
	}
	a.of = append(a.of, id)
}

// labelColumn is one label key across all sites: the interned value of
// each site, or -1 when the site lacks the label.
type labelColumn struct {
	vals  []int32
	ids   map[string]int32
	names []string
}

type rttEntry struct {
	site int32
	ms   float64
}

// NewSnapshot checks and indexes sites and placements as of now. The
// order of sites and placements does not matter; the snapshot keeps its
// own sorted copies of the slices (but shares the Labels and RTT maps,
// which must not change afterwards).
func NewSnapshot(now time.Time, sites []Site, placements []Placement) (*Snapshot, error) {
	s := &Snapshot{
		now:        now,
		sites:      slices.Clone(sites),
		placements: slices.Clone(placements),
	}
	slices.SortFunc(s.sites, func(a, b Site) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(s.placements, func(a, b Placement) int { return cmp.Compare(a.ID, b.ID) })
	var errs []error
	for i := range s.sites {
		if err := checkSite(&s.sites[i]); err != nil {
			errs = append(errs, err)
		}
		if i > 0 && s.sites[i].ID == s.sites[i-1].ID {
			errs = append(errs, fmt.Errorf("site %q: listed twice", s.sites[i].ID))
		}
	}
	errs = append(errs, checkPlacements(s.placements)...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new snapshot: %w", err)
	}
	s.buildIndex()
	s.indexPlacements()
	return s, nil
}

// checkPlacements checks sorted placements.
func checkPlacements(ps []Placement) []error {
	var errs []error
	for i, p := range ps {
		if p.ID == "" || p.Workload == "" {
			errs = append(errs, fmt.Errorf("placement %d (%q of %q): needs an ID and a workload", i, p.ID, p.Workload))
		}
		if i > 0 && p.ID == ps[i-1].ID {
			errs = append(errs, fmt.Errorf("placement %q: listed twice", p.ID))
		}
	}
	return errs
}

func checkSite(s *Site) error {
	switch {
	case s.ID == "":
		return errors.New("site without an ID")
	case s.Kind != KindEdge && s.Kind != KindCloud:
		return fmt.Errorf("site %q: kind %v: use KindEdge or KindCloud", s.ID, s.Kind)
	case s.Capacity.MilliCPU < 0 || s.Capacity.Memory < 0 || s.Allocated.MilliCPU < 0 || s.Allocated.Memory < 0:
		return fmt.Errorf("site %q: negative capacity or allocation", s.ID)
	case s.Location != nil && (math.Abs(s.Location.Lat) > 90 || math.Abs(s.Location.Lon) > 180 || math.IsNaN(s.Location.Lat+s.Location.Lon)):
		return fmt.Errorf("site %q: location %v out of range", s.ID, *s.Location)
	case !validPrice(s.Prices.CPUHour) || !validPrice(s.Prices.GBHour) || !validPrice(s.Prices.EgressGB):
		return fmt.Errorf("site %q: prices %+v: use finite prices of 0 or more", s.ID, s.Prices)
	case s.BaseRTT < 0:
		return fmt.Errorf("site %q: negative base RTT %v", s.ID, s.BaseRTT)
	}
	return nil
}

func validPrice(p float64) bool { return p >= 0 && !math.IsInf(p, 1) }

func (s *Snapshot) buildIndex() {
	n := len(s.sites)
	x := &s.idx
	x.byID = make(map[string]int32, n)
	x.all = make([]int32, n)
	x.kind = make([]SiteKind, n)
	x.link = make([]LinkState, n)
	x.capCPU, x.capMem = make([]int64, n), make([]int64, n)
	x.allocCPU, x.allocMem = make([]int64, n), make([]int64, n)
	x.unit = make([][3]float64, n)
	x.hasLoc = make([]bool, n)
	x.baseMS = make([]float64, n)
	x.cooling = make([]bool, n)
	x.prices = make([]Prices, n)
	x.labels = make(map[string]*labelColumn)
	x.rttTo = make(map[string][]rttEntry)
	for _, a := range []*attribute{&x.provider, &x.region, &x.juris} {
		a.ids = make(map[string]int32)
		a.of = make([]int32, 0, n)
	}
	for i := range s.sites {
		site := &s.sites[i]
		id := int32(i)
		x.byID[site.ID] = id
		x.all[i] = id
		x.kind[i] = site.Kind
		x.link[i] = site.Link
		if site.Kind == KindCloud {
			x.link[i] = LinkOnline
		}
		x.provider.add(site.Provider)
		x.region.add(site.Region)
		x.juris.add(site.Jurisdiction)
		x.capCPU[i], x.capMem[i] = site.Capacity.MilliCPU, site.Capacity.Memory
		x.allocCPU[i], x.allocMem[i] = site.Allocated.MilliCPU, site.Allocated.Memory
		if site.Location != nil {
			x.unit[i] = unitVector(site.Location.Lat, site.Location.Lon)
			x.hasLoc[i] = true
		}
		x.baseMS[i] = ms(site.BaseRTT)
		x.prices[i] = site.Prices
		x.cooling[i] = site.Kind == KindCloud && site.CapacityErrorUntil.After(s.now)
		x.anyCool = x.anyCool || x.cooling[i]
		for k, v := range site.Labels {
			col := x.labels[k]
			if col == nil {
				col = &labelColumn{vals: make([]int32, n), ids: make(map[string]int32)}
				for j := range col.vals {
					col.vals[j] = -1
				}
				x.labels[k] = col
			}
			vid, ok := col.ids[v]
			if !ok {
				vid = int32(len(col.names))
				col.ids[v] = vid
				col.names = append(col.names, v)
			}
			col.vals[i] = vid
		}
		for node, d := range site.RTT {
			x.rttTo[node] = append(x.rttTo[node], rttEntry{site: id, ms: ms(d)})
		}
	}
}

// indexPlacements indexes the placements by site and by workload.
func (s *Snapshot) indexPlacements() {
	x := &s.idx
	x.placeSite = make([]int32, len(s.placements))
	x.bySite = make([][]int32, len(s.sites))
	x.byWorkload = make(map[string][]int32)
	for i, p := range s.placements {
		si, ok := x.byID[p.Site]
		if !ok {
			si = -1
		} else {
			x.bySite[si] = append(x.bySite[si], int32(i))
		}
		x.placeSite[i] = si
		x.byWorkload[p.Workload] = append(x.byWorkload[p.Workload], int32(i))
	}
}

// withPlacements returns a snapshot sharing s's sites and site index but
// holding placements instead of s's.
func (s *Snapshot) withPlacements(placements []Placement) (*Snapshot, error) {
	out := &Snapshot{now: s.now, sites: s.sites, placements: slices.Clone(placements), idx: s.idx}
	slices.SortFunc(out.placements, func(a, b Placement) int { return cmp.Compare(a.ID, b.ID) })
	if err := errors.Join(checkPlacements(out.placements)...); err != nil {
		return nil, fmt.Errorf("placements: %w", err)
	}
	out.indexPlacements()
	return out, nil
}

// Now is the snapshot's time.
func (s *Snapshot) Now() time.Time { return s.now }

// Sites returns the sites sorted by ID. The slice is the snapshot's own:
// do not modify it.
func (s *Snapshot) Sites() []Site { return s.sites }

// Site returns the site with id.
func (s *Snapshot) Site(id string) (*Site, bool) {
	i, ok := s.idx.byID[id]
	if !ok {
		return nil, false
	}
	return &s.sites[i], true
}

// Placements returns the copies sorted by ID. The slice is the
// snapshot's own: do not modify it.
func (s *Snapshot) Placements() []Placement { return s.placements }

// Len returns the number of sites.
func (s *Snapshot) Len() int { return len(s.sites) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
