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
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/bridge"
)

// bridgeReady is the line a bridge child prints on stdout once it serves.
type bridgeReady struct {
	MQTT string `json:"mqtt"`
	HTTP string `json:"http"`
}

// RunBridgeChild is the child side of a benchmark's bridge: it runs a
// bridge with its embedded broker on loopback, exactly as the
// cloudcore-bridge binary wires one, prints {"mqtt":ADDR,"http":ADDR} on
// stdout once ready, and stops when ctx is done or stdin closes (so it
// never outlives the benchmark). Flags: -data-dir, -cert, -key, -ca,
// -noop (accept and discard every message: the raw broker rate),
// -log-level.
func RunBridgeChild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bridge-child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "store directory")
	cert := fs.String("cert", "", "server certificate")
	key := fs.String("key", "", "server key")
	ca := fs.String("ca", "", "CA of the nodes")
	noop := fs.Bool("noop", false, "accept and discard every message")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("bridge child: -log-level: %w", err)
	}
	cfg := bridge.DefaultConfig()
	cfg.DataDir = *dataDir
	cfg.Embedded.ListenAddr = "127.0.0.1:0"
	cfg.Embedded.CertFile, cfg.Embedded.KeyFile, cfg.Embedded.CAFile = *cert, *key, *ca
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.NoopIngest = *noop
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	b, err := bridge.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Commands (profiling) arrive on stdin, one per line, each answered
	// with "ok" or the error; EOF means the parent is done or gone.
	var prof profiler
	defer prof.stop()
	lines := make(chan string)
	go func() {
		defer cancel()
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		return fmt.Errorf("bridge child: stopped before ready: %w", err)
	}
	line, err := json.Marshal(bridgeReady{MQTT: b.MQTTAddr(), HTTP: b.HTTPAddr()})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		cancel()
		<-done
		return err
	}
	for {
		select {
		case err := <-done:
			return err
		case l := <-lines:
			answer := "ok"
			if err := prof.do(l); err != nil {
				answer = err.Error()
			}
			if _, err := fmt.Fprintln(stdout, answer); err != nil {
				cancel()
				return errors.Join(err, <-done)
			}
		}
	}
}

// bridgeProc is a bridge running in a child process.
type bridgeProc struct {
	bridgeReady
	*childProc
	client *http.Client
}

// bridgeOptions configure startBridge.
type bridgeOptions struct {
	DataDir string
	Noop    bool
}

// startBridge starts a bridge child process and waits until it serves.
func startBridge(ctx context.Context, env Env, p *PKI, o bridgeOptions) (*bridgeProc, error) {
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("bench bridge: %w", err)
	}
	cert, key := p.ServerFiles()
	args := []string{"-data-dir", filepath.Join(o.DataDir, "store"), "-cert", cert, "-key", key, "-ca", p.CAFile()}
	if o.Noop {
		args = append(args, "-noop")
	}
	c, err := startChild(env, roleBridge, args, filepath.Join(o.DataDir, "bridge.log"))
	if err != nil {
		return nil, err
	}
	b := &bridgeProc{childProc: c, client: &http.Client{Timeout: 30 * time.Second}}
	line, err := c.next(ctx, time.Minute)
	if err == nil {
		err = json.Unmarshal(line, &b.bridgeReady)
	}
	if err == nil && b.MQTT == "" {
		err = fmt.Errorf("unexpected first line %q", line)
	}
	if err != nil {
		c.stop(10 * time.Second)
		return nil, fmt.Errorf("bench bridge: %w", err)
	}
	return b, nil
}

// Profile starts a CPU profile of the bridge process, written to path.
func (b *bridgeProc) Profile(ctx context.Context, path string) error {
	return b.command(ctx, opCPUProfile+" "+path)
}

// StopProfile ends the CPU profile.
func (b *bridgeProc) StopProfile(ctx context.Context) error {
	return b.command(ctx, opStopProfile)
}

func (b *bridgeProc) command(ctx context.Context, line string) error {
	if err := b.send(line); err != nil {
		return fmt.Errorf("bench bridge: %s: %w", line, err)
	}
	answer, err := b.next(ctx, 30*time.Second)
	if err == nil && string(answer) != "ok" {
		err = errors.New(string(answer))
	}
	if err != nil {
		return fmt.Errorf("bench bridge: %s: %w", line, err)
	}
	return nil
}

// Stop asks the bridge to stop (it disconnects every node and flushes
// its registry), and kills it after three minutes. Once figures are
// taken, a bridge that stops badly does not void them: the problem is
// logged, with how long the stop took.
func (b *bridgeProc) Stop(log *slog.Logger) {
	start := time.Now()
	if err := b.stop(3 * time.Minute); err != nil {
		log.Warn("the bridge did not stop cleanly", "after", time.Since(start).Round(time.Millisecond), "error", err)
		return
	}
	log.Info("bridge stopped", "after", time.Since(start).Round(time.Millisecond))
}

// Scrape reads the bridge's metrics.
func (b *bridgeProc) Scrape(ctx context.Context) (metrics, error) {
	return scrape(ctx, b.client, "http://"+b.HTTP+"/metrics")
}

// get decodes the JSON of an API path.
func (b *bridgeProc) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.HTTP+path, nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("bench bridge: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("bench bridge: GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// apiNode is the part of the API's node record the benchmarks read.
type apiNode struct {
	ID           string    `json:"id"`
	Online       bool      `json:"online"`
	LastReportAt time.Time `json:"lastReportAt"`
	Counters     struct {
		Messages   uint64 `json:"messages"`
		Applied    uint64 `json:"applied"`
		Duplicates uint64 `json:"duplicates"`
		Gaps       uint64 `json:"gaps"`
	} `json:"counters"`
}

// Nodes lists the registry.
func (b *bridgeProc) Nodes(ctx context.Context) ([]apiNode, error) {
	var list struct {
		Items []apiNode `json:"items"`
	}
	err := b.get(ctx, "/api/v1/nodes", &list)
	return list.Items, err
}
