// Package catalog reads the catalog of cloud regions the scheduler may
// place workloads in: for each region its provider, jurisdiction,
// location, prices, capacity, round-trip times to known nodes and labels.
// Regions become scheduler.Sites of kind cloud.
//
//	apiVersion: skyedge.io/v1alpha1
//	kind: CloudCatalog
//	regions:
//	  - id: aws-eu-central-1
//	    provider: aws
//	    region: eu-central-1
//	    jurisdiction: DE
//	    location: {lat: 50.11, lon: 8.68}
//	    prices: {cpuHour: 0.04656, gbHour: 0.00511, egressGB: 0.09}
//	    capacity: {cpu: "2000", memory: 8Ti}
//	    rtt: {factory-7: 9ms}
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/protocol/spec"
)

// KindCloudCatalog is the document kind.
const KindCloudCatalog = "CloudCatalog"

// ErrInvalid is wrapped by the errors of LoadCatalog and Validate.
var ErrInvalid = errors.New("invalid cloud catalog")

// Catalog is a versioned list of cloud regions.
type Catalog struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Regions    []Region `yaml:"regions"`
}

// Region is one cloud region as a placement target.
type Region struct {
	// ID names the region as a site, unique among all sites, with the
	// rules of node IDs: aws-eu-central-1.
	ID       string `yaml:"id"`
	Provider string `yaml:"provider"`
	Region   string `yaml:"region"`
	// Jurisdiction is the ISO 3166-1 alpha-2 country (or zone) whose law
	// applies to data processed there.
	Jurisdiction string        `yaml:"jurisdiction"`
	Location     spec.Location `yaml:"location"`
	Prices       Prices        `yaml:"prices"`
	// Capacity is what SkyEdge may reserve there: the account's quota.
	Capacity Capacity `yaml:"capacity"`
	// BaseRTT is added to distance-based latency estimates.
	BaseRTT spec.Duration `yaml:"baseRTT,omitempty"`
	// RTT lists known round-trip times to nodes, by node ID; they take
	// precedence over estimates.
	RTT    map[string]spec.Duration `yaml:"rtt,omitempty"`
	Labels map[string]string        `yaml:"labels,omitempty"`
	// Executor names how the bridge runs workloads there (a Kubernetes
	// context, say); placement does not read it.
	Executor string `yaml:"executor,omitempty"`
}

// Prices are on-demand US dollar prices.
type Prices struct {
	CPUHour  float64 `yaml:"cpuHour"`
	GBHour   float64 `yaml:"gbHour"`
	EgressGB float64 `yaml:"egressGB"`
}

// Capacity is a region's quota as quantities.
type Capacity struct {
	CPU    spec.Quantity `yaml:"cpu"`
	Memory spec.Quantity `yaml:"memory"`
}

// LoadCatalog decodes a YAML catalog, rejecting unknown fields, and
// validates it.
func LoadCatalog(data []byte) (*Catalog, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("load catalog: %w: empty document", ErrInvalid)
		}
		return nil, fmt.Errorf("load catalog: %w: %w", ErrInvalid, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	return &c, nil
}

// Validate returns every problem of the catalog joined, each a
// *spec.FieldError with the field's path and the fix, wrapped in
// ErrInvalid; or nil.
func (c *Catalog) Validate() error {
	var errs []error
	add := func(field, value, fix string) { errs = append(errs, spec.NewFieldError(field, value, fix)) }
	if c.APIVersion != spec.APIVersion {
		add("apiVersion", c.APIVersion, "use "+spec.APIVersion)
	}
	if c.Kind != KindCloudCatalog {
		add("kind", c.Kind, "use "+KindCloudCatalog)
	}
	if len(c.Regions) == 0 {
		add("regions", "", "list at least one region")
	}
	seen := map[string]bool{}
	for i := range c.Regions {
		r := &c.Regions[i]
		f := fmt.Sprintf("regions[%d]", i)
		if err := protocol.ValidateNodeID(r.ID); err != nil {
			add(f+".id", r.ID, "use lower-case letters, digits and - _ . inside, like aws-eu-central-1")
		} else if seen[r.ID] {
			add(f+".id", r.ID, "listed twice; region IDs must be unique")
		}
		seen[r.ID] = true
		if r.Provider == "" {
			add(f+".provider", "", "required, like aws")
		}
		if r.Region == "" {
			add(f+".region", "", "required, like eu-central-1")
		}
		if !spec.ValidJurisdiction(r.Jurisdiction) {
			add(f+".jurisdiction", r.Jurisdiction, "use an ISO 3166-1 alpha-2 country code like DE, or EU")
		}
		if err := spec.ValidateLocation(f+".location", r.Location); err != nil {
			errs = append(errs, err)
		}
		prices := []struct {
			name string
			v    float64
		}{{"cpuHour", r.Prices.CPUHour}, {"gbHour", r.Prices.GBHour}, {"egressGB", r.Prices.EgressGB}}
		for _, p := range prices {
			if p.v < 0 || math.IsNaN(p.v) || math.IsInf(p.v, 0) {
				add(f+".prices."+p.name, strconv.FormatFloat(p.v, 'g', -1, 64), "use a price of 0 or more in dollars")
			}
		}
		if v, err := r.Capacity.CPU.MilliCPU(); err != nil || v <= 0 {
			add(f+".capacity.cpu", string(r.Capacity.CPU), "use a positive CPU quantity like 2000 (cores)")
		}
		if v, err := r.Capacity.Memory.Bytes(); err != nil || v <= 0 {
			add(f+".capacity.memory", string(r.Capacity.Memory), "use a positive byte quantity like 8Ti")
		}
		if r.BaseRTT < 0 {
			add(f+".baseRTT", r.BaseRTT.String(), "use a duration of 0 or more")
		}
		for _, node := range slices.Sorted(maps.Keys(r.RTT)) {
			d := r.RTT[node]
			if protocol.ValidateNodeID(node) != nil {
				add(f+".rtt", node, "key must be a node ID")
			}
			if d < 0 {
				add(f+".rtt."+node, d.String(), "use a duration of 0 or more")
			}
		}
		if err := spec.ValidateLabels(f+".labels", r.Labels); err != nil {
			errs = append(errs, err)
		}
		if t, ok := r.Labels["tier"]; ok && t != "cloud" {
			add(f+".labels.tier", t, "remove it: a region's tier label is always cloud")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Sites returns the regions as scheduler sites of kind cloud. Each
// carries its own labels plus tier=cloud, provider, region and
// jurisdiction, so selectors can match on them. Call it on a valid
// catalog.
func (c *Catalog) Sites() []scheduler.Site {
	out := make([]scheduler.Site, 0, len(c.Regions))
	for _, r := range c.Regions {
		cpu, _ := r.Capacity.CPU.MilliCPU()
		mem, _ := r.Capacity.Memory.Bytes()
		labels := map[string]string{"tier": "cloud", "provider": r.Provider, "region": r.Region, "jurisdiction": r.Jurisdiction}
		for k, v := range r.Labels {
			labels[k] = v
		}
		loc := r.Location
		s := scheduler.Site{
			ID:           r.ID,
			Kind:         scheduler.KindCloud,
			Labels:       labels,
			Provider:     r.Provider,
			Region:       r.Region,
			Jurisdiction: r.Jurisdiction,
			Location:     &loc,
			Capacity:     scheduler.Resources{MilliCPU: cpu, Memory: mem},
			BaseRTT:      r.BaseRTT.Std(),
			Prices:       scheduler.Prices{CPUHour: r.Prices.CPUHour, GBHour: r.Prices.GBHour, EgressGB: r.Prices.EgressGB},
		}
		if len(r.RTT) > 0 {
			s.RTT = make(map[string]time.Duration, len(r.RTT))
			for node, d := range r.RTT {
				s.RTT[node] = d.Std()
			}
		}
		out = append(out, s)
	}
	return out
}
