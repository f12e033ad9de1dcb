package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/schedbench"
	"github.com/skyedge/skyedge/internal/bench"
)

// placementEngine is the engine `bench schedule` measures: the bridge's
// scheduler over its synthetic benchmark fleet.
var placementEngine bench.PlacementEngine = schedbench.Engine{}

// benchScenarios are the scenarios in the order a suite runs them.
var benchScenarios = []string{"ingest", "storm", "outbox", "footprint", "schedule"}

// quickSuite is what `make bench` runs: a short version of every scenario
// (a few minutes on two cores).
var quickSuite = [][]string{
	{"ingest", "--agents", "1000", "--interval", "1s", "--duration", "10s"},
	{"ingest", "--agents", "1000", "--interval", "0", "--duration", "10s"},
	{"storm", "--agents", "1000", "--outage", "10s", "--interval", "1s", "--settle", "100s"},
	{"outbox", "--messages", "100000"},
	{"footprint", "--duration", "30s", "--interval", "10s"},
	{"schedule", "--nodes", "5000", "--regions", "100", "--placements", "2000"},
}

func runBench(ctx context.Context, env Env, args []string) error {
	if len(args) > 0 && args[0] == "child" {
		// This program re-executed by a benchmark as its bridge or load.
		return bench.RunChild(ctx, args[1:], os.Stdin, env.Stdout, env.Stderr)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		benchUsage(env.Stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: want a scenario: %s, or suite", errUsage, strings.Join(benchScenarios, ", "))
	}
	if args[0] == "suite" {
		return runBenchSuite(ctx, env, args[1:])
	}
	res, asJSON, err := runScenario(ctx, env, args)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		return enc.Encode(res)
	}
	res.WriteText(env.Stdout)
	return nil
}

func benchUsage(w io.Writer) {
	fmt.Fprintf(w, `usage: skyedge bench SCENARIO [flags] [--json]

scenarios:
  ingest     simulated agents against a bridge, next to the raw broker rate
  storm      every link cut for a while, then restored: reconnect and drain
  outbox     durable enqueue and drain rates against raw Badger
  footprint  one real agent process: memory, CPU, bytes on the wire
  schedule   placement rate and latency over a synthetic fleet
  suite      a quick run of every scenario (make bench); --markdown FILE

Run `+"`skyedge bench SCENARIO -h`"+` for a scenario's flags.
`)
}

// benchCommon are the flags of every scenario.
type benchCommon struct {
	json         bool
	pkiDir, work string
	quiet        bool
	agentBinary  string
	profile      string
}

func (c *benchCommon) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print one JSON object with the figures")
	fs.StringVar(&c.pkiDir, "pki-dir", "", "development PKI cache (default $XDG_CACHE_HOME/skyedge-bench/pki)")
	fs.StringVar(&c.work, "work-dir", "", "scratch directory (default a temporary one, removed)")
	fs.BoolVar(&c.quiet, "q", false, "no progress on stderr")
	fs.StringVar(&c.profile, "profile", "", "write CPU profiles of the bridge and load processes over the measured window to this directory (ingest, storm)")
}

func (c *benchCommon) env(env Env) bench.Env {
	var log *slog.Logger
	if !c.quiet {
		log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return bench.Env{PKIDir: c.pkiDir, WorkDir: c.work, AgentBinary: c.agentBinary, Logger: log, ProfileDir: c.profile}
}

// runScenario parses a scenario's command line and runs it.
func runScenario(ctx context.Context, env Env, args []string) (bench.Result, bool, error) {
	name := args[0]
	fs := newFlags(env, "bench "+name)
	var c benchCommon
	c.register(fs)
	var run func() (bench.Result, error)
	switch name {
	case "ingest":
		var cfg bench.IngestConfig
		fs.IntVar(&cfg.Agents, "agents", 1000, "simulated agents, each with its own certificate and connection")
		fs.DurationVar(&cfg.Interval, "interval", time.Second, "report interval; 0 publishes as fast as each connection's window allows")
		fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measured window")
		fs.DurationVar(&cfg.RawDuration, "raw-duration", 0, "measured window of the raw broker rate (default: duration, at most 10s)")
		fs.IntVar(&cfg.Window, "window", 0, "unacknowledged messages per connection of the pipelined publisher (default: about 2048 in flight)")
		fs.Float64Var(&cfg.Ramp, "ramp", 1000, "connections opened per second")
		fs.StringVar(&cfg.Outbox, "outbox", bench.OutboxAuto, "path agent: the agents' outbox storage: badger, memory (same engine, no database), or auto (badger up to 1000 agents)")
		fs.StringVar(&cfg.Path, "path", bench.PathAgent, "with an interval: agent (agent.Agent with its outbox) or lean (lean publishers speaking the agent's protocol, for fleets larger than the machine can run as agents)")
		run = func() (bench.Result, error) { return bench.Ingest(ctx, c.env(env), cfg) }
	case "storm":
		var cfg bench.StormConfig
		fs.IntVar(&cfg.Agents, "agents", 1000, "simulated agents, behind fault proxies of 100 each")
		fs.DurationVar(&cfg.Outage, "outage", 30*time.Second, "how long every link stays cut")
		fs.DurationVar(&cfg.Interval, "interval", 10*time.Second, "report interval (the agent's default)")
		fs.DurationVar(&cfg.Settle, "settle", 5*time.Minute, "longest wait for reconnection and drain")
		fs.Float64Var(&cfg.Ramp, "ramp", 1000, "agents started per second")
		fs.StringVar(&cfg.Outbox, "outbox", bench.OutboxAuto, "agents' outbox storage: badger, memory (same engine, no database), or auto (badger up to 1000 agents)")
		run = func() (bench.Result, error) { return bench.Storm(ctx, c.env(env), cfg) }
	case "outbox":
		var cfg bench.OutboxConfig
		fs.IntVar(&cfg.Messages, "messages", 100_000, "reports enqueued, then drained")
		fs.IntVar(&cfg.Producers, "producers", 1, "goroutines appending at once")
		fs.IntVar(&cfg.Page, "page", 256, "reports read per drain step")
		run = func() (bench.Result, error) { return bench.Outbox(ctx, c.env(env), cfg) }
	case "footprint":
		var cfg bench.FootprintConfig
		fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "measured window, after the first report")
		fs.DurationVar(&cfg.Interval, "interval", 10*time.Second, "the agent's report interval (30s for the idle figure)")
		fs.StringVar(&c.agentBinary, "agent-bin", "", "skyedge-agent executable (default: next to this program, else built from the source tree)")
		run = func() (bench.Result, error) { return bench.Footprint(ctx, c.env(env), cfg) }
	case "schedule":
		cfg := bench.ScheduleConfig{Engine: placementEngine}
		fs.IntVar(&cfg.Nodes, "nodes", 5000, "edge nodes of the synthetic fleet")
		fs.IntVar(&cfg.Regions, "regions", 100, "cloud regions of the synthetic fleet")
		fs.IntVar(&cfg.Placements, "placements", 2000, "placement decisions timed")
		fs.Uint64Var(&cfg.Seed, "seed", 1, "fleet seed")
		run = func() (bench.Result, error) { return bench.Schedule(ctx, c.env(env), cfg) }
	default:
		benchUsage(env.Stderr)
		return nil, false, fmt.Errorf("%w: unknown scenario %q", errUsage, name)
	}
	if err := parse(fs, args[1:]); err != nil {
		return nil, false, err
	}
	if fs.NArg() > 0 {
		return nil, false, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	res, err := run()
	return res, c.json, err
}

// runBenchSuite runs the quick suite and, with --markdown, rewrites the
// results section of that file.
func runBenchSuite(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "bench suite")
	markdown := fs.String("markdown", "", "rewrite the section between the bench markers of this file (BENCHMARKS.md)")
	quiet := fs.Bool("q", false, "no progress on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	var runs []bench.Run
	failed := 0
	for _, a := range quickSuite {
		cmd := "skyedge bench " + strings.Join(a, " ")
		if *quiet {
			a = append(append([]string(nil), a...), "-q")
		}
		fmt.Fprintf(env.Stdout, "$ %s\n", cmd)
		res, _, err := runScenario(ctx, env, a)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		runs = append(runs, bench.Run{Command: cmd, Result: res, Err: err})
		if err != nil {
			fmt.Fprintf(env.Stdout, "not measured: %v\n\n", err)
			failed++
			continue
		}
		res.WriteText(env.Stdout)
		fmt.Fprintln(env.Stdout)
	}
	if *markdown != "" {
		if err := bench.RewriteSection(*markdown, bench.Markdown(bench.DescribeMachine(), time.Now(), runs)); err != nil {
			return fmt.Errorf("markdown: %w", err)
		}
		fmt.Fprintf(env.Stdout, "results written to %s\n", *markdown)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d runs failed", failed, len(runs))
	}
	return nil
}
