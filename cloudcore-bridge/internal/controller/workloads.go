package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/api"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logs"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/protocol/spec"
)

// MaxSpecJSON bounds a workload's spec as nodes receive it: an assignment
// travels in one MQTT message of at most protocol.MaxPayload (128 KB)
// with the node's other changes.
const MaxSpecJSON = 64 << 10

// Apply creates or updates a workload from a validated document (with
// defaults filled) and asks for a pass. It reports whether the workload
// was created. A workload being deleted is taken back. An error matching
// spec.ErrInvalid is the document's fault.
func (c *Controller) Apply(w *spec.Workload) (apiv1.Workload, bool, error) {
	req, err := scheduler.NewRequest(w)
	if err != nil {
		return apiv1.Workload{}, false, err
	}
	b, err := json.Marshal(&w.Spec)
	if err != nil {
		return apiv1.Workload{}, false, fmt.Errorf("encode spec of %s: %w", w.Metadata.Name, err)
	}
	if len(b) > MaxSpecJSON {
		return apiv1.Workload{}, false, spec.NewFieldError("spec", "",
			fmt.Sprintf("encodes to %d bytes; keep it under %d: it travels to nodes in one MQTT message", len(b), MaxSpecJSON))
	}
	name := w.Metadata.Name
	now := c.cfg.Clock.Now()
	created := false
	_, err = c.cfg.Store.Update(func(tx *workloads.Tx) error {
		rec := workloads.Workload{Spec: *w, Revision: req.Revision, CreatedAt: now, UpdatedAt: now}
		old, ok := tx.Workload(name)
		created = !ok
		if ok {
			rec.CreatedAt = old.CreatedAt
			if !old.Deleting && reflect.DeepEqual(old.Spec, rec.Spec) {
				return nil // the same document again
			}
		}
		tx.PutWorkload(rec)
		return nil
	})
	if err != nil {
		return apiv1.Workload{}, false, fmt.Errorf("apply workload %s: %w", name, err)
	}
	c.log.Info("workload applied", "workload", name, "revision", req.Revision, "created", created)
	c.Trigger()
	v, err := c.Get(name)
	return v, created, err
}

// Delete marks a workload deleting and asks for a pass, which stops its
// copies; the record goes once they are all gone. It returns the
// workload as it is, replicas being stopped, or an error matching
// api.ErrNotFound.
func (c *Controller) Delete(name string) (apiv1.Workload, error) {
	_, err := c.cfg.Store.Update(func(tx *workloads.Tx) error {
		w, ok := tx.Workload(name)
		if !ok {
			return fmt.Errorf("workload %q: %w", name, api.ErrNotFound)
		}
		if !w.Deleting {
			w.Deleting, w.UpdatedAt = true, c.cfg.Clock.Now()
			tx.PutWorkload(w)
		}
		return nil
	})
	if err != nil {
		return apiv1.Workload{}, err
	}
	c.log.Info("workload deleting", "workload", name)
	v, err := c.Get(name)
	c.Trigger()
	return v, err
}

// Get describes a workload with its replicas' live status, or returns an
// error matching api.ErrNotFound.
func (c *Controller) Get(name string) (apiv1.Workload, error) {
	w, ok := c.cfg.Store.Workload(name)
	if !ok {
		return apiv1.Workload{}, fmt.Errorf("workload %q: %w", name, api.ErrNotFound)
	}
	return c.view(&w), nil
}

// List describes every workload, sorted by name.
func (c *Controller) List() apiv1.WorkloadList {
	ws := c.cfg.Store.Workloads()
	out := apiv1.WorkloadList{Items: make([]apiv1.Workload, 0, len(ws))}
	for i := range ws {
		out.Items = append(out.Items, c.view(&ws[i]))
	}
	return out
}

// view describes w.
func (c *Controller) view(w *workloads.Workload) apiv1.Workload {
	name := w.Name()
	v := apiv1.Workload{
		Name: name, Labels: w.Spec.Metadata.Labels, Spec: w.Spec.Spec, Revision: w.Revision,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, Deleting: w.Deleting,
		Replicas: []apiv1.Replica{}, Wanted: w.Spec.Spec.Placement.Replicas,
	}
	copies := c.cfg.Store.Copies(name)
	slices.SortStableFunc(copies, func(a, b workloads.Copy) int {
		return cmp.Or(cmp.Compare(a.Slot, b.Slot), a.PlacedAt.Compare(b.PlacedAt), cmp.Compare(a.ID, b.ID))
	})
	cost := 0.0
	for i := range copies {
		r := c.replica(&copies[i])
		if r.State == workloads.StateRunning && r.Desired == "run" {
			v.Running++
		}
		if !copies[i].Stopping {
			cost += copies[i].CostPerHour
		}
		v.Replicas = append(v.Replicas, r)
	}
	v.CostPerHour = math.Round(cost*1e6) / 1e6
	c.mu.Lock()
	v.Unschedulable = c.unsched[name]
	c.mu.Unlock()
	return v
}

// replica describes copy cp with its node's latest status about it.
func (c *Controller) replica(cp *workloads.Copy) apiv1.Replica {
	r := apiv1.Replica{
		Slot: cp.Slot, Site: cp.Site, Node: cp.Node, Desired: "run", Generation: cp.Generation,
		PlacedAt: cp.PlacedAt, Replaces: cp.ReplacesNode, Jurisdiction: cp.Jurisdiction, Residency: cp.Residency,
		CostPerHour: cp.CostPerHour, Score: math.Round(cp.Score*100) / 100, Reason: cp.Reason,
	}
	if cp.Stopping {
		r.Desired, r.Generation = "stop", cp.StopGeneration
	}
	if cp.Node == "" {
		return r
	}
	_, r.AckedGeneration, _ = c.cfg.Store.Desired(cp.Node)
	if n, ok := c.cfg.Nodes.Get(cp.Node); ok {
		r.NodeOnline = n.Online
	}
	st, ok := c.cfg.Store.Status(cp.Workload, cp.Node)
	if ok && !st.Orphan && (st.Generation >= cp.AssignedGeneration || st.Generation == 0) {
		r.State, r.Restarts, r.ExitCode, r.LastError = st.State, st.Restarts, st.ExitCode, st.LastError
		r.StartedAt, r.Since, r.PID, r.ContainerID, r.Adopted, r.StatusAt = st.StartedAt, st.Since, st.PID, st.ContainerID, st.Adopted, st.At
		if st.Reason != "" {
			r.Reason = st.Reason
		}
	}
	if !r.NodeOnline {
		r.State = "unknown"
	}
	return r
}

// Logs fetches the last tail lines of a workload's output from node, or
// from the node of its first running replica when node is "". Errors
// match api.ErrNotFound (no such workload, or no copy on that node),
// api.ErrConflict (node offline, or no replica running), api.ErrTimeout,
// api.ErrUnavailable (too many requests) or api.ErrBadGateway (the node
// could not read them).
func (c *Controller) Logs(ctx context.Context, name, node string, tail int) (apiv1.Logs, error) {
	if c.cfg.Logs == nil {
		return apiv1.Logs{}, fmt.Errorf("logs of %s: %w: no logs broker", name, api.ErrUnavailable)
	}
	w, ok := c.cfg.Store.Workload(name)
	if !ok {
		return apiv1.Logs{}, fmt.Errorf("workload %q: %w", name, api.ErrNotFound)
	}
	v := c.view(&w)
	if node == "" {
		for _, r := range v.Replicas {
			if r.Desired == "run" && r.State == workloads.StateRunning {
				node = r.Node
				break
			}
		}
		if node == "" {
			return apiv1.Logs{}, fmt.Errorf("workload %q: %w: no replica is running; name a node with ?node=", name, api.ErrConflict)
		}
	} else if !slices.ContainsFunc(v.Replicas, func(r apiv1.Replica) bool { return r.Node == node }) {
		return apiv1.Logs{}, fmt.Errorf("workload %q has no replica on node %q: %w", name, node, api.ErrNotFound)
	}
	resp, err := c.cfg.Logs.Fetch(ctx, node, name, tail)
	switch {
	case errors.Is(err, logs.ErrOffline):
		return apiv1.Logs{}, fmt.Errorf("%w: %w", api.ErrConflict, err)
	case errors.Is(err, logs.ErrTimeout):
		return apiv1.Logs{}, fmt.Errorf("%w: %w", api.ErrTimeout, err)
	case errors.Is(err, logs.ErrBusy):
		return apiv1.Logs{}, fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	case errors.Is(err, logs.ErrNode):
		return apiv1.Logs{}, fmt.Errorf("%w: %w", api.ErrBadGateway, err)
	case err != nil:
		return apiv1.Logs{}, err
	}
	lines := resp.GetLines()
	if lines == nil {
		lines = []string{}
	}
	return apiv1.Logs{Workload: name, Node: node, Lines: lines, Truncated: resp.GetTruncated()}, nil
}
