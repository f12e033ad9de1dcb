// Package controller is the bridge's placement controller: it converges
// the fleet on the workloads applied through the API.
//
// Every Interval, and at once when something changed (a workload applied
// or deleted, a node connected, said hello or went offline, a copy's
// state changed, a cloud region reported a capacity error), a pass:
//
//  1. builds the scheduler's snapshot of the fleet from the registry, the
//     cloud catalog and every copy (planner.Snapshot);
//  2. asks the scheduler (Reconcile, with the default profile plus
//     OnePerNodeFilter) for the actions that bring the copies in line with
//     the workloads, under each workload's disconnect policy;
//  3. applies them in one store transaction: a place becomes a new copy
//     on the node that runs it (the edge node itself, or the least loaded
//     online agent serving the cloud region), a stop marks the copy
//     stopping, an unschedulable slot is remembered for the API; every
//     place and stop is written to the residency audit log;
//  4. derives each node's desired set from the active copies assigned to
//     it (sync/desired), finishes the stopping copies that their node
//     confirmed stopped or that are on a lost node, and removes deleted
//     workloads whose copies are all gone;
//  5. once all of that is on disk, has the dispatcher send the changed
//     sets to their nodes.
//
// The controller also answers the API: it applies and deletes workloads,
// describes them with their replicas' live status, fetches their logs,
// and implements api.Planner (dry-run plans, explanations of the latest
// decisions, the site list and the audit log).
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logonce"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/metrics"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/planner"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler/catalog"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// DefaultInterval is the time between two passes when nothing triggers
// one earlier.
const DefaultInterval = 2 * time.Second

// Nodes is the part of the fleet registry the controller reads.
type Nodes interface {
	List() []registry.Node
	Get(id string) (registry.Node, bool)
}

// Sender sends changed desired sets to their nodes (dispatch.Dispatcher).
type Sender interface {
	Changed(nodes []string)
}

// LogsFetcher fetches a workload's output from a node (logs.Broker).
type LogsFetcher interface {
	Fetch(ctx context.Context, node, workload string, tail int) (*pb.LogsResponse, error)
}

// Config configures a Controller.
type Config struct {
	Store *workloads.Store
	Nodes Nodes
	// Catalog lists the cloud regions; nil means edge nodes only.
	Catalog *catalog.Catalog
	Sender  Sender
	Logs    LogsFetcher
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Clock   clock.Clock
	// Interval between passes (DefaultInterval when 0).
	Interval time.Duration
	// NodeLostAfter, when positive, gives up a node offline for longer,
	// whatever its workloads' lostAfter (planner.Inputs.NodeLostAfter).
	NodeLostAfter time.Duration
	// CapacityErrorCooldown keeps a cloud region that reported a capacity
	// error out of placement this long
	// (scheduler.DefaultCapacityErrorCooldown when 0).
	CapacityErrorCooldown time.Duration
}

// Controller is the placement controller. It is safe for concurrent use.
type Controller struct {
	cfg  Config
	log  *slog.Logger
	once *logonce.Limiter
	kick chan struct{}
	// churn carries Notify's triggers, which rest after a pass (see Run).
	churn chan struct{}
	// profile is the scheduler profile of every decision.
	profile *scheduler.Profile
	// started is when the controller was created: a node's silence counts
	// only from when the bridge was there to hear it.
	started time.Time

	passMu sync.Mutex // serialises passes

	mu        sync.Mutex // guards the fields below
	capErrors map[string]time.Time
	decisions map[string]*decision
	unsched   map[string]string
}

// New returns a Controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Store == nil || cfg.Nodes == nil {
		return nil, errors.New("controller: a store and a registry are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.CapacityErrorCooldown <= 0 {
		cfg.CapacityErrorCooldown = scheduler.DefaultCapacityErrorCooldown
	}
	return &Controller{
		cfg: cfg, log: cfg.Logger.With("component", "controller"), once: logonce.New(time.Hour, 10000),
		kick: make(chan struct{}, 1), churn: make(chan struct{}, 1), profile: newProfile(), started: cfg.Clock.Now(), capErrors: map[string]time.Time{},
		decisions: map[string]*decision{}, unsched: map[string]string{},
	}, nil
}

// Run reconciles every Interval and whenever Trigger is called, until ctx
// is cancelled. A failed pass is logged (when it starts failing and when
// it recovers) and retried at the next tick.
func (c *Controller) Run(ctx context.Context) error {
	t := c.cfg.Clock.NewTicker(c.cfg.Interval)
	defer t.Stop()
	c.Trigger() // the first pass at once
	failing := false
	var rest time.Duration // real time to wait before a triggered pass
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-c.kick:
		case <-c.churn:
			if !sleep(ctx, rest) {
				return nil
			}
		}
		start := time.Now()
		err := c.Pass()
		// Notify comes with every node that connects or leaves; in a
		// storm of thousands it would run passes back to back. Resting
		// passGapFactor times as long as the pass took before such a
		// pass keeps the controller under a fifth of a core whatever the
		// fleet's size; operators' changes (Trigger) never wait.
		rest = passGapFactor * time.Since(start)
		switch {
		case err != nil && !failing:
			failing = true
			c.log.Error("placement pass failed; retrying every interval", "error", err)
		case err == nil && failing:
			failing = false
			c.log.Info("placement pass recovered")
		}
	}
}

// passGapFactor is the rest after a pass, in multiples of its duration,
// before a triggered one (see Run).
const passGapFactor = 4

// sleep waits d of real time (a CPU budget, not a logical delay) or until
// ctx is done, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Notify asks for a pass after a change of the fleet (a node connected,
// left or said hello). Unlike Trigger, the pass may rest first, so that a
// storm of such changes costs a bounded share of the CPU.
func (c *Controller) Notify() {
	select {
	case c.churn <- struct{}{}:
	default:
	}
}

// Trigger asks for a pass as soon as possible. Triggers that arrive
// during a pass are folded into one more pass.
func (c *Controller) Trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// CapacityError records that cloud region site could not start a copy:
// it is avoided for CapacityErrorCooldown, and its pending copies fail
// over at the next pass.
func (c *Controller) CapacityError(site string) {
	c.mu.Lock()
	c.capErrors[site] = c.cfg.Clock.Now().Add(c.cfg.CapacityErrorCooldown)
	c.mu.Unlock()
	c.Trigger()
}

// capacityErrors returns the cooldowns in force at now, forgetting the
// others.
func (c *Controller) capacityErrors(now time.Time) map[string]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]time.Time, len(c.capErrors))
	for site, until := range c.capErrors {
		if until.After(now) {
			out[site] = until
		} else {
			delete(c.capErrors, site)
		}
	}
	return out
}

// fleet is the fleet as one pass sees it.
type fleet struct {
	now    time.Time
	nodes  map[string]*registry.Node
	snap   *scheduler.Snapshot
	agents planner.RegionAgents
}

// snapshot builds the scheduler's view of the fleet with copies.
func (c *Controller) snapshot(copies []workloads.Copy) (*fleet, error) {
	now := c.cfg.Clock.Now()
	all := c.cfg.Nodes.List()
	list := all[:0]
	for _, n := range all {
		// An agent older than the workload protocol cannot run anything.
		if n.Capability == 0 || n.Capability >= protocol.CapWorkloads {
			list = append(list, n)
		}
	}
	f := &fleet{now: now, nodes: make(map[string]*registry.Node, len(list))}
	for i := range list {
		n := &list[i]
		// A bridge that was down cannot tell how long a node has been
		// silent: its copies are not lost for the bridge's own downtime.
		if !n.Online && n.LastSeen.Before(c.started) {
			n.LastSeen = c.started
		}
		f.nodes[n.ID] = n
	}
	pls := make([]scheduler.Placement, 0, len(copies))
	for i := range copies {
		pls = append(pls, copies[i].Placement())
	}
	var err error
	f.snap, f.agents, err = planner.Snapshot(planner.Inputs{
		Nodes: list, Catalog: c.cfg.Catalog, Copies: pls, CapacityErrors: c.capacityErrors(now),
		Now: now, NodeLostAfter: c.cfg.NodeLostAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return f, nil
}

// Pass runs one reconcile pass now.
func (c *Controller) Pass() error {
	c.passMu.Lock()
	defer c.passMu.Unlock()
	start := time.Now()
	copies := c.cfg.Store.Copies("")
	ws := c.cfg.Store.Workloads()
	if len(copies) == 0 && len(ws) == 0 {
		// Nothing to place or stop: no snapshot of the fleet.
		c.observe(&pass{})
		return nil
	}
	f, err := c.snapshot(copies)
	if err != nil {
		return err
	}
	reqs, current := c.requests(ws, copies)
	actions, err := c.profile.Reconcile(f.snap, reqs, current)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	p := newPass(c, f, ws, reqs, actions)
	changed, err := c.cfg.Store.Update(p.run)
	if err != nil {
		return fmt.Errorf("apply placement: %w", err)
	}
	if len(p.skipped) > 0 {
		// Applied or deleted during the pass: decide again on what is.
		c.Trigger()
	}
	if c.cfg.Sender != nil && len(changed) > 0 {
		c.cfg.Sender.Changed(changed)
	}
	c.record(p)
	c.observe(p)
	c.cfg.Metrics.ReconcileSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// requests turns the workloads into scheduler requests, leaving out the
// ones being deleted (Reconcile stops their copies), and returns the
// active copies Reconcile works on. A stored workload the scheduler
// refuses (it cannot happen to a validated spec) keeps its copies as
// they are.
func (c *Controller) requests(ws []workloads.Workload, copies []workloads.Copy) ([]scheduler.Request, []scheduler.Placement) {
	reqs := make([]scheduler.Request, 0, len(ws))
	frozen := map[string]bool{}
	for i := range ws {
		w := &ws[i]
		if w.Deleting {
			continue
		}
		req, err := scheduler.NewRequest(&w.Spec)
		if err != nil {
			frozen[w.Name()] = true
			if c.once.Allow("request\x00"+w.Name(), c.cfg.Clock.Now()) {
				c.log.Error("stored workload cannot be placed; its copies are left as they are", "workload", w.Name(), "error", err)
			}
			continue
		}
		reqs = append(reqs, req)
	}
	current := make([]scheduler.Placement, 0, len(copies))
	for i := range copies {
		if cp := &copies[i]; !cp.Stopping && !frozen[cp.Workload] {
			current = append(current, cp.Placement())
		}
	}
	return reqs, current
}

// observe updates the gauges after a pass.
func (c *Controller) observe(p *pass) {
	counts := map[string]int{workloads.CopyPending: 0, workloads.CopyRunning: 0, workloads.CopyFailed: 0, "stopping": 0}
	copies := c.cfg.Store.Copies("")
	for i := range copies {
		if copies[i].Stopping {
			counts["stopping"]++
		} else {
			counts[copies[i].State]++
		}
	}
	for state, n := range counts {
		c.cfg.Metrics.Copies.WithLabelValues(state).Set(float64(n))
	}
	c.cfg.Metrics.Workloads.Set(float64(len(c.cfg.Store.Workloads())))
	for kind, n := range p.counts {
		c.cfg.Metrics.Actions.WithLabelValues(kind).Add(float64(n))
	}
}
