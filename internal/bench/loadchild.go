package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/skyedge/skyedge/internal/testutil/faultproxy"
	"github.com/skyedge/skyedge/sync/outbox"
)

// Roles of a benchmark child process (the value of ChildEnvVar).
const (
	roleBridge = "bridge"
	roleLoad   = "load"
)

// RunChild runs the benchmark child process whose role ChildEnvVar names
// in the environment: "bridge" (RunBridgeChild) or "load" (a slice of the
// simulated fleet, driven over stdin and stdout by the benchmark). The
// benchmark spreads its nodes over several load processes because each
// connection costs a file descriptor on both ends, and RLIMIT_NOFILE is
// per process.
func RunChild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch role := os.Getenv(ChildEnvVar); role {
	case roleBridge:
		return RunBridgeChild(ctx, args, stdin, stdout, stderr)
	case roleLoad:
		return runLoadChild(ctx, args, stdin, stdout, stderr)
	default:
		return fmt.Errorf("bench child: %s=%q, want %q or %q (this command is started by `skyedge bench`, not by hand)",
			ChildEnvVar, role, roleBridge, roleLoad)
	}
}

// Load modes.
const (
	modeAgents = "agents" // agent.Agent values with a synthetic Source
	modeFlood  = "flood"  // lean publishers: paced with an interval, else pipelined
)

// loadStats is a load process's answer to every command: its counters
// since it started.
type loadStats struct {
	Ready     bool   `json:"ready,omitempty"`
	Err       string `json:"err,omitempty"`
	Started   int    `json:"started"`
	Connected int    `json:"connected"`
	// Samples the Sources handed to agents, of which Offline while the
	// agent's link was down; Refusals while paused.
	Samples, Offline, Refusals uint64
	// The agents' counters (see fleetStats), summed.
	Sent, Resends, Pending, Dropped        uint64
	Connects, Disconnects, ConnectFailures uint64
	// MaxPending is the most reports one agent holds.
	MaxPending uint64
	// Acked counts the PUBACKs of the pipelined publisher.
	Acked uint64
	// Nodes holds each node's samples and the reports its outbox holds,
	// in answer to opNodes only.
	Nodes map[string]nodeCount `json:"nodes,omitempty"`
}

// nodeCount is what one node produced and holds.
type nodeCount struct {
	Samples uint64 `json:"s"`
	Pending uint64 `json:"p"`
}

func (s *loadStats) add(o loadStats) {
	for n, v := range o.Nodes {
		if s.Nodes == nil {
			s.Nodes = make(map[string]nodeCount, len(o.Nodes))
		}
		s.Nodes[n] = v
	}
	s.MaxPending = max(s.MaxPending, o.MaxPending)
	s.Started += o.Started
	s.Connected += o.Connected
	s.Samples += o.Samples
	s.Offline += o.Offline
	s.Refusals += o.Refusals
	s.Sent += o.Sent
	s.Resends += o.Resends
	s.Pending += o.Pending
	s.Dropped += o.Dropped
	s.Connects += o.Connects
	s.Disconnects += o.Disconnects
	s.ConnectFailures += o.ConnectFailures
	s.Acked += o.Acked
}

// Commands a load process obeys, one per line on stdin.
const (
	opStats   = "stats"
	opNodes   = "nodes"   // stats with every node's sample count
	opPause   = "pause"   // Sources refuse to sample: no new reports
	opResume  = "resume"  // they sample again
	opCut     = "cut"     // every proxy closes its connections and refuses new ones
	opRestore = "restore" // the proxies forward again
	opRun     = "run"     // the pipelined publisher starts
	opHalt    = "halt"    // it stops and waits for its acknowledgements
	opStop    = "stop"    // everything stops; the process exits after answering
)

// loadChild is the state of a load process.
type loadChild struct {
	fleet   *fleet
	proxies []*faultproxy.Proxy
	flood   *flood
	halt    context.CancelFunc
	runDone chan error
	closed  bool
	prof    profiler
}

func runLoadChild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load-child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", modeAgents, "agents or flood")
	pkiDir := fs.String("pki-dir", "", "PKI cache")
	dataDir := fs.String("data-dir", "", "agents' state directories")
	broker := fs.String("broker", "", "the bridge's MQTT address")
	first := fs.Int("first", 0, "index of the first node")
	count := fs.Int("count", 0, "number of nodes")
	interval := fs.Duration("interval", time.Second, "report interval (agents)")
	ramp := fs.Float64("ramp", 1000, "agents started per second")
	window := fs.Int("window", 1, "unacknowledged messages per connection (flood)")
	total := fs.Int("total", 0, "nodes in the whole fleet (flood: spreads the reports' phases)")
	groups := fs.Int("proxies", 0, "fault proxies between the agents and the bridge (0: direct)")
	outboxKind := fs.String("outbox", OutboxBadger, "agents' outbox storage: badger or memory")
	level := fs.String("log-level", "error", "level of the agents' logs on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("load child: -log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	if _, err := RaiseFileLimit(1 << 20); err != nil {
		return err
	}
	p, err := OpenPKI(*pkiDir)
	if err != nil {
		return err
	}
	nodes := make([]string, *count)
	for i := range nodes {
		nodes[i] = nodeName(*first + i)
	}
	tlsConfs, err := p.ClientTLSAll(ctx, nodes)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &loadChild{}
	defer c.close()
	switch *mode {
	case modeAgents:
		brokerOf := func(int) string { return "tls://" + *broker }
		if *groups > 0 {
			for range min(*groups, len(nodes)) {
				px, err := faultproxy.New(*broker)
				if err != nil {
					return err
				}
				px.Start()
				c.proxies = append(c.proxies, px)
			}
			brokerOf = func(i int) string { return "tls://" + c.proxies[i*len(c.proxies)/len(nodes)].Addr() }
		}
		c.fleet, err = startFleet(ctx, fleetConfig{
			Nodes: nodes, TLS: tlsConfs, Broker: brokerOf, Interval: *interval, Ramp: *ramp,
			DataDir: *dataDir, Logger: log, MemoryOutbox: *outboxKind == OutboxMemory, First: *first,
		})
	case modeFlood:
		c.flood, err = dialFlood(ctx, floodConfig{
			Addr: *broker, Nodes: nodes, TLS: tlsConfs, Window: *window, Interval: *interval,
			First: *first, Total: *total,
		})
	default:
		err = fmt.Errorf("load child: -mode %q, want %q or %q", *mode, modeAgents, modeFlood)
	}
	if err != nil {
		return err
	}

	out := json.NewEncoder(stdout)
	st := c.stats()
	st.Ready = true
	if err := out.Encode(st); err != nil {
		return err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var op string
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case op, ok = <-lines:
		}
		if !ok { // the benchmark went away
			return nil
		}
		err := c.do(ctx, op)
		st := c.stats()
		if op == opNodes && c.fleet != nil {
			st.Nodes = make(map[string]nodeCount, len(c.fleet.agents))
			for _, a := range c.fleet.agents {
				tel := a.Stats().Outbox.Classes[outbox.Telemetry]
				st.Nodes[a.src.node] = nodeCount{Samples: a.src.samples.Load(), Pending: uint64(max(tel.Count, 0))}
			}
		}
		if err != nil {
			st.Err = err.Error()
		}
		if err := out.Encode(st); err != nil {
			return err
		}
		if op == opStop {
			return nil
		}
	}
}

// do runs one command.
func (c *loadChild) do(ctx context.Context, op string) error {
	if isProfileOp(op) {
		return c.prof.do(op)
	}
	switch op {
	case opStats, opNodes:
	case opPause, opResume:
		if c.fleet == nil {
			return fmt.Errorf("%s: no agents in this process", op)
		}
		c.fleet.prod.paused.Store(op == opPause)
	case opCut, opRestore:
		if len(c.proxies) == 0 {
			return fmt.Errorf("%s: no proxies in this process", op)
		}
		for _, px := range c.proxies {
			if op == opCut {
				px.Cut()
			} else {
				px.Restore()
			}
		}
	case opRun:
		if c.flood == nil || c.halt != nil {
			return errors.New("run: no publisher, or already running")
		}
		rctx, halt := context.WithCancel(ctx)
		c.halt, c.runDone = halt, make(chan error, 1)
		go func() { c.runDone <- c.flood.Run(rctx) }()
	case opHalt:
		return c.stopFlood()
	case opStop:
		return c.close()
	default:
		return fmt.Errorf("unknown command %q", op)
	}
	return nil
}

func (c *loadChild) stopFlood() error {
	if c.halt == nil {
		return nil
	}
	c.halt()
	c.halt = nil
	return <-c.runDone
}

// close stops everything the process runs; the counters stay readable.
func (c *loadChild) close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	errs := []error{c.prof.stop()}
	if c.fleet != nil {
		errs = append(errs, c.fleet.Stop())
	}
	for _, px := range c.proxies {
		errs = append(errs, px.Close())
	}
	if c.flood != nil {
		errs = append(errs, c.stopFlood())
		c.flood.Close()
	}
	return errors.Join(errs...)
}

func (c *loadChild) stats() loadStats {
	var s loadStats
	if f := c.fleet; f != nil {
		s.Started, s.Connected = f.Started(), f.Connected()
		s.Samples, s.Offline, s.Refusals = f.prod.samples.Load(), f.prod.offline.Load(), f.prod.refusals.Load()
		fs := f.Stats()
		s.Sent, s.Resends, s.Pending, s.Dropped = fs.Sent, fs.Resends, fs.Pending, fs.Dropped
		s.Connects, s.Disconnects, s.ConnectFailures = fs.Connects, fs.Disconnects, fs.ConnectFailures
		s.MaxPending = fs.MaxPending
	}
	if f := c.flood; f != nil {
		s.Started, s.Connected = len(f.conns), len(f.conns)
		s.Acked = f.Acked()
	}
	return s
}
