// Package apiv1 holds the JSON documents of the bridge's HTTP API for
// workloads, placement and sites: the bridge serves them and the skyedge
// CLI reads them. It has no logic and imports nothing of the bridge, so a
// client depends on the shapes only.
//
// Routes (all but the probes require the bearer token when one is set):
//
//	POST   /api/v1/workloads               apply a Workload document (YAML or JSON) -> Workload
//	GET    /api/v1/workloads               -> WorkloadList
//	GET    /api/v1/workloads/{name}        -> Workload (desired, replicas with live status)
//	DELETE /api/v1/workloads/{name}        -> Workload as it was, replicas being stopped
//	GET    /api/v1/workloads/{name}/explain -> Plan of the workload's latest placement decision
//	GET    /api/v1/workloads/{name}/logs?node=N&tail=N -> Logs, fetched from the node over MQTT
//	POST   /api/v1/plan                    dry run of a Workload document -> Plan
//	GET    /api/v1/sites                   -> SiteList (edge nodes and cloud regions)
//	GET    /api/v1/placements              residency audit -> PlacementList; ?workload=NAME
//
// Errors are {"error": "..."} with a 4xx or 5xx status; a document that
// fails validation answers 400 with the field named in the message.
//
// Field names are part of the API: add fields, never rename or remove one.
package apiv1

import (
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// WorkloadList is the body of GET /api/v1/workloads, sorted by name.
type WorkloadList struct {
	Items []Workload `json:"items"`
}

// Workload is a workload's desired state and where it runs.
type Workload struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Spec is the applied spec with defaults filled.
	Spec spec.WorkloadSpec `json:"spec"`
	// Revision identifies the spec: equal specs have equal revisions.
	Revision  string    `json:"revision"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Deleting is set once DELETE was called while replicas still run.
	Deleting bool `json:"deleting,omitempty"`
	// Replicas are the copies placed, one per slot (and, for a while after
	// a node returns, the copy being reconciled away).
	Replicas []Replica `json:"replicas"`
	// Wanted is spec.placement.replicas; Running counts replicas whose
	// state is running.
	Wanted  int `json:"wanted"`
	Running int `json:"running"`
	// Unschedulable explains replicas that could not be placed, e.g.
	// "0/5 sites: 3 wrong jurisdiction, 2 over CPU"; empty when all are.
	Unschedulable string `json:"unschedulable,omitempty"`
	// CostPerHour is the estimated cost of all replicas, US dollars.
	CostPerHour float64 `json:"costPerHour"`
}

// Replica is one placed copy of a workload and its live status as its
// node last reported it.
type Replica struct {
	// Slot is the replica's index, 0..replicas-1.
	Slot int `json:"slot"`
	// Site is where the scheduler placed it: an edge node ID or a cloud
	// region ID; Node is the agent that runs it (the same as Site for an
	// edge node, an agent carrying the region's labels for a region).
	Site string `json:"site"`
	Node string `json:"node"`
	// Desired is "run", or "stop" for a copy being removed.
	Desired string `json:"desired"`
	// Generation is the node's desired-state generation that carries the
	// assignment; AckedGeneration the node's latest acknowledged one. The
	// node has stored the assignment when AckedGeneration >= Generation.
	Generation      uint64 `json:"generation"`
	AckedGeneration uint64 `json:"ackedGeneration"`
	// NodeOnline is the node's link state now.
	NodeOnline bool `json:"nodeOnline"`
	// State is the last reported state: pending, starting, running,
	// unhealthy, exited, failed, stopped; "unknown" while the node is
	// disconnected, "" before the first status.
	State       string    `json:"state"`
	Restarts    int       `json:"restarts"`
	ExitCode    *int      `json:"exitCode,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	Since       time.Time `json:"since,omitzero"`
	PID         int       `json:"pid,omitempty"`
	ContainerID string    `json:"containerId,omitempty"`
	Adopted     bool      `json:"adopted,omitempty"`
	// StatusAt is when the node produced the status (its clock).
	StatusAt time.Time `json:"statusAt,omitzero"`
	// PlacedAt is when this copy was placed; Replaces names the node of
	// the copy it replaces, when it is a replacement.
	PlacedAt time.Time `json:"placedAt"`
	Replaces string    `json:"replaces,omitempty"`
	// Jurisdiction of the site and the rule that allowed it (residency
	// audit).
	Jurisdiction string  `json:"jurisdiction,omitempty"`
	Residency    string  `json:"residency,omitempty"`
	CostPerHour  float64 `json:"costPerHour"`
	Score        float64 `json:"score"`
}

// Plan is a placement decision with its explanation: the answer of POST
// /api/v1/plan (nothing is applied) and of .../{name}/explain.
type Plan struct {
	Workload string `json:"workload"`
	// DecidedAt is when the decision was taken.
	DecidedAt time.Time `json:"decidedAt"`
	Wanted    int       `json:"wanted"`
	// Chosen are the sites picked, one per replica, in slot order.
	Chosen []PlannedReplica `json:"chosen"`
	// Summary counts the sites per verdict, e.g. "2/9 sites feasible: 4
	// wrong jurisdiction, 3 over latency".
	Summary string `json:"summary"`
	// Candidates holds every site considered, feasible ones first by
	// score, then the rejected ones by filter.
	Candidates []Candidate `json:"candidates"`
	// CostPerHour sums Chosen.
	CostPerHour float64 `json:"costPerHour"`
	// Error is set when not every replica could be placed.
	Error string `json:"error,omitempty"`
}

// PlannedReplica is one replica's chosen site.
type PlannedReplica struct {
	Slot         int      `json:"slot"`
	Site         string   `json:"site"`
	Kind         string   `json:"kind"` // edge or cloud
	Score        float64  `json:"score"`
	CostPerHour  float64  `json:"costPerHour"`
	RTTMillis    float64  `json:"rttMillis,omitempty"`
	Jurisdiction string   `json:"jurisdiction,omitempty"`
	Residency    string   `json:"residency,omitempty"`
	Victims      []string `json:"victims,omitempty"`
	// RTTSource says where RTTMillis came from: local (the site is the
	// data source), measured or estimated; empty without a data source.
	RTTSource string `json:"rttSource,omitempty"`
}

// Candidate is one site's verdict.
type Candidate struct {
	Site string `json:"site"`
	Kind string `json:"kind"`
	// Feasible sites have a Score and its Terms; others the Filter that
	// removed them and the Reason in words.
	Feasible bool               `json:"feasible"`
	Score    float64            `json:"score,omitempty"`
	Terms    map[string]float64 `json:"terms,omitempty"`
	Filter   string             `json:"filter,omitempty"`
	Reason   string             `json:"reason,omitempty"`
	// CostPerHour is what one replica would cost there.
	CostPerHour float64 `json:"costPerHour"`
	Chosen      bool    `json:"chosen,omitempty"`
}

// SiteList is the body of GET /api/v1/sites, edge nodes then cloud
// regions, each sorted by ID.
type SiteList struct {
	Items []Site `json:"items"`
}

// Site is somewhere workloads can run.
type Site struct {
	ID           string            `json:"id"`
	Kind         string            `json:"kind"` // edge or cloud
	Labels       map[string]string `json:"labels,omitempty"`
	Provider     string            `json:"provider,omitempty"`
	Region       string            `json:"region,omitempty"`
	Jurisdiction string            `json:"jurisdiction,omitempty"`
	Location     *spec.Location    `json:"location,omitempty"`
	// Link is online, disconnected or lost (cloud regions: online).
	Link string `json:"link"`
	// Capacity and Allocated in millicores and bytes.
	CapacityMilliCPU  int64 `json:"capacityMilliCpu"`
	CapacityMemory    int64 `json:"capacityMemory"`
	AllocatedMilliCPU int64 `json:"allocatedMilliCpu"`
	AllocatedMemory   int64 `json:"allocatedMemory"`
	// Prices in US dollars; zero for edge nodes unless configured.
	CPUHour  float64 `json:"cpuHour,omitempty"`
	GBHour   float64 `json:"gbHour,omitempty"`
	EgressGB float64 `json:"egressGb,omitempty"`
	// Replicas counts the workload copies placed on the site.
	Replicas int `json:"replicas"`
	// CapacityErrorUntil is set while a cloud region is avoided after a
	// capacity error.
	CapacityErrorUntil time.Time `json:"capacityErrorUntil,omitzero"`
	// Problems lists what the bridge could not use of the site's labels
	// (a malformed skyedge.io/lat, say); the site is placed without it.
	Problems []string `json:"problems,omitempty"`
}

// PlacementList is the residency audit: every placement decision taken,
// newest first.
type PlacementList struct {
	Items []PlacementRecord `json:"items"`
}

// PlacementRecord is one placement decision as audited.
type PlacementRecord struct {
	At       time.Time `json:"at"`
	Workload string    `json:"workload"`
	Revision string    `json:"revision"`
	Slot     int       `json:"slot"`
	Site     string    `json:"site"`
	Kind     string    `json:"kind"`
	// Action is place, stop or replace; Cause why (new, node-lost,
	// capacity-error, spec-changed, reconcile, ...).
	Action string `json:"action"`
	Cause  string `json:"cause"`
	// Jurisdiction is the site's; Allowed lists the workload's allowed
	// jurisdictions (empty: unrestricted); Rule says which allowed it,
	// e.g. "DE in EU".
	Jurisdiction string   `json:"jurisdiction,omitempty"`
	Allowed      []string `json:"allowed,omitempty"`
	Rule         string   `json:"rule,omitempty"`
	CostPerHour  float64  `json:"costPerHour"`
}

// Logs is the body of GET /api/v1/workloads/{name}/logs.
type Logs struct {
	Workload string `json:"workload"`
	Node     string `json:"node"`
	// Lines are the last lines of output, oldest first.
	Lines     []string `json:"lines"`
	Truncated bool     `json:"truncated,omitempty"`
}
