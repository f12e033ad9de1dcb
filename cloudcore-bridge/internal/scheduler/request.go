package scheduler

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// Request is what Place needs to know about a workload.
type Request struct {
	Workload string
	// Revision identifies what the runner executes (runtime, command or
	// image, resources, restart, health); a copy of another revision is
	// replaced. Placement changes do not change it.
	Revision string
	// Resources are reserved per replica.
	Resources          Resources
	EgressBytesPerHour int64
	Placement          spec.Placement
	Disconnect         spec.Disconnect
}

// NewRequest validates w and turns it into a Request.
func NewRequest(w *spec.Workload) (Request, error) {
	if err := w.Validate(); err != nil {
		return Request{}, fmt.Errorf("workload %q: %w", w.Metadata.Name, err)
	}
	cpu, _ := w.Spec.Resources.CPU.MilliCPU()
	mem, _ := w.Spec.Resources.Memory.Bytes()
	var egress int64
	if w.Spec.Resources.EgressPerHour != "" {
		egress, _ = w.Spec.Resources.EgressPerHour.Bytes()
	}
	rev, err := revision(&w.Spec)
	if err != nil {
		return Request{}, fmt.Errorf("workload %q: %w", w.Metadata.Name, err)
	}
	return Request{
		Workload:           w.Metadata.Name,
		Revision:           rev,
		Resources:          Resources{MilliCPU: cpu, Memory: mem},
		EgressBytesPerHour: egress,
		Placement:          w.Spec.Placement,
		Disconnect:         w.Spec.Disconnect,
	}, nil
}

// revision hashes the parts of the spec a running copy depends on.
func revision(s *spec.WorkloadSpec) (string, error) {
	b, err := json.Marshal(struct {
		Runtime         spec.Runtime
		Exec            *spec.ExecSpec
		Docker          *spec.DockerSpec
		Resources       spec.Resources
		Restart         spec.Restart
		Health          *spec.Health
		StopGracePeriod spec.Duration
	}{s.Runtime, s.Exec, s.Docker, s.Resources, s.Restart, s.Health, s.StopGracePeriod})
	if err != nil {
		return "", fmt.Errorf("hash revision: %w", err)
	}
	h := fnv.New64a()
	h.Write(b)
	return fmt.Sprintf("%016x", h.Sum64()), nil
}

// Replicas is the number of copies wanted.
func (r *Request) Replicas() int { return r.Placement.Replicas }

// lostAfter is the disconnect.lostAfter in force.
func (r *Request) lostAfter() time.Duration {
	if d := r.Disconnect.LostAfter.Std(); d > 0 {
		return d
	}
	return spec.DefaultLostAfter
}

// CopyState is how far a copy has got.
type CopyState uint8

// Copy states.
const (
	// StateRunning: the site confirmed the copy runs.
	StateRunning CopyState = iota
	// StatePending: the copy was assigned but the site has not confirmed
	// it; a cloud region's capacity error fails it over.
	StatePending
)

// String implements fmt.Stringer.
func (s CopyState) String() string {
	if s == StatePending {
		return "pending"
	}
	return "running"
}

// Placement is one existing copy of a workload on a site.
type Placement struct {
	ID       string
	Workload string
	Revision string
	// Replica is the slot (0..replicas-1) this copy fills; a replacement
	// fills the same slot as the copy it replaces.
	Replica   int
	Site      string
	Resources Resources
	Priority  int
	State     CopyState
	// Started is when the copy started running (zero while pending).
	Started time.Time
	// Replaces is the ID of the copy this one replaced while that copy's
	// node was disconnected or lost; empty for an original.
	Replaces string
}
