package spec

// Tier restricts a workload to edge nodes, cloud regions, or either.
type Tier string

// Tiers.
const (
	TierEdge  Tier = "edge"
	TierCloud Tier = "cloud"
	TierAny   Tier = "any"
)

// Placement says where a workload may run and what to optimise.
//
// There are two ways to place: manually, by NodeName, or by policy, with a
// NodeSelector, Affinities, Spread and an Objective. Hard constraints (Tier,
// Providers, Regions, Jurisdictions, MaxLatency) apply to both: a manual
// placement that breaks data residency is refused, not obeyed.
type Placement struct {
	// NodeName pins the workload to one site by ID.
	NodeName string `yaml:"nodeName,omitempty" json:"nodeName,omitempty"`
	Tier     Tier   `yaml:"tier,omitempty" json:"tier,omitempty"`
	// Replicas is the number of copies; ParseWorkload treats an omitted
	// value as 1.
	Replicas     int           `yaml:"replicas" json:"replicas"`
	NodeSelector *NodeSelector `yaml:"nodeSelector,omitempty" json:"nodeSelector,omitempty"`
	// Providers and Regions, when set, are the only cloud providers and
	// regions allowed. An edge node matches them through its own provider
	// and region, which are usually empty.
	Providers []string `yaml:"providers,omitempty" json:"providers,omitempty"`
	Regions   []string `yaml:"regions,omitempty" json:"regions,omitempty"`
	// Jurisdictions, when set, are where the workload's data may be
	// processed: ISO 3166-1 alpha-2 country codes (DE) or zones that stand
	// for their members (EU, EEA). A site outside all of them is never
	// chosen.
	Jurisdictions []string `yaml:"jurisdictions,omitempty" json:"jurisdictions,omitempty"`
	// DataSource is where the workload's data is produced; MaxLatency and
	// the latency objective measure round trips to it.
	DataSource *DataSource `yaml:"dataSource,omitempty" json:"dataSource,omitempty"`
	// MaxLatency bounds the round-trip time from a site to DataSource.
	MaxLatency Duration  `yaml:"maxLatency,omitempty" json:"maxLatency,omitempty"`
	Objective  Objective `yaml:"objective,omitempty" json:"objective,omitzero"`
	Spread     *Spread   `yaml:"spread,omitempty" json:"spread,omitempty"`
	// Affinities are soft preferences: sites matching a positive weight are
	// favoured, a negative weight avoided.
	Affinities []Affinity `yaml:"affinities,omitempty" json:"affinities,omitempty"`
	// Priority ranks workloads; higher places first and, with Preemption,
	// may displace lower-priority work from full edge nodes.
	Priority   int  `yaml:"priority,omitempty" json:"priority,omitempty"`
	Preemption bool `yaml:"preemption,omitempty" json:"preemption,omitempty"`
}

// NodeSelector selects sites by label, like a Kubernetes label selector:
// every entry of MatchLabels and every expression must hold.
type NodeSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels,omitempty" json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `yaml:"matchExpressions,omitempty" json:"matchExpressions,omitempty"`
}

// Operator is a label requirement's test.
type Operator string

// Operators.
const (
	OpIn           Operator = "In"
	OpNotIn        Operator = "NotIn"
	OpExists       Operator = "Exists"
	OpDoesNotExist Operator = "DoesNotExist"
)

// Requirement is one label test. NotIn and DoesNotExist hold for a site
// without the label.
type Requirement struct {
	Key      string   `yaml:"key" json:"key"`
	Operator Operator `yaml:"operator" json:"operator"`
	Values   []string `yaml:"values,omitempty" json:"values,omitempty"`
}

// DataSource locates the workload's data: a node by ID, or a point.
// Exactly one is set.
type DataSource struct {
	Node     string    `yaml:"node,omitempty" json:"node,omitempty"`
	Location *Location `yaml:"location,omitempty" json:"location,omitempty"`
}

// Location is a point on Earth in decimal degrees (WGS 84).
type Location struct {
	Lat float64 `yaml:"lat" json:"lat"`
	Lon float64 `yaml:"lon" json:"lon"`
}

// Spread keeps replicas even across the values of a site label: placing a
// replica must not make any value hold more than MaxSkew replicas over the
// least-used value.
type Spread struct {
	TopologyKey string `yaml:"topologyKey" json:"topologyKey"`
	MaxSkew     int    `yaml:"maxSkew" json:"maxSkew"`
}

// Affinity favours (Weight > 0) or avoids (Weight < 0) the sites Selector
// matches. Weight is -100..100.
type Affinity struct {
	Selector NodeSelector `yaml:"selector" json:"selector"`
	Weight   int          `yaml:"weight" json:"weight"`
}

// MaxReplicas bounds Placement.Replicas.
const MaxReplicas = 1000

// MaxPriority bounds Placement.Priority.
const MaxPriority = 1_000_000_000

// MaxRequirements bounds the requirements of one selector.
const MaxRequirements = 32
