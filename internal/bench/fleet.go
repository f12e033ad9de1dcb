package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/skyedge/skyedge/agent"
	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/memq"
)

// nodeName is the ID of simulated node i.
func nodeName(i int) string { return fmt.Sprintf("sim-%05d", i) }

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = nodeName(i)
	}
	return out
}

// fleetConfig configures a fleet of simulated agents.
type fleetConfig struct {
	// Nodes and TLS give each agent its ID and client configuration.
	Nodes []string
	TLS   []*tls.Config
	// Broker returns the broker URL of agent i (the bridge, or its
	// proxy).
	Broker func(i int) string
	// Interval is every agent's report interval.
	Interval time.Duration
	// Ramp is the most agents started per second; the starts are also
	// spread over at least one interval, so the reports of the fleet are
	// evenly spread in time rather than bunched on the same tick.
	Ramp float64
	// DataDir holds one state directory per agent.
	DataDir string
	// Reconnect is every agent's backoff (the agent's default when zero).
	Reconnect backoff.Policy
	// Logger receives the agents' own logs; they are discarded when nil.
	Logger *slog.Logger
	// MemoryOutbox holds each agent's outbox in memory (sync/outbox/memq,
	// the same engine and policies as Badger) instead of a Badger
	// database: thousands of databases on one machine would measure its
	// disk and its cores, not the cloud. DataDir then holds only boot
	// epochs.
	MemoryOutbox bool
	// First is the fleet-wide index of Nodes[0]; agents bind source
	// address sourceAddr(First+i), so a fleet larger than one address's
	// ephemeral ports still connects.
	First int
}

// simAgent is one running simulated agent.
type simAgent struct {
	*agent.Agent
	src *simSource
}

// fleet is a set of simulated agents running until Stop.
type fleet struct {
	cfg    fleetConfig
	prod   production
	agents []*simAgent
	cancel context.CancelFunc
	wg     sync.WaitGroup // the starter and every agent's Run

	mu      sync.Mutex // guards started and runErr
	started int
	runErr  error
}

// startFleet builds every agent (checking its configuration) and starts
// them in the background at the configured ramp. Stop stops them.
func startFleet(ctx context.Context, cfg fleetConfig) (*fleet, error) {
	f := &fleet{cfg: cfg, agents: make([]*simAgent, len(cfg.Nodes))}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for i, node := range cfg.Nodes {
		src := newSimSource(node, &f.prod)
		c := agent.DefaultConfig()
		c.NodeID = node
		c.Labels = map[string]string{"fleet": "bench", "zone": fmt.Sprintf("z%d", i%10)}
		c.Broker = cfg.Broker(i)
		c.TLS = cfg.TLS[i]
		c.ReportInterval = cfg.Interval
		c.DataDir = filepath.Join(cfg.DataDir, node)
		if cfg.Reconnect != (backoff.Policy{}) {
			c.Reconnect = cfg.Reconnect
		}
		c.Logger = log
		c.Source = src
		c.Dial = (&net.Dialer{LocalAddr: sourceAddr(cfg.First + i), KeepAlive: c.KeepAlive}).DialContext
		if cfg.MemoryOutbox {
			c.OpenOutbox = func(oc outbox.Config) (outbox.Queue, error) { return memq.Open(oc) }
		}
		a, err := agent.New(c)
		if err != nil {
			return nil, fmt.Errorf("bench: simulated agent %s: %w", node, err)
		}
		src.online = a.Connected
		f.agents[i] = &simAgent{Agent: a, src: src}
	}
	ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go f.start(ctx)
	return f, nil
}

// start runs the agents one after another, spaced by the ramp.
func (f *fleet) start(ctx context.Context) {
	defer f.wg.Done()
	n := len(f.agents)
	spacing := time.Duration(float64(time.Second) / max(f.cfg.Ramp, 1))
	if n > 0 {
		spacing = max(spacing, f.cfg.Interval/time.Duration(n))
	}
	t0 := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, a := range f.agents {
		if d := time.Until(t0.Add(time.Duration(i) * spacing)); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := a.Run(ctx); err != nil {
				f.mu.Lock()
				f.runErr = errors.Join(f.runErr, fmt.Errorf("agent %s: %w", f.cfg.Nodes[i], err))
				f.mu.Unlock()
			}
		}()
		f.mu.Lock()
		f.started++
		f.mu.Unlock()
	}
}

// Connected counts the agents whose link is up.
func (f *fleet) Connected() int {
	n := 0
	for _, a := range f.agents {
		if a.Connected() {
			n++
		}
	}
	return n
}

// Started counts the agents started so far.
func (f *fleet) Started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started
}

// fleetStats sums the agents' counters.
type fleetStats struct {
	// Sent counts envelopes sent for the first time and Resends those
	// sent again; Pending the reports held in the outboxes; Dropped the
	// reports the agents did not keep (refused or failed appends, and
	// telemetry the outbox dropped for its quota, TTL or disk guard).
	Sent, Resends, Pending, Dropped        uint64
	Connects, Disconnects, ConnectFailures uint64
	// MaxPending is the most reports one agent holds.
	MaxPending uint64
}

func (f *fleet) Stats() fleetStats {
	var s fleetStats
	for _, a := range f.agents {
		st := a.Stats()
		tel := st.Outbox.Classes[outbox.Telemetry]
		s.Sent += st.Drain.Envelopes
		s.Resends += st.Drain.Resends
		s.Pending += uint64(max(tel.Count, 0))
		s.MaxPending = max(s.MaxPending, uint64(max(tel.Count, 0)))
		s.Dropped += st.ReportsRefused + st.ReportsFailed + tel.DroppedQuota + tel.DroppedTTL + tel.DroppedDisk
		s.Connects += st.Connects
		s.Disconnects += st.Disconnects
		s.ConnectFailures += st.ConnectFailures
	}
	return s
}

// Stop stops every agent (each says goodbye) and waits for them.
func (f *fleet) Stop() error {
	f.cancel()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runErr
}

// Outbox storages of simulated agents. OutboxAuto is Badger for fleets
// up to AutoBadgerAgents and memory beyond: a Badger database per agent
// costs about 0.3 ms of CPU a second idle (its compactors) and eight file
// descriptors, so ten thousand of them measure the machine, not the
// cloud.
const (
	OutboxAuto   = "auto"
	OutboxBadger = "badger"
	OutboxMemory = "memory"

	AutoBadgerAgents = 1000
)

// resolveOutbox turns OutboxAuto (or "") into a storage for n agents and
// checks the name.
func resolveOutbox(kind string, n int) (string, error) {
	switch kind {
	case "", OutboxAuto:
		if n > AutoBadgerAgents {
			return OutboxMemory, nil
		}
		return OutboxBadger, nil
	case OutboxBadger, OutboxMemory:
		return kind, nil
	}
	return "", fmt.Errorf("outbox %q: want auto, badger or memory", kind)
}

// workspace is what a fleet scenario runs in: a scratch directory, one
// for the agents' state, and a certificate for every node from the cached
// development PKI.
type workspace struct {
	dir, agentDir, pkiDir string
	pki                   *PKI
	cleanups              []func()
}

// prepareFleet raises the open-file limit for agents nodes, makes the
// scenario's directories and issues (or reuses) every node's certificate.
// close removes the directories.
func prepareFleet(ctx context.Context, env Env, scenario string, agents int, log *slog.Logger) (ws *workspace, err error) {
	if err := ensureFiles(agents, log); err != nil {
		return nil, err
	}
	ws = &workspace{}
	defer func() {
		if err != nil {
			ws.close()
		}
	}()
	dir, cleanup, err := env.workDir(scenario)
	if err != nil {
		return nil, err
	}
	ws.dir, ws.cleanups = dir, append(ws.cleanups, cleanup)
	agentDir, cleanupAgents, err := env.agentDir(scenario)
	if err != nil {
		return nil, err
	}
	ws.agentDir, ws.cleanups = agentDir, append(ws.cleanups, cleanupAgents)
	if ws.pkiDir, err = env.pkiDir(); err != nil {
		return nil, err
	}
	if ws.pki, err = OpenPKI(ws.pkiDir); err != nil {
		return nil, err
	}
	log.Info("preparing certificates", "nodes", agents, "pki", ws.pkiDir)
	if _, err := ws.pki.ClientTLSAll(ctx, nodeNames(agents)); err != nil {
		return nil, err
	}
	return ws, nil
}

func (ws *workspace) close() {
	for i := len(ws.cleanups) - 1; i >= 0; i-- {
		ws.cleanups[i]()
	}
}
