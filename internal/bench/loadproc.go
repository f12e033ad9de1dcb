package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Nodes per load process. An agent holds its socket and its outbox's
// Badger files (about six); its proxy, two more sockets. A process's heap
// and garbage collector stay modest too.
const (
	agentsPerProc  = 2500
	floodPerProc   = 10000
	agentsPerProxy = 100
	fdsPerAgent    = 8
	// fdReserve is what a process keeps for everything but connections.
	fdReserve = 512
)

// loadConfig configures a load: the simulated fleet, spread over child
// processes.
type loadConfig struct {
	Mode     string // modeAgents or modeFlood
	Broker   string // the bridge's MQTT address
	Nodes    int
	Interval time.Duration // agents
	Ramp     float64       // agents started per second, over all processes
	Window   int           // flood
	// Proxied puts a fault proxy in front of every agentsPerProxy agents.
	Proxied bool
	// Outbox is the agents' outbox storage: OutboxBadger or OutboxMemory.
	Outbox  string
	DataDir string
	PKIDir  string
}

// loadGroup is the set of load processes of one load.
type loadGroup struct {
	procs []*childProc
	log   *slog.Logger
}

// perProc is how many nodes one load process may hold under its
// open-file limit.
func perProc(cfg loadConfig) (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	fds, want := fdsPerAgent, agentsPerProc
	switch {
	case cfg.Mode == modeAgents && cfg.Outbox == OutboxMemory:
		fds, want = 1, floodPerProc
		if cfg.Proxied {
			fds += 2
		}
	case cfg.Mode == modeFlood:
		fds, want = 1, floodPerProc
	case cfg.Proxied:
		fds += 2
	}
	n := min(want, (int(lim.Cur)-fdReserve)/fds)
	if n < 1 {
		return 0, fmt.Errorf("bench: RLIMIT_NOFILE %d leaves no room for connections", lim.Cur)
	}
	return n, nil
}

// startLoad starts the load processes and waits until each has built its
// nodes (the pipelined publisher: connected them).
func startLoad(ctx context.Context, env Env, cfg loadConfig) (*loadGroup, error) {
	per, err := perProc(cfg)
	if err != nil {
		return nil, err
	}
	k := (cfg.Nodes + per - 1) / per
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("bench load: %w", err)
	}
	g := &loadGroup{log: env.logger()}
	first := 0
	for i := range k {
		count := cfg.Nodes / k
		if i < cfg.Nodes%k {
			count++
		}
		args := []string{
			"-mode", cfg.Mode, "-pki-dir", cfg.PKIDir, "-broker", cfg.Broker,
			"-data-dir", filepath.Join(cfg.DataDir, fmt.Sprintf("load-%d", i)),
			"-first", strconv.Itoa(first), "-count", strconv.Itoa(count),
			"-interval", cfg.Interval.String(), "-ramp", strconv.FormatFloat(max(cfg.Ramp, 1)/float64(k), 'f', -1, 64),
			"-window", strconv.Itoa(max(cfg.Window, 1)), "-total", strconv.Itoa(cfg.Nodes),
		}
		if cfg.Proxied {
			args = append(args, "-proxies", strconv.Itoa((count+agentsPerProxy-1)/agentsPerProxy))
		}
		if cfg.Outbox != "" {
			args = append(args, "-outbox", cfg.Outbox)
		}
		c, err := startChild(env, roleLoad, args, filepath.Join(cfg.DataDir, fmt.Sprintf("load-%d.log", i)))
		if err != nil {
			g.Stop()
			return nil, err
		}
		g.procs = append(g.procs, c)
		first += count
	}
	g.log.Info("load processes started", "processes", k, "nodes", cfg.Nodes, "mode", cfg.Mode)
	// Connecting the pipelined publisher's nodes takes one TLS handshake
	// each before the answer.
	timeout := time.Minute + time.Duration(per)*10*time.Millisecond
	if _, err := g.collect(ctx, timeout); err != nil {
		g.Stop()
		return nil, err
	}
	return g, nil
}

// Pids are the load processes' IDs.
func (g *loadGroup) Pids() []int {
	out := make([]int, len(g.procs))
	for i, c := range g.procs {
		out[i] = c.Pid()
	}
	return out
}

// Do sends op to every process and sums their answers.
func (g *loadGroup) Do(ctx context.Context, op string) (loadStats, error) {
	return g.DoEach(ctx, op, func(int) string { return op })
}

// Profile starts a CPU profile in every process, written to
// dir/load-N.cpu.pprof.
func (g *loadGroup) Profile(ctx context.Context, dir string) error {
	_, err := g.DoEach(ctx, opCPUProfile, func(i int) string {
		return opCPUProfile + " " + filepath.Join(dir, fmt.Sprintf("load-%d.cpu.pprof", i))
	})
	return err
}

// DoEach sends process i the command line(i) and sums their answers; op
// names the command in errors and picks the timeout.
func (g *loadGroup) DoEach(ctx context.Context, op string, line func(i int) string) (loadStats, error) {
	for i, c := range g.procs {
		if err := c.send(line(i)); err != nil {
			return loadStats{}, fmt.Errorf("bench load %d: %s: %w", i, op, err)
		}
	}
	// A load process answers in milliseconds unless the machine is
	// overloaded, which a benchmark may well do.
	timeout := time.Minute
	if op == opStop || op == opHalt {
		timeout = 2 * time.Minute
	}
	st, err := g.collect(ctx, timeout)
	if err != nil {
		return st, fmt.Errorf("bench load: %s: %w", op, err)
	}
	return st, nil
}

// collect reads one answer from every process and sums them.
func (g *loadGroup) collect(ctx context.Context, timeout time.Duration) (loadStats, error) {
	var (
		mu   sync.Mutex
		sum  loadStats
		errs []error
		wg   sync.WaitGroup
	)
	for i, c := range g.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := c.next(ctx, timeout)
			var st loadStats
			if err == nil {
				err = json.Unmarshal(line, &st)
			}
			if err == nil && st.Err != "" {
				err = errors.New(st.Err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("load process %d: %w", i, err))
			}
			sum.add(st)
		}()
	}
	wg.Wait()
	return sum, errors.Join(errs...)
}

// WaitConnected polls until every node is connected, or fails at the
// deadline saying how many are.
func (g *loadGroup) WaitConnected(ctx context.Context, nodes int, timeout time.Duration) (loadStats, error) {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		st, err := g.Do(ctx, opStats)
		if err != nil {
			return st, err
		}
		if st.Connected == nodes {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("bench: %d of %d nodes connected after %v (%d connect failures so far)",
				st.Connected, nodes, timeout, st.ConnectFailures)
		}
		if time.Since(lastLog) >= 5*time.Second {
			g.log.Info("connecting", "started", st.Started, "connected", st.Connected, "of", nodes)
			lastLog = time.Now()
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return st, ctx.Err()
		}
	}
}

// Stop stops the load (agents say goodbye) and its processes, and
// returns their final counters.
func (g *loadGroup) Stop() (loadStats, error) {
	var errs []error
	var st loadStats
	if len(g.procs) > 0 {
		for _, c := range g.procs {
			_ = c.send(opStop) // a process that has died fails below
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var err error
		st, err = g.collect(ctx, 2*time.Minute)
		cancel()
		errs = append(errs, err)
	}
	for i, c := range g.procs {
		if err := c.stop(time.Minute); err != nil {
			errs = append(errs, fmt.Errorf("bench load %d: %w", i, err))
		}
	}
	g.procs = nil
	return st, errors.Join(errs...)
}
