package registry

import (
	"time"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Node is what the bridge knows about one edge node. It is stored as JSON
// and served as is by the HTTP API, so field names are part of the API.
//
// The maps, slices and pointers of a stored Node are never modified in
// place: an update replaces them. That lets readers take a shallow copy
// under the registry's lock and use it freely afterwards.
type Node struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`

	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`

	Online bool `json:"online"`
	// OfflineReason says why the node went offline: "clean",
	// "keepalive_timeout", "connection_lost", "will", "refused",
	// "bridge_shutdown", "bridge_restart". Empty while online.
	OfflineReason  string    `json:"offlineReason,omitempty"`
	ConnectedSince time.Time `json:"connectedSince,omitzero"`

	AgentVersion string `json:"agentVersion,omitempty"`
	// Capability is the protocol capability version the node speaks.
	Capability uint32 `json:"capability,omitempty"`
	// BootEpoch counts the agent's starts; it tells a restart from a
	// reconnect.
	BootEpoch uint64 `json:"bootEpoch,omitempty"`
	// HelloAt is the node-side time of its latest hello, which is also the
	// time of that connection's last will: a will stamped earlier belongs
	// to an older connection.
	HelloAt time.Time `json:"helloAt,omitzero"`
	Facts   Facts     `json:"facts"`

	// LastReport is the newest report (see SetReport). Inside an Update
	// it may not be converted yet: test LastReportAt for "has a report".
	LastReport *Report `json:"lastReport,omitempty"`
	// LastReportAt is when the last report was produced on the node.
	LastReportAt time.Time `json:"lastReportAt,omitzero"`
	// pendingReport is a report not yet converted into LastReport.
	pendingReport *pb.ResourceReport
	// statics caches Facts as a Hello for protocol.ExpandReport.
	statics *pb.Hello

	// RecentEvents are the last MaxRecentEvents events and gaps, oldest
	// first.
	RecentEvents []Event `json:"recentEvents,omitempty"`

	// Applied is the set of durable messages applied (see MarkApplied).
	// Inside an Update it may lag behind the live set; it is brought up to
	// date when the record is read or written.
	Applied Applied `json:"applied"`
	// applied is the live applied set and what the node is owed.
	applied appliedState

	Counters Counters `json:"counters"`
}

// MaxRecentEvents is how many events a Node keeps.
const MaxRecentEvents = 8

// Facts are a node's static properties, from its hello.
type Facts struct {
	Hostname    string `json:"hostname,omitempty"`
	OS          string `json:"os,omitempty"`
	Arch        string `json:"arch,omitempty"`
	Platform    string `json:"platform,omitempty"`
	Kernel      string `json:"kernel,omitempty"`
	CPUModel    string `json:"cpuModel,omitempty"`
	CPUCores    uint32 `json:"cpuCores,omitempty"`
	MemTotalKiB uint64 `json:"memTotalKiB,omitempty"`
	// BootTime is the host's boot time.
	BootTime time.Time `json:"bootTime,omitzero"`
	// Static quantities that reports leave out while unchanged
	// (protocol.CompactReport).
	SwapTotalKiB          uint64     `json:"swapTotalKiB,omitempty"`
	Disks                 []DiskSize `json:"disks,omitempty"`
	ContainerCPUMaxMilli  uint32     `json:"containerCpuMaxMilli,omitempty"`
	ContainerMemoryMaxKiB uint64     `json:"containerMemoryMaxKiB,omitempty"`
	ReportIntervalMs      uint32     `json:"reportIntervalMs,omitempty"`
}

// DiskSize is the size of one mounted file system.
type DiskSize struct {
	Mount    string `json:"mount"`
	TotalKiB uint64 `json:"totalKiB"`
}

// Counters count what the bridge received from a node since it first
// appeared.
type Counters struct {
	// Messages is the number of MQTT messages accepted, including those
	// whose durable content turned out to be a duplicate.
	Messages uint64 `json:"messages"`
	// Applied is the number of durable messages (reports, summaries,
	// events, gaps, alone or in batches) applied to the record, and
	// Duplicates those dropped because their sequence number was already
	// applied.
	Applied    uint64 `json:"applied"`
	Duplicates uint64 `json:"duplicates"`
	// Rejects is the number of messages, subscriptions and connections
	// refused.
	Rejects uint64 `json:"rejects"`
	Events  uint64 `json:"events"`
	// Gaps counts gap markers, and Dropped the messages they say the node
	// could not keep.
	Gaps    uint64 `json:"gaps"`
	Dropped uint64 `json:"dropped"`
}

// Report is a resource report in a JSON-friendly form. Units are those of
// the wire (KiB, permille, hundredths, tenths of a degree).
type Report struct {
	CPUCores     uint32 `json:"cpuCores"`
	CPUPermille  uint32 `json:"cpuPermille"`
	Load1Centi   uint32 `json:"load1Centi"`
	Load5Centi   uint32 `json:"load5Centi"`
	Load15Centi  uint32 `json:"load15Centi"`
	MemTotalKiB  uint64 `json:"memTotalKiB"`
	MemUsedKiB   uint64 `json:"memUsedKiB"`
	SwapTotalKiB uint64 `json:"swapTotalKiB,omitempty"`
	SwapUsedKiB  uint64 `json:"swapUsedKiB,omitempty"`
	Disks        []Disk `json:"disks,omitempty"`
	Nets         []Net  `json:"nets,omitempty"`
	Temps        []Temp `json:"temps,omitempty"`
	UptimeS      uint64 `json:"uptimeS"`
	// Container is set when the agent runs under cgroup limits.
	Container  *Container `json:"container,omitempty"`
	IntervalMs uint32     `json:"intervalMs,omitempty"`
}

// Disk is the usage of one mount.
type Disk struct {
	Mount    string `json:"mount"`
	TotalKiB uint64 `json:"totalKiB"`
	UsedKiB  uint64 `json:"usedKiB"`
}

// Net is the traffic rate of one interface.
type Net struct {
	Iface       string `json:"iface"`
	RxBytesPerS uint64 `json:"rxBytesPerS"`
	TxBytesPerS uint64 `json:"txBytesPerS"`
}

// Temp is one temperature sensor.
type Temp struct {
	Sensor      string `json:"sensor"`
	DeciCelsius int32  `json:"deciCelsius"`
}

// Container are the cgroup limits of the agent.
type Container struct {
	CPUMaxMilli      uint32 `json:"cpuMaxMilli"`
	MemoryMaxKiB     uint64 `json:"memoryMaxKiB"`
	MemoryCurrentKiB uint64 `json:"memoryCurrentKiB"`
}

// Event is an event or gap reported by a node.
type Event struct {
	At         time.Time         `json:"at"`
	Severity   string            `json:"severity"`
	Kind       string            `json:"kind"`
	Message    string            `json:"message,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}
