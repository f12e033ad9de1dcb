package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FootprintConfig configures the footprint scenario.
type FootprintConfig struct {
	// Duration is the measured window, after the agent's first report
	// reached the registry.
	Duration time.Duration
	// Interval is the agent's report interval (10 s when 0; 30 s gives
	// the idle figure).
	Interval time.Duration
}

// FootprintResult is the outcome of the footprint scenario: one real
// agent process (the skyedge-agent binary, sampling its own host)
// reporting to a bridge through a byte-counting proxy.
type FootprintResult struct {
	Scenario string `json:"scenario"`
	// RSSMB is the agent's largest resident set (VmRSS, MiB) over the
	// window, sampled every second; RSSMeanMB the mean of the samples.
	RSSMB float64 `json:"rss_mb"`
	// CPUPercent is the agent's user and system CPU time over the window
	// (100 = one core).
	CPUPercent float64 `json:"cpu_percent"`
	// UplinkKbitS and DownlinkKbitS are the bytes on its connection (TLS
	// and MQTT framing, keep-alives and acknowledgements included) over
	// the window, in kbit/s.
	UplinkKbitS   float64 `json:"uplink_kbit_s"`
	DownlinkKbitS float64 `json:"downlink_kbit_s"`
	// BinaryMB is the executable's size (MiB).
	BinaryMB float64 `json:"binary_mb"`

	RSSMeanMB float64       `json:"-"`
	Interval  time.Duration `json:"-"`
	Measured  time.Duration `json:"-"`
	Binary    string        `json:"-"`
	Stripped  bool          `json:"-"`
	UpBytes   uint64        `json:"-"`
	DownBytes uint64        `json:"-"`
}

// WriteText prints the result for people.
func (r FootprintResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "footprint: one skyedge-agent process, a report every %v, measured over %v\n", r.Interval, r.Measured.Round(time.Second))
	fmt.Fprintf(w, "  memory   %.1f MiB RSS max, %.1f MiB mean\n", r.RSSMB, r.RSSMeanMB)
	fmt.Fprintf(w, "  cpu      %.2f%% of one core\n", r.CPUPercent)
	fmt.Fprintf(w, "  uplink   %.3f kbit/s (%d bytes)\n", r.UplinkKbitS, r.UpBytes)
	fmt.Fprintf(w, "  downlink %.3f kbit/s (%d bytes)\n", r.DownlinkKbitS, r.DownBytes)
	strip := "stripped"
	if !r.Stripped {
		strip = "NOT stripped"
	}
	fmt.Fprintf(w, "  binary   %.1f MiB, %s (%s)\n", r.BinaryMB, strip, shortPath(r.Binary))
}

// shortPath is p relative to the working directory when it is inside it.
func shortPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

// footprintNode is the node ID of the measured agent.
const footprintNode = "footprint-0"

// Footprint runs the footprint scenario.
func Footprint(ctx context.Context, env Env, cfg FootprintConfig) (FootprintResult, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	res := FootprintResult{Scenario: "footprint", Interval: cfg.Interval}
	if cfg.Duration <= 0 {
		return res, fmt.Errorf("bench footprint: duration %v, want > 0", cfg.Duration)
	}
	log := env.logger().With("scenario", "footprint")
	bin := env.AgentBinary
	if bin == "" {
		log.Info("locating or building skyedge-agent")
		var err error
		if bin, err = FindAgentBinary(ctx); err != nil {
			return res, err
		}
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return res, fmt.Errorf("bench footprint: %w", err)
	}
	res.Binary, res.BinaryMB = bin, float64(fi.Size())/(1<<20)
	if res.Stripped, err = stripped(bin); err != nil {
		return res, fmt.Errorf("bench footprint: %s: %w", bin, err)
	}

	dir, cleanup, err := env.workDir("footprint")
	if err != nil {
		return res, err
	}
	defer cleanup()
	pkiDir, err := env.pkiDir()
	if err != nil {
		return res, err
	}
	p, err := OpenPKI(pkiDir)
	if err != nil {
		return res, err
	}
	cert, key, err := p.NodeFiles(footprintNode)
	if err != nil {
		return res, err
	}
	br, err := startBridge(ctx, env, p, bridgeOptions{DataDir: filepath.Join(dir, "bridge")})
	if err != nil {
		return res, err
	}
	defer br.Stop(log)
	px, err := newCountProxy(br.MQTT)
	if err != nil {
		return res, err
	}
	pctx, stopProxy := context.WithCancel(ctx)
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- px.Run(pctx) }()
	defer func() { stopProxy(); <-proxyDone }()

	logPath := filepath.Join(dir, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-node", footprintNode, "-broker", "tls://"+px.Addr(),
		"-ca", p.CAFile(), "-cert", cert, "-key", key, "-data-dir", filepath.Join(dir, "agent"),
		"-interval", cfg.Interval.String(), "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("bench footprint: start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	err = measureFootprint(ctx, br, px, cmd.Process.Pid, exited, cfg, &res)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	if err != nil {
		return res, fmt.Errorf("%w; agent log: %s", err, tail(logPath))
	}
	return res, nil
}

func measureFootprint(ctx context.Context, br *bridgeProc, px *countProxy, pid int, exited <-chan error,
	cfg FootprintConfig, res *FootprintResult,
) error {
	// Steady state starts once the first report is in the registry.
	deadline := time.Now().Add(cfg.Interval + time.Minute)
	for {
		var n apiNode
		err := br.get(ctx, "/api/v1/nodes/"+footprintNode, &n)
		if err == nil && n.Online && !n.LastReportAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench footprint: no report from the agent within %v (last error: %v)", cfg.Interval+time.Minute, err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("bench footprint: the agent exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	up0, down0 := px.Bytes()
	p0, err := readProc(pid)
	if err != nil {
		return err
	}
	var rss rssWatch
	rss.add(p0)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := p0.at.Add(cfg.Duration)
	for time.Now().Before(end) {
		select {
		case err := <-exited:
			return fmt.Errorf("bench footprint: the agent exited during the window: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		s, err := readProc(pid)
		if err != nil {
			return err
		}
		rss.add(s)
	}
	p1, err := readProc(pid)
	if err != nil {
		return err
	}
	up1, down1 := px.Bytes()
	rss.add(p1)
	res.Measured = p1.at.Sub(p0.at)
	res.RSSMB, res.RSSMeanMB = rss.maxMiB(), rss.meanMiB()
	res.CPUPercent = cpuPercent(p0, p1)
	res.UpBytes, res.DownBytes = up1-up0, down1-down0
	res.UplinkKbitS = float64(res.UpBytes) * 8 / 1000 / res.Measured.Seconds()
	res.DownlinkKbitS = float64(res.DownBytes) * 8 / 1000 / res.Measured.Seconds()
	if res.UpBytes == 0 && res.Measured > cfg.Interval {
		return errors.New("bench footprint: the agent sent nothing during the window")
	}
	return nil
}
