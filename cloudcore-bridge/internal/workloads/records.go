package workloads

import (
	"strings"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/protocol/spec"
	"github.com/skyedge/skyedge/sync/desired"
)

// Workload is one workload as applied through the API.
type Workload struct {
	// Spec is the document with defaults filled.
	Spec spec.Workload `json:"spec"`
	// Revision is the scheduler's revision of Spec: copies of another
	// revision are replaced.
	Revision  string    `json:"revision"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Deleting is set by a delete; the record goes once every copy has
	// stopped or its node is lost.
	Deleting bool `json:"deleting,omitempty"`
}

// Name is the workload's name.
func (w *Workload) Name() string { return w.Spec.Metadata.Name }

// Copy states as the bridge tracks them.
const (
	// CopyPending: assigned, not confirmed running (or restarting).
	CopyPending = "pending"
	// CopyRunning: its node reported it running.
	CopyRunning = "running"
	// CopyFailed: its node reported it cannot run, or it ended for good.
	CopyFailed = "failed"
)

// Site kinds of a copy.
const (
	KindEdge  = "edge"
	KindCloud = "cloud"
)

// Copy is one placed copy of a workload: a scheduler placement, where it
// runs and how far it got. A copy is active until it is stopping; a
// stopping copy is kept, holding its resources, until its node confirms
// it stopped or is lost.
type Copy struct {
	ID       string `json:"id"`
	Workload string `json:"workload"`
	Revision string `json:"revision"`
	Slot     int    `json:"slot"`
	// Site is the scheduler's choice (a node ID or a cloud region ID);
	// Kind is edge or cloud.
	Site string `json:"site"`
	Kind string `json:"kind"`
	// Node is the agent that runs the copy: Site for an edge node, an
	// agent serving the region for a cloud copy; "" while a cloud copy
	// waits for one (Reason says why).
	Node      string              `json:"node,omitempty"`
	Resources scheduler.Resources `json:"resources"`
	Priority  int                 `json:"priority,omitempty"`
	// State is CopyPending, CopyRunning or CopyFailed; Started is when it
	// started running, by its node's clock.
	State   string    `json:"state"`
	Started time.Time `json:"started,omitzero"`
	// Replaces is the ID of the copy this one took over from, and
	// ReplacesNode the node that copy ran on.
	Replaces     string    `json:"replaces,omitempty"`
	ReplacesNode string    `json:"replacesNode,omitempty"`
	PlacedAt     time.Time `json:"placedAt"`
	// Jurisdiction is the site's, Residency the rule that allowed it.
	Jurisdiction string  `json:"jurisdiction,omitempty"`
	Residency    string  `json:"residency,omitempty"`
	CostPerHour  float64 `json:"costPerHour"`
	Score        float64 `json:"score"`
	// SpecJSON is the spec of Revision, sent while the copy runs an
	// older revision than its workload.
	SpecJSON []byte `json:"specJSON,omitempty"`
	// AssignedGeneration is the node generation that first carried the
	// copy; statuses of older generations are about something else.
	// Generation is the latest node generation that changed it.
	AssignedGeneration uint64 `json:"assignedGeneration,omitempty"`
	Generation         uint64 `json:"generation,omitempty"`
	// Reason says why a copy waits (no agent serves its region).
	Reason string `json:"reason,omitempty"`

	Stopping  bool      `json:"stopping,omitempty"`
	StopCause string    `json:"stopCause,omitempty"`
	StopAt    time.Time `json:"stopAt,omitzero"`
	// StopGeneration is the node generation that removed the copy's
	// assignment, or that replaced it with a newer copy's.
	StopGeneration uint64 `json:"stopGeneration,omitempty"`
}

// Placement is c as the scheduler sees it. A failed copy is pending to
// the scheduler: not confirmed running, which is what makes a cloud
// region's capacity error fail it over.
func (c *Copy) Placement() scheduler.Placement {
	p := scheduler.Placement{
		ID: c.ID, Workload: c.Workload, Revision: c.Revision, Replica: c.Slot, Site: c.Site,
		Resources: c.Resources, Priority: c.Priority, State: scheduler.StatePending, Replaces: c.Replaces,
	}
	if c.State == CopyRunning {
		p.State, p.Started = scheduler.StateRunning, c.Started
	}
	return p
}

// Status is the latest status a node reported about one workload.
type Status struct {
	Workload string `json:"workload"`
	Node     string `json:"node"`
	// Outbox and Seq order the statuses of one node: a status with a
	// lower sequence number of the same outbox is older and ignored.
	Outbox     string    `json:"outbox,omitempty"`
	Seq        uint64    `json:"seq"`
	Generation uint64    `json:"generation"`
	State      string    `json:"state"`
	Restarts   int       `json:"restarts,omitempty"`
	ExitCode   *int      `json:"exitCode,omitempty"`
	LastError  string    `json:"lastError,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	Since      time.Time `json:"since,omitzero"`
	// At is when the node produced the status (its clock), ReceivedAt
	// when the bridge applied it.
	At          time.Time `json:"at,omitzero"`
	ReceivedAt  time.Time `json:"receivedAt"`
	PID         int       `json:"pid,omitempty"`
	ContainerID string    `json:"containerId,omitempty"`
	Adopted     bool      `json:"adopted,omitempty"`
	// Orphan: the node runs a workload the bridge does not assign it.
	Orphan bool `json:"orphan,omitempty"`
}

// Status states, as in apiv1.Replica.State.
const (
	StatePending   = "pending"
	StateStarting  = "starting"
	StateRunning   = "running"
	StateUnhealthy = "unhealthy"
	StateExited    = "exited"
	StateFailed    = "failed"
	StateStopped   = "stopped"
	StateRemoved   = "removed"
)

// Inactive reports whether a status state means nothing runs and nothing
// will be restarted by the node.
func Inactive(state string) bool {
	return state == StateStopped || state == StateRemoved || state == StateFailed
}

// NodeState is a node's desired set and the generation it acknowledged.
type NodeState struct {
	Set   desired.Set `json:"set"`
	Acked uint64      `json:"acked"`
}

// capacityMarkers are what a node says in a failed status when a cloud
// region refused to start a copy for lack of capacity.
var capacityMarkers = []string{"capacity error", "insufficient capacity", "out of capacity", "capacity exceeded", "quota exceeded"}

// IsCapacityError reports whether a failed status's words say the site
// lacked capacity. Agents that run copies in cloud regions report such
// failures with one of the phrases "capacity error", "insufficient
// capacity", "out of capacity", "capacity exceeded" or "quota exceeded"
// in the reason or the last error.
func IsCapacityError(reason, lastError string) bool {
	s := strings.ToLower(reason + "\n" + lastError)
	for _, m := range capacityMarkers {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
