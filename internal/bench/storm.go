package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/skyedge/skyedge/agent"
	"github.com/skyedge/skyedge/internal/backoff"
)

// StormConfig configures the storm scenario.
type StormConfig struct {
	// Agents is the number of simulated nodes, behind fault proxies of
	// 100 nodes each.
	Agents int
	// Outage is how long every link stays cut while the agents keep
	// producing reports.
	Outage time.Duration
	// Interval is the agents' report interval (the agent's default,
	// 10 s, when 0).
	Interval time.Duration
	// Settle bounds the wait for every agent to reconnect and every
	// buffered report to reach the registry (5 min when 0).
	Settle time.Duration
	// Ramp is the most agents started per second (1000 when 0).
	Ramp float64
	// Outbox is the agents' outbox storage: OutboxAuto (default),
	// OutboxBadger or OutboxMemory.
	Outbox string
	// UpFor is how long every agent has been connected when the links
	// are cut; 0 means long enough for the agents' reconnect backoff to
	// start afresh (backoff.DefaultPolicy.ResetAfter), as in a fleet that
	// was up for a while.
	UpFor time.Duration
}

// StormResult is the outcome of the storm scenario.
type StormResult struct {
	Scenario string `json:"scenario"`
	Agents   int    `json:"agents"`
	// ReconnectS is the time from the links' return until every agent is
	// connected again; -1 when they were not within Settle.
	ReconnectS float64 `json:"reconnect_s"`
	// DrainS is the time from the links' return until everything the
	// agents kept is in the registry (the reports not yet applied are
	// back to their level before the outage); -1 when not within Settle.
	DrainS float64 `json:"drain_s"`
	// Buffered is the number of reports the agents' outboxes held when
	// the links came back.
	Buffered uint64 `json:"buffered"`
	// Lost counts the reports produced from the outage's start to the end
	// that never reached the registry, and Duplicates those applied more
	// than once, node by node (see Storm).
	Lost       uint64 `json:"lost"`
	Duplicates uint64 `json:"duplicates"`

	// Produced, Applied and Dropped are the totals behind Lost and
	// Duplicates, and Held the reports still in the agents' outboxes at
	// the end (late, not lost); Offline those produced while offline. Resent
	// counts what agents sent again, and Deduplicated the resends the
	// bridge recognised and did not apply twice. AppliedGlobal is the
	// bridge's own count of applied envelopes, a cross-check of Applied.
	Produced, Applied, Dropped, Offline uint64        `json:"-"`
	Held                                uint64        `json:"-"`
	Resent, Deduplicated, AppliedGlobal uint64        `json:"-"`
	Outage                              time.Duration `json:"-"`
	Proxies                             int           `json:"-"`
	// ReconnectedS holds when half, 90 % and 99 % of the agents were
	// connected again, in seconds after the restore (-1: not reached).
	ReconnectedS [3]float64 `json:"-"`
	// BridgeCPUPercent, LoadCPUPercent and OtherCPUPercent are the CPU
	// used from the cut to the end of the recovery by the bridge, the
	// simulated agents and the rest of the machine (100 = one core).
	BridgeCPUPercent, LoadCPUPercent, OtherCPUPercent float64 `json:"-"`
	// Online is the number of nodes the registry shows online at the end.
	Online int `json:"-"`
	// Outbox is the agents' outbox storage and Interval their report
	// interval.
	Outbox   string        `json:"-"`
	Interval time.Duration `json:"-"`
}

// WriteText prints the result for people.
func (r StormResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "storm: %d agents (%s outbox, a report every %v) behind %d fault proxies, every link cut for %v\n",
		r.Agents, r.Outbox, r.Interval, r.Proxies, r.Outage)
	fmt.Fprintf(w, "  reconnect  %s until every agent was connected again (50%%: %s, 90%%: %s, 99%%: %s)\n",
		seconds(r.ReconnectS), seconds(r.ReconnectedS[0]), seconds(r.ReconnectedS[1]), seconds(r.ReconnectedS[2]))
	fmt.Fprintf(w, "  drain      %s until everything kept was in the registry\n", seconds(r.DrainS))
	fmt.Fprintf(w, "  reports    %d produced from the cut to the end, %d while offline; %d buffered at the restore, %d dropped by the agents\n",
		r.Produced, r.Offline, r.Buffered, r.Dropped)
	fmt.Fprintf(w, "  registry   %d applied (bridge metrics: %d), %d still held by agents at the end: %d lost, %d duplicates; %d of %d nodes online\n",
		r.Applied, r.AppliedGlobal, r.Held, r.Lost, r.Duplicates, r.Online, r.Agents)
	fmt.Fprintf(w, "  resends    %d envelopes sent again by the agents, %d dropped by the bridge as already applied\n",
		r.Resent, r.Deduplicated)
	fmt.Fprintf(w, "  machine    from the cut to the recovery: bridge %.0f%% CPU, simulated agents %.0f%%, other processes %.0f%%\n",
		r.BridgeCPUPercent, r.LoadCPUPercent, r.OtherCPUPercent)
}

func seconds(s float64) string {
	if s < 0 {
		return "not reached within the settle time"
	}
	return fmt.Sprintf("%.1fs", s)
}

func (c *StormConfig) defaults() error {
	if c.Agents < 1 || c.Outage <= 0 {
		return fmt.Errorf("bench storm: %d agents, outage %v: want at least 1 agent and a positive outage", c.Agents, c.Outage)
	}
	if c.Interval <= 0 {
		c.Interval = agent.DefaultReportInterval
	}
	var err error
	if c.Outbox, err = resolveOutbox(c.Outbox, c.Agents); err != nil {
		return fmt.Errorf("bench storm: %w", err)
	}
	if c.Settle <= 0 {
		c.Settle = 5 * time.Minute
	}
	if c.Ramp <= 0 {
		c.Ramp = 1000
	}
	if c.UpFor <= 0 {
		c.UpFor = backoff.DefaultPolicy.ResetAfter + time.Second
	}
	return nil
}

// Storm runs the storm scenario. The agents connect through fault
// proxies to a bridge; once all are connected, every proxy cuts its
// connections and refuses new ones for the outage, while the agents keep
// producing; then the links return.
//
// Reports are counted at both ends, node by node. The synthetic Source
// counts every report it hands its agent (and those made while the
// agent's link was down); the registry counts, per node, the durable
// messages it applied (less gap markers) and the resends it dropped as
// duplicates. Production is paused before the cut until the bridge has
// applied everything, so the count starts exact, and again at the end.
// A node's loss is what it produced less what the registry applied, and
// its duplicates the reverse, whichever is positive; Lost and Duplicates
// sum them. Buffered is what the agents' outboxes held when the links
// came back.
func Storm(ctx context.Context, env Env, cfg StormConfig) (StormResult, error) {
	res := StormResult{Scenario: "storm", Agents: cfg.Agents, Outage: cfg.Outage}
	if err := cfg.defaults(); err != nil {
		return res, err
	}
	res.Outbox, res.Interval = cfg.Outbox, cfg.Interval
	res.Proxies = (cfg.Agents + agentsPerProxy - 1) / agentsPerProxy
	log := env.logger().With("scenario", "storm")
	ws, err := prepareFleet(ctx, env, "storm", cfg.Agents, log)
	if err != nil {
		return res, err
	}
	defer ws.close()
	dir, agentDir, pkiDir, p := ws.dir, ws.agentDir, ws.pkiDir, ws.pki
	br, err := startBridge(ctx, env, p, bridgeOptions{DataDir: filepath.Join(dir, "bridge")})
	if err != nil {
		return res, err
	}
	g, err := startLoad(ctx, env, loadConfig{
		Mode: modeAgents, Broker: br.MQTT, Nodes: cfg.Agents, Interval: cfg.Interval, Ramp: cfg.Ramp,
		Proxied: true, Outbox: cfg.Outbox, DataDir: agentDir, PKIDir: pkiDir,
	})
	if err == nil {
		err = storm(ctx, env, br, g, cfg, &res)
		if _, serr := g.Stop(); err == nil {
			err = serr
		}
	}
	br.Stop(log)
	return res, err
}

// counts is what both ends have counted at one moment.
type counts struct {
	at      time.Time
	load    loadStats
	applied float64
	// nodes holds the registry's record of each node, when asked for.
	nodes map[string]apiNode
}

func readCounts(ctx context.Context, br *bridgeProc, g *loadGroup) (counts, error) {
	m, err := br.Scrape(ctx)
	if err != nil {
		return counts{}, err
	}
	st, err := g.Do(ctx, opStats)
	if err != nil {
		return counts{}, err
	}
	return counts{at: time.Now(), load: st, applied: m.applied()}, nil
}

// outstanding is the number of reports produced since base and neither
// applied nor dropped by their agent.
func (c counts) outstanding(base counts) float64 {
	produced := float64(c.load.Samples - base.load.Samples)
	return produced - (c.applied - base.applied) - float64(c.load.Dropped-base.load.Dropped)
}

func storm(ctx context.Context, env Env, br *bridgeProc, g *loadGroup, cfg StormConfig, res *StormResult) error {
	log := env.logger().With("scenario", "storm")
	ramp := time.Duration(float64(cfg.Agents)/cfg.Ramp*float64(time.Second)) + cfg.Interval
	log.Info("starting agents", "agents", cfg.Agents, "proxies", res.Proxies, "interval", cfg.Interval)
	if _, err := g.WaitConnected(ctx, cfg.Agents, ramp+2*time.Minute); err != nil {
		return err
	}
	// A fleet that was up when the links went: each agent has been
	// connected long enough for its reconnect backoff to start afresh.
	upSince := time.Now()
	if !sleep(ctx, max(2*cfg.Interval, 2*time.Second)) {
		return ctx.Err()
	}
	base, err := quiesce(ctx, log, br, g, cfg.Interval)
	if err != nil {
		return err
	}
	// Production resumes; the outstanding reports in steady state set
	// what "drained" means after the outage.
	if _, err := g.Do(ctx, opResume); err != nil {
		return err
	}
	steady, steadyHeld := 0.0, uint64(0)
	for end := time.Now().Add(max(2*cfg.Interval, 2*time.Second)); time.Now().Before(end); {
		c, err := readCounts(ctx, br, g)
		if err != nil {
			return err
		}
		steady, steadyHeld = max(steady, c.outstanding(base)), max(steadyHeld, c.load.MaxPending)
		if !sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	// Drained: every agent holds no more than it does in steady state, and
	// the bridge is as far behind the fleet as it was then.
	drained := 2*steady + float64(cfg.Agents)/100 + 1
	if !sleep(ctx, time.Until(upSince.Add(cfg.UpFor))) && ctx.Err() != nil {
		return ctx.Err()
	}

	log.Info("cutting every link", "outage", cfg.Outage, "steady_outstanding", steady)
	stopProfiles, err := startProfiles(ctx, env, br, g)
	if err != nil {
		return err
	}
	others := newCPUWatch(append([]int{br.Pid(), os.Getpid()}, g.Pids()...)...)
	bridgeCPU, loadCPU := newCPUWatch(br.Pid()), newCPUWatch(g.Pids()...)
	if _, err := g.Do(ctx, opCut); err != nil {
		return errors.Join(err, stopProfiles())
	}
	if !sleep(ctx, cfg.Outage) {
		return ctx.Err()
	}
	held, err := g.Do(ctx, opStats)
	if err != nil {
		return err
	}
	res.Buffered = held.Pending
	if _, err := g.Do(ctx, opRestore); err != nil {
		return err
	}
	restored := time.Now()
	log.Info("links restored")
	res.ReconnectS, res.DrainS = -1, -1
	res.ReconnectedS = [3]float64{-1, -1, -1}
	lastLog := time.Now()
	for time.Since(restored) < cfg.Settle && (res.ReconnectS < 0 || res.DrainS < 0) {
		c, err := readCounts(ctx, br, g)
		if err != nil {
			return err
		}
		for i, share := range []float64{0.5, 0.9, 0.99} {
			if res.ReconnectedS[i] < 0 && float64(c.load.Connected) >= share*float64(cfg.Agents) {
				res.ReconnectedS[i] = c.at.Sub(restored).Seconds()
			}
		}
		if res.ReconnectS < 0 && c.load.Connected == cfg.Agents {
			res.ReconnectS = c.at.Sub(restored).Seconds()
			log.Info("every agent reconnected", "after_s", res.ReconnectS)
		}
		if res.ReconnectS >= 0 && res.DrainS < 0 && c.outstanding(base) <= drained && c.load.MaxPending <= steadyHeld+1 {
			res.DrainS = c.at.Sub(restored).Seconds()
			log.Info("backlog drained", "after_s", res.DrainS)
		}
		if time.Since(lastLog) >= 5*time.Second {
			log.Info("recovering", "connected", c.load.Connected, "of", cfg.Agents, "outstanding", c.outstanding(base))
			lastLog = time.Now()
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return errors.Join(ctx.Err(), stopProfiles())
		}
	}
	res.BridgeCPUPercent, res.LoadCPUPercent, res.OtherCPUPercent = bridgeCPU.percent(), loadCPU.percent(), others.others()
	if err := stopProfiles(); err != nil {
		return err
	}

	end, err := quiesce(ctx, log, br, g, cfg.Interval)
	if err != nil {
		return err
	}
	res.Produced = end.load.Samples - base.load.Samples
	res.AppliedGlobal = uint64(end.applied - base.applied)
	res.Dropped = end.load.Dropped - base.load.Dropped
	res.Offline = end.load.Offline - base.load.Offline
	res.Resent = end.load.Resends - base.load.Resends
	for node, nc := range end.load.Nodes {
		b, e := base.nodes[node], end.nodes[node]
		if e.Online {
			res.Online++
		}
		applied := (e.Counters.Applied - e.Counters.Gaps) - (b.Counters.Applied - b.Counters.Gaps)
		produced := nc.Samples - base.load.Nodes[node].Samples
		res.Applied += applied
		res.Held += nc.Pending
		res.Deduplicated += e.Counters.Duplicates - b.Counters.Duplicates
		// What the agent still holds is late, not lost.
		if accounted := applied + nc.Pending; produced > accounted {
			res.Lost += produced - accounted
		} else if produced < applied {
			res.Duplicates += applied - produced
		}
	}
	if len(end.load.Nodes) != cfg.Agents || len(end.nodes) < cfg.Agents {
		return fmt.Errorf("bench storm: counted %d nodes at the agents and %d in the registry, want %d",
			len(end.load.Nodes), len(end.nodes), cfg.Agents)
	}
	return nil
}

// quiesce pauses production and waits until the agents' outboxes are
// empty and the bridge's count has stopped moving for two intervals, or
// two minutes have passed (an agent may wait out a backoff or resume
// delay), then returns the counts.
func quiesce(ctx context.Context, log *slog.Logger, br *bridgeProc, g *loadGroup, interval time.Duration) (counts, error) {
	if _, err := g.Do(ctx, opPause); err != nil {
		return counts{}, err
	}
	stable := max(2*interval, time.Second)
	last, err := readCounts(ctx, br, g)
	if err != nil {
		return counts{}, err
	}
	since := time.Now()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Since(since) < stable || last.load.Pending > 0 {
		if time.Now().After(deadline) {
			log.Warn("agents still hold reports two minutes after production stopped", "reports", last.load.Pending)
			break
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return last, ctx.Err()
		}
		c, err := readCounts(ctx, br, g)
		if err != nil {
			return last, err
		}
		if c.applied != last.applied || c.load.Samples != last.load.Samples {
			since = time.Now()
		}
		last = c
	}
	if last.load, err = g.Do(ctx, opNodes); err != nil {
		return last, err
	}
	list, err := br.Nodes(ctx)
	if err != nil {
		return last, err
	}
	last.nodes = make(map[string]apiNode, len(list))
	for _, n := range list {
		last.nodes[n.ID] = n
	}
	log.Info("production paused and applied", "produced", last.load.Samples, "applied", last.applied)
	return last, nil
}
