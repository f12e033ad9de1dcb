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
)

// IngestConfig configures the ingest scenario.
type IngestConfig struct {
	// Agents is the number of simulated nodes, each on its own connection
	// with its own certificate.
	Agents int
	// Interval is each agent's report interval; 0 makes every node publish
	// as fast as its window of unacknowledged messages allows (through the
	// pipelined publisher, since an agent waits for each PUBACK).
	Interval time.Duration
	// Duration is the measured window, after every node is connected and
	// a warm-up.
	Duration time.Duration
	// RawDuration is the measured window of the raw broker rate; Duration
	// capped at 10 s when 0.
	RawDuration time.Duration
	// Window is the unacknowledged messages per connection of the
	// pipelined publisher; 0 picks about 2048 in flight over all
	// connections, at most 64 each.
	Window int
	// Ramp is the most connections opened per second (1000 when 0).
	Ramp float64
	// Path picks the publishers when Interval > 0: PathAgent (the
	// default) runs agent.Agent values, each with its Badger outbox;
	// PathLean runs lean publishers that put the same messages on the
	// wire (hello, sequenced reports at the interval, acknowledging the
	// bridge's acks) without an agent behind them, for fleets larger than
	// the machine can simulate with real agents.
	Path string
	// Outbox is the agents' outbox storage on PathAgent: OutboxAuto
	// (default), OutboxBadger or OutboxMemory.
	Outbox string
}

// IngestResult is the outcome of the ingest scenario.
type IngestResult struct {
	Scenario string `json:"scenario"`
	Agents   int    `json:"agents"`
	// ProcessedPerSec is the rate of reports the bridge applied to its
	// registry, from its own metrics.
	ProcessedPerSec float64 `json:"processed_per_sec"`
	// RawPerSec is the rate of the same reports through the same broker
	// with ingest disabled (NoopIngest), acknowledged by the broker.
	RawPerSec float64 `json:"raw_per_sec"`
	// Ratio is ProcessedPerSec / RawPerSec.
	Ratio float64 `json:"ratio"`
	// P50Ms and P99Ms are the report-to-registry latency (a report's
	// sent_at to its application), from the bridge's
	// skyedge_bridge_ingest_latency_seconds histogram, interpolated inside
	// its buckets.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// BridgeRSSMB is the bridge process's largest resident set (MiB) and
	// BridgeCPUPercent its CPU use (100 = one core) during the window.
	BridgeRSSMB      float64 `json:"bridge_rss_mb"`
	BridgeCPUPercent float64 `json:"bridge_cpu_percent"`

	// Path says what published: "agent" (agent.Agent, one report per
	// interval) or "pipelined".
	Path string `json:"-"`
	// Outbox is the simulated agents' outbox storage on the agent path.
	Outbox string `json:"-"`
	// Interval is the agents' report interval (0 for pipelined), and
	// OfferedPerSec the load it offers.
	Interval      time.Duration `json:"-"`
	OfferedPerSec float64       `json:"-"`
	// Within250ms is the share of reports applied within 250 ms (a
	// histogram bucket bound, so exact); Buckets says which buckets held
	// the p50 and p99.
	Within250ms float64 `json:"-"`
	Buckets     string  `json:"-"`
	// Window is the measured window; Window per connection in the
	// pipelined and raw runs.
	Measured time.Duration `json:"-"`
	PerConn  int           `json:"-"`
	// AgentsSent and AgentsDropped are what the agents counted during the
	// window (path agent): envelopes sent, reports not kept; AgentsPending
	// the reports in their outboxes at its end.
	AgentsSent, AgentsDropped, AgentsPending uint64 `json:"-"`
	// LoadCPUPercent is what the simulated nodes used (100 = one core),
	// and OtherCPUPercent what the rest of the machine used, during the
	// window: on a shared machine, figures are only as good as these are
	// small.
	LoadCPUPercent, OtherCPUPercent float64 `json:"-"`
}

// WriteText prints the result for people.
func (r IngestResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "ingest: %d agents, path %s", r.Agents, r.Path)
	switch r.Path {
	case PathAgent:
		fmt.Fprintf(w, " (agent.Agent with its %s outbox, a report every %v: %.0f reports/s offered)", r.Outbox, r.Interval, r.OfferedPerSec)
	case PathLean:
		fmt.Fprintf(w, " (lean publishers speaking the agent's protocol, a report every %v: %.0f reports/s offered)", r.Interval, r.OfferedPerSec)
	default:
		fmt.Fprintf(w, " (pipelined lean publishers, %d unacknowledged per connection)", r.PerConn)
	}
	fmt.Fprintf(w, ", measured over %v\n", r.Measured.Round(time.Millisecond))
	fmt.Fprintf(w, "  processed  %10.0f reports/s applied to the registry (bridge metrics)\n", r.ProcessedPerSec)
	fmt.Fprintf(w, "  raw broker %10.0f reports/s acknowledged with ingest disabled (%d connections, window %d)\n", r.RawPerSec, r.Agents, r.PerConn)
	if r.Path == pathPipelined {
		fmt.Fprintf(w, "  ratio      %10.2f\n", r.Ratio)
	} else {
		fmt.Fprintf(w, "  ratio      %10.2f (bounded by the offered load; --interval 0 measures the ceiling)\n", r.Ratio)
	}
	fmt.Fprintf(w, "  latency    p50 %.1f ms, p99 %.1f ms (sent_at to applied, interpolated in the bridge's histogram buckets %s); %.2f%% within 250 ms\n",
		r.P50Ms, r.P99Ms, r.Buckets, 100*r.Within250ms)
	fmt.Fprintf(w, "  bridge     %.0f MiB RSS (max), %.0f%% CPU (100 = one core), its own process\n", r.BridgeRSSMB, r.BridgeCPUPercent)
	fmt.Fprintf(w, "  machine    the simulated nodes used %.0f%% CPU, other processes %.0f%%, during the window\n", r.LoadCPUPercent, r.OtherCPUPercent)
	if r.Path == PathAgent {
		fmt.Fprintf(w, "  agents     %d envelopes sent and %d reports dropped during the window, %d pending at its end\n",
			r.AgentsSent, r.AgentsDropped, r.AgentsPending)
	}
}

// Publishing paths of the ingest scenario.
const (
	PathAgent     = "agent"
	PathLean      = "lean"
	pathPipelined = "pipelined"
)

func (c *IngestConfig) defaults() error {
	if c.Agents < 1 {
		return fmt.Errorf("bench ingest: %d agents, want at least 1", c.Agents)
	}
	if c.Interval < 0 || c.Duration <= 0 {
		return fmt.Errorf("bench ingest: interval %v and duration %v: want interval >= 0 and duration > 0", c.Interval, c.Duration)
	}
	var err error
	if c.Outbox, err = resolveOutbox(c.Outbox, c.Agents); err != nil {
		return fmt.Errorf("bench ingest: %w", err)
	}
	if c.RawDuration <= 0 {
		c.RawDuration = min(c.Duration, 10*time.Second)
	}
	if c.Window <= 0 {
		c.Window = min(max(2048/c.Agents, 1), 64)
	}
	if c.Ramp <= 0 {
		c.Ramp = 1000
	}
	switch c.Path {
	case "":
		c.Path = PathAgent
	case PathAgent, PathLean:
	default:
		return fmt.Errorf("bench ingest: path %q, want %q or %q", c.Path, PathAgent, PathLean)
	}
	return nil
}

// Ingest runs the ingest scenario: the raw broker rate first (the
// pipelined publisher into a bridge with ingest disabled), then the same
// nodes' reports into a full bridge. The bridge and the nodes run in
// child processes (see RunChild).
func Ingest(ctx context.Context, env Env, cfg IngestConfig) (IngestResult, error) {
	res := IngestResult{Scenario: "ingest", Agents: cfg.Agents, Interval: cfg.Interval}
	if err := cfg.defaults(); err != nil {
		return res, err
	}
	res.PerConn, res.Outbox = cfg.Window, cfg.Outbox
	log := env.logger().With("scenario", "ingest")
	ws, err := prepareFleet(ctx, env, "ingest", cfg.Agents, log)
	if err != nil {
		return res, err
	}
	defer ws.close()
	dir, agentDir, pkiDir, p := ws.dir, ws.agentDir, ws.pkiDir, ws.pki
	load := loadConfig{
		Nodes: cfg.Agents, Interval: cfg.Interval, Ramp: cfg.Ramp, Window: cfg.Window,
		Outbox: cfg.Outbox, DataDir: dir, PKIDir: pkiDir,
	}

	if res.RawPerSec, err = rawRate(ctx, env, p, filepath.Join(dir, "raw"), load, cfg.RawDuration); err != nil {
		return res, err
	}

	br, err := startBridge(ctx, env, p, bridgeOptions{DataDir: filepath.Join(dir, "bridge")})
	if err != nil {
		return res, err
	}
	load.Broker = br.MQTT
	switch {
	case cfg.Interval > 0 && cfg.Path == PathAgent:
		res.Path = PathAgent
		res.OfferedPerSec = float64(cfg.Agents) / cfg.Interval.Seconds()
		load.Mode, load.DataDir = modeAgents, agentDir
		err = ingestAgents(ctx, env, br, load, cfg, &res)
	case cfg.Interval > 0:
		res.Path = PathLean
		res.OfferedPerSec = float64(cfg.Agents) / cfg.Interval.Seconds()
		load.Mode = modeFlood
		err = ingestLean(ctx, env, br, load, cfg, &res)
	default:
		res.Path = pathPipelined
		load.Mode = modeFlood
		err = ingestLean(ctx, env, br, load, cfg, &res)
	}
	br.Stop(log)
	if err != nil {
		return res, err
	}
	if res.RawPerSec > 0 {
		res.Ratio = res.ProcessedPerSec / res.RawPerSec
	}
	return res, nil
}

// rawRate measures the broker alone: the pipelined publisher into a
// bridge with NoopIngest, counting PUBACKs over d.
func rawRate(ctx context.Context, env Env, p *PKI, dir string, load loadConfig, d time.Duration) (float64, error) {
	log := env.logger().With("scenario", "ingest", "phase", "raw")
	br, err := startBridge(ctx, env, p, bridgeOptions{DataDir: dir, Noop: true})
	if err != nil {
		return 0, err
	}
	defer br.Stop(log)
	load.Mode, load.Broker, load.DataDir, load.Interval = modeFlood, br.MQTT, dir, 0
	log.Info("connecting publishers", "connections", load.Nodes, "window", load.Window)
	g, err := startLoad(ctx, env, load)
	if err != nil {
		return 0, err
	}
	rate, err := floodRate(ctx, g, time.Second, d)
	if _, serr := g.Stop(); err == nil {
		err = serr
	}
	log.Info("raw broker rate", "per_sec", int(rate))
	return rate, err
}

// floodRate runs the pipelined publisher for a warm-up and d, and returns
// the PUBACK rate over d.
func floodRate(ctx context.Context, g *loadGroup, warmup, d time.Duration) (float64, error) {
	if _, err := g.Do(ctx, opRun); err != nil {
		return 0, err
	}
	if !sleep(ctx, warmup) {
		return 0, ctx.Err()
	}
	s0, err := g.Do(ctx, opStats)
	t0 := time.Now()
	if err != nil {
		return 0, err
	}
	if !sleep(ctx, d) {
		return 0, ctx.Err()
	}
	s1, err := g.Do(ctx, opStats)
	el := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if _, err := g.Do(ctx, opHalt); err != nil {
		return 0, err
	}
	return float64(s1.Acked-s0.Acked) / el.Seconds(), nil
}

// ingestLean measures the full bridge under lean publishers, paced or
// pipelined.
func ingestLean(ctx context.Context, env Env, br *bridgeProc, load loadConfig, cfg IngestConfig, res *IngestResult) error {
	log := env.logger().With("scenario", "ingest", "phase", res.Path)
	log.Info("connecting publishers", "connections", load.Nodes, "interval", load.Interval, "window", load.Window)
	load.DataDir = filepath.Join(load.DataDir, res.Path)
	g, err := startLoad(ctx, env, load)
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := g.Do(ctx, opRun); err != nil {
			return err
		}
		if !sleep(ctx, max(2*time.Second, 2*cfg.Interval)) {
			return ctx.Err()
		}
		stopProfiles, err := startProfiles(ctx, env, br, g)
		if err != nil {
			return err
		}
		err = measureIngest(ctx, br, g, cfg.Duration, res, log)
		if perr := stopProfiles(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		_, err = g.Do(ctx, opHalt)
		return err
	}()
	if _, serr := g.Stop(); err == nil {
		err = serr
	}
	return err
}

// ingestAgents measures the full bridge under a fleet of agents.
func ingestAgents(ctx context.Context, env Env, br *bridgeProc, load loadConfig, cfg IngestConfig, res *IngestResult) error {
	log := env.logger().With("scenario", "ingest", "phase", "agents")
	g, err := startLoad(ctx, env, load)
	if err != nil {
		return err
	}
	err = func() error {
		rampTime := time.Duration(float64(load.Nodes)/cfg.Ramp*float64(time.Second)) + cfg.Interval
		log.Info("starting agents", "agents", load.Nodes, "ramp_per_sec", cfg.Ramp, "interval", cfg.Interval)
		if _, err := g.WaitConnected(ctx, load.Nodes, rampTime+2*time.Minute); err != nil {
			return err
		}
		// Steady state: each agent's drain has resumed after its connect
		// (a random delay of up to ResumeJitter) and sent a few reports.
		warmup := max(2*cfg.Interval, 2*time.Second) + agent.DefaultConfig().Drain.ResumeJitter
		log.Info("all agents connected; warming up", "agents", load.Nodes, "warmup", warmup)
		if !sleep(ctx, warmup) {
			return ctx.Err()
		}
		s0, err := g.Do(ctx, opStats)
		if err != nil {
			return err
		}
		stopProfiles, err := startProfiles(ctx, env, br, g)
		if err != nil {
			return err
		}
		err = measureIngest(ctx, br, g, cfg.Duration, res, log)
		if perr := stopProfiles(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		s1, err := g.Do(ctx, opStats)
		if err != nil {
			return err
		}
		res.AgentsSent, res.AgentsDropped = s1.Sent-s0.Sent, s1.Dropped-s0.Dropped
		res.AgentsPending = s1.Pending
		if s1.Connected < load.Nodes {
			log.Warn("agents disconnected during the window", "connected", s1.Connected, "of", load.Nodes)
		}
		return nil
	}()
	log.Info("stopping agents")
	if _, serr := g.Stop(); err == nil {
		err = serr
	}
	return err
}

// measureIngest reads the bridge's metrics and process figures at the
// start and end of a window of d, sampling its RSS every second.
func measureIngest(ctx context.Context, br *bridgeProc, g *loadGroup, d time.Duration, res *IngestResult, log *slog.Logger) error {
	m0, err := br.Scrape(ctx)
	if err != nil {
		return err
	}
	cw := newCPUWatch(append([]int{br.Pid(), os.Getpid()}, g.Pids()...)...)
	lw := newCPUWatch(g.Pids()...)
	p0, err := readProc(br.Pid())
	if err != nil {
		return err
	}
	var rss rssWatch
	rss.add(p0)
	end := p0.at.Add(d)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-time.After(time.Until(end)):
		}
		if s, err := readProc(br.Pid()); err == nil {
			rss.add(s)
		}
	}
	p1, err := readProc(br.Pid())
	if err != nil {
		return err
	}
	res.OtherCPUPercent, res.LoadCPUPercent = cw.others(), lw.percent()
	m1, err := br.Scrape(ctx)
	if err != nil {
		return err
	}
	rss.add(p1)
	res.Measured = p1.at.Sub(p0.at)
	res.ProcessedPerSec = (m1.applied() - m0.applied()) / res.Measured.Seconds()
	lat := histogramDelta(m0, m1, metricLatency)
	res.P50Ms = 1000 * quantile(0.50, lat)
	res.P99Ms = 1000 * quantile(0.99, lat)
	res.Within250ms = fractionWithin(0.25, lat)
	res.Buckets = fmt.Sprintf("p50 in %s, p99 in %s", bucketOf(res.P50Ms/1000, lat), bucketOf(res.P99Ms/1000, lat))
	res.BridgeRSSMB = rss.maxMiB()
	res.BridgeCPUPercent = cpuPercent(p0, p1)
	log.Info("window measured", "processed_per_sec", int(res.ProcessedPerSec), "p99_ms", res.P99Ms)
	if res.ProcessedPerSec <= 0 {
		return errors.New("bench ingest: the bridge applied no report during the window")
	}
	return nil
}

// sleep waits d or until ctx is done, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
