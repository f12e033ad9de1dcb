package spec

import "time"

// Document identity of a workload.
const (
	APIVersion   = "skyedge.io/v1alpha1"
	KindWorkload = "Workload"
)

// Workload is one versioned workload document.
type Workload struct {
	APIVersion string       `yaml:"apiVersion" json:"apiVersion"`
	Kind       string       `yaml:"kind" json:"kind"`
	Metadata   Metadata     `yaml:"metadata" json:"metadata"`
	Spec       WorkloadSpec `yaml:"spec" json:"spec"`
}

// Metadata names a workload and carries free-form labels.
type Metadata struct {
	// Name identifies the workload fleet-wide: 1 to 63 characters of a-z,
	// 0-9 and '-', starting and ending with a letter or digit.
	Name   string            `yaml:"name" json:"name"`
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Runtime says how a workload's process is started.
type Runtime string

// Runtimes.
const (
	RuntimeExec   Runtime = "exec"   // a host process, started by the agent
	RuntimeDocker Runtime = "docker" // a container, started through the Docker API
)

// WorkloadSpec is the desired state of a workload.
type WorkloadSpec struct {
	Runtime Runtime     `yaml:"runtime" json:"runtime"`
	Exec    *ExecSpec   `yaml:"exec,omitempty" json:"exec,omitempty"`
	Docker  *DockerSpec `yaml:"docker,omitempty" json:"docker,omitempty"`
	// Resources are what one replica reserves on its site.
	Resources Resources `yaml:"resources" json:"resources"`
	Restart   Restart   `yaml:"restart,omitempty" json:"restart,omitzero"`
	Health    *Health   `yaml:"health,omitempty" json:"health,omitempty"`
	// StopGracePeriod is how long a stopping workload gets between the
	// polite signal (SIGTERM, docker stop) and the forced kill.
	StopGracePeriod Duration   `yaml:"stopGracePeriod,omitempty" json:"stopGracePeriod,omitempty"`
	Disconnect      Disconnect `yaml:"disconnect,omitempty" json:"disconnect,omitzero"`
	Placement       Placement  `yaml:"placement,omitempty" json:"placement,omitzero"`
}

// ExecSpec runs a command on the host.
type ExecSpec struct {
	// Command is the program: an absolute path, or a name looked up in PATH.
	Command    string            `yaml:"command" json:"command"`
	Args       []string          `yaml:"args,omitempty" json:"args,omitempty"`
	Env        map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	WorkingDir string            `yaml:"workingDir,omitempty" json:"workingDir,omitempty"`
}

// DockerSpec runs a container image.
type DockerSpec struct {
	Image string            `yaml:"image" json:"image"`
	Args  []string          `yaml:"args,omitempty" json:"args,omitempty"`
	Env   map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Ports []Port            `yaml:"ports,omitempty" json:"ports,omitempty"`
}

// Port publishes a container port on the host.
type Port struct {
	Container int `yaml:"container" json:"container"`
	// Host is the port on the node; 0 publishes on the same number as
	// Container.
	Host     int    `yaml:"host,omitempty" json:"host,omitempty"`
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"` // tcp (default) or udp
}

// Resources are the reservations of one replica, as Kubernetes-style
// quantities. Placement never lets reservations exceed a site's capacity.
type Resources struct {
	// CPU in cores: "250m", "0.5", "2".
	CPU Quantity `yaml:"cpu" json:"cpu"`
	// Memory in bytes: "64Mi", "1G", "512Ki".
	Memory Quantity `yaml:"memory" json:"memory"`
	// EgressPerHour is the data, in bytes, the workload is expected to send
	// out of its site each hour ("2Gi"); it prices egress when a cloud
	// region is considered. Optional.
	EgressPerHour Quantity `yaml:"egressPerHour,omitempty" json:"egressPerHour,omitempty"`
}

// RestartPolicyName says when a finished workload is started again.
type RestartPolicyName string

// Restart policies.
const (
	RestartAlways    RestartPolicyName = "always"
	RestartOnFailure RestartPolicyName = "on-failure"
	RestartNever     RestartPolicyName = "never"
)

// Restart controls restarts: the delay starts at InitialDelay and doubles
// up to MaxDelay.
type Restart struct {
	Policy       RestartPolicyName `yaml:"policy,omitempty" json:"policy,omitempty"`
	InitialDelay Duration          `yaml:"initialDelay,omitempty" json:"initialDelay,omitempty"`
	MaxDelay     Duration          `yaml:"maxDelay,omitempty" json:"maxDelay,omitempty"`
	// MaxRestarts caps the restarts; 0 means no cap.
	MaxRestarts int `yaml:"maxRestarts,omitempty" json:"maxRestarts,omitempty"`
}

// Health is a periodic probe; a workload failing FailureThreshold probes in
// a row is restarted. Exactly one of Exec, HTTP and TCP is set.
type Health struct {
	Exec             *ExecProbe `yaml:"exec,omitempty" json:"exec,omitempty"`
	HTTP             *HTTPProbe `yaml:"http,omitempty" json:"http,omitempty"`
	TCP              *TCPProbe  `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	Interval         Duration   `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout          Duration   `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	FailureThreshold int        `yaml:"failureThreshold,omitempty" json:"failureThreshold,omitempty"`
}

// ExecProbe passes when the command exits 0.
type ExecProbe struct {
	Command []string `yaml:"command" json:"command"`
}

// HTTPProbe passes on a 2xx or 3xx answer to a GET of URL.
type HTTPProbe struct {
	URL string `yaml:"url" json:"url"`
}

// TCPProbe passes when a connection to Address (host:port) opens.
type TCPProbe struct {
	Address string `yaml:"address" json:"address"`
}

// ReconcilePolicy chooses which copy survives when a node returns and both
// its original copy and a replacement run.
type ReconcilePolicy string

// Reconcile policies (Nomad's disconnect.reconcile).
const (
	ReconcileKeepOriginal    ReconcilePolicy = "keep-original"
	ReconcileKeepReplacement ReconcilePolicy = "keep-replacement"
	ReconcileBestScore       ReconcilePolicy = "best-score"
	ReconcileLongestRunning  ReconcilePolicy = "longest-running"
)

// Disconnect is what happens while the workload's node is unreachable,
// after Nomad's disconnect block. A silent node is "disconnected" and its
// copy "unknown" until LostAfter; only then is the node lost and the copy
// replaced, unless Replace asks for a replacement right away.
type Disconnect struct {
	LostAfter Duration `yaml:"lostAfter,omitempty" json:"lostAfter,omitempty"`
	// Replace places a replacement as soon as the node is disconnected,
	// keeping the original as unknown.
	Replace   bool            `yaml:"replace,omitempty" json:"replace,omitempty"`
	Reconcile ReconcilePolicy `yaml:"reconcile,omitempty" json:"reconcile,omitempty"`
	// StopAfter makes the agent stop the workload itself after this long
	// without the cloud; 0 keeps it running indefinitely.
	StopAfter Duration `yaml:"stopAfter,omitempty" json:"stopAfter,omitempty"`
}

// Defaults filled by Default.
const (
	DefaultRestartInitialDelay = time.Second
	DefaultRestartMaxDelay     = 5 * time.Minute
	DefaultHealthInterval      = 10 * time.Second
	DefaultHealthTimeout       = 2 * time.Second
	DefaultFailureThreshold    = 3
	DefaultStopGracePeriod     = 10 * time.Second
	DefaultLostAfter           = 5 * time.Minute
	DefaultReconcile           = ReconcileBestScore
)

// Default fills every unset field that has a default: tier any, restart
// always with 1s..5m delays, health every 10s with a 2s timeout and 3
// failures, a 10s stop grace period, and a disconnect policy of 5m then
// best-score. It leaves replicas alone: ParseWorkload treats an omitted
// replicas as 1, while an explicit 0 keeps the workload defined but placed
// nowhere.
func (w *Workload) Default() {
	s := &w.Spec
	if s.Restart.Policy == "" {
		s.Restart.Policy = RestartAlways
	}
	if s.Restart.InitialDelay == 0 {
		s.Restart.InitialDelay = Duration(DefaultRestartInitialDelay)
	}
	if s.Restart.MaxDelay == 0 {
		s.Restart.MaxDelay = Duration(max(DefaultRestartMaxDelay, s.Restart.InitialDelay.Std()))
	}
	if h := s.Health; h != nil {
		if h.Interval == 0 {
			h.Interval = Duration(DefaultHealthInterval)
		}
		if h.Timeout == 0 {
			h.Timeout = Duration(min(DefaultHealthTimeout, h.Interval.Std()))
		}
		if h.FailureThreshold == 0 {
			h.FailureThreshold = DefaultFailureThreshold
		}
	}
	if s.StopGracePeriod == 0 {
		s.StopGracePeriod = Duration(DefaultStopGracePeriod)
	}
	if s.Disconnect.LostAfter == 0 {
		s.Disconnect.LostAfter = Duration(DefaultLostAfter)
	}
	if s.Disconnect.Reconcile == "" {
		s.Disconnect.Reconcile = DefaultReconcile
	}
	if s.Placement.Tier == "" {
		s.Placement.Tier = TierAny
	}
}
