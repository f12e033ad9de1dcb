package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// The figure runs measure the real binary for the README. They take
// minutes, so they run only when asked:
//
//	SKYEDGE_FIGURES=1 go test -run TestFigure -v -timeout 60m ./agent/cmd/skyedge-agent
//
// SKYEDGE_AGENT_BIN measures a binary built elsewhere (make build's is
// stripped), SKYEDGE_BACKLOG sets the backlog size (default 1,000,000) and
// SKYEDGE_PROFILES the drain profiles to measure (default
// "aws-iot-core,unlimited").
func figureRun(t *testing.T) {
	if os.Getenv("SKYEDGE_FIGURES") == "" {
		t.Skip("figure run: set SKYEDGE_FIGURES=1 (takes minutes)")
	}
}

// memory is a process's resident memory in KiB.
type memory struct{ RSS, Anon, File int }

func (m memory) String() string {
	return fmt.Sprintf("VmRSS %.1f MiB (anon %.1f, file %.1f)", float64(m.RSS)/1024, float64(m.Anon)/1024, float64(m.File)/1024)
}

func readMemory(pid int) (memory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			m.RSS = n
		case "RssAnon":
			m.Anon = n
		case "RssFile":
			m.File = n
		}
	}
	if m.RSS == 0 {
		return m, errors.New("no VmRSS line")
	}
	return m, nil
}

// residentByMapping sums a process's resident memory (KiB) by what is
// mapped: "heap and stacks" for anonymous memory, "binary", the
// database's files by extension (".sst", ".mem", ".vlog"), and "other".
func residentByMapping(pid int) (string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return "", err
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	sums := map[string]int{}
	kind := ""
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			switch name := strings.Join(f[5:], " "); {
			case name == "" || strings.HasPrefix(name, "["):
				kind = "heap and stacks"
			case name == exe:
				kind = "binary"
			case filepath.Ext(name) == ".sst" || filepath.Ext(name) == ".mem" || filepath.Ext(name) == ".vlog":
				kind = filepath.Ext(name)
			default:
				kind = "other"
			}
		case len(f) == 3 && f[0] == "Rss:":
			n, _ := strconv.Atoi(f[1])
			sums[kind] += n
		}
	}
	var parts []string
	for _, k := range []string{"heap and stacks", "binary", ".sst", ".mem", ".vlog", "other"} {
		if sums[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f", k, float64(sums[k])/1024))
		}
	}
	return strings.Join(parts, ", ") + " MiB", nil
}

// agentProc is the agent binary running with a configuration file.
type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	logs   []map[string]any
	exited chan error
}

func startAgent(t *testing.T, config string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, cmd: exec.Command(agentBinary(t), "-config", config), exited: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		p.collect(stderr)
	}()
	go func() {
		<-copied
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		err := <-p.exited
		p.exited <- err
	})
	return p
}

func (p *agentProc) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			// The runtime's own lines, such as GODEBUG=gctrace=1.
			p.t.Log(sc.Text())
			continue
		}
		p.mu.Lock()
		p.logs = append(p.logs, rec)
		p.mu.Unlock()
	}
}

// logged returns the first log record with msg.
func (p *agentProc) logged(msg string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rec := range p.logs {
		if rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

// mappings is where the agent's resident memory is, for the log.
func (p *agentProc) mappings() string {
	p.t.Helper()
	s, err := residentByMapping(p.cmd.Process.Pid)
	if err != nil {
		p.t.Fatalf("agent mappings: %v", err)
	}
	return s
}

// loggedAll returns every log record with msg.
func (p *agentProc) loggedAll(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var recs []map[string]any
	for _, rec := range p.logs {
		if rec["msg"] == msg {
			recs = append(recs, rec)
		}
	}
	return recs
}

func (p *agentProc) memory() memory {
	p.t.Helper()
	m, err := readMemory(p.cmd.Process.Pid)
	if err != nil {
		p.t.Fatalf("agent memory: %v", err)
	}
	return m
}

// stop sends SIGTERM and waits for a clean exit.
func (p *agentProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			p.t.Errorf("agent exit = %v, want status 0", err)
		}
	case <-time.After(wait):
		p.t.Fatal("agent did not exit after SIGTERM")
	}
}

func writeConfig(t *testing.T, b *brokertest.Broker, dir, extra string) string {
	t.Helper()
	ca, cert, key := b.ClientFiles("truck-042")
	path := filepath.Join(dir, "agent.yaml")
	yaml := fmt.Sprintf(`apiVersion: skyedge.io/v1alpha1
kind: AgentConfig
node: {name: truck-042, labels: {role: vehicle}}
cloud: {broker: %s, caFile: %s, certFile: %s, keyFile: %s}
report: {interval: 10s}
dataDir: %s
log: {level: info, format: json}
%s`, b.URL(), ca, cert, key, filepath.Join(dir, "state"), extra)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFigureSteadyRSS runs the binary reporting every 10 s for a minute
// (SKYEDGE_STEADY sets another duration) and reads its resident memory
// every 10 s.
func TestFigureSteadyRSS(t *testing.T) {
	figureRun(t)
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	run := time.Minute
	if s := os.Getenv("SKYEDGE_STEADY"); s != "" {
		var err error
		if run, err = time.ParseDuration(s); err != nil {
			t.Fatalf("SKYEDGE_STEADY=%q: %v", s, err)
		}
	}
	p := startAgent(t, writeConfig(t, b, t.TempDir(), ""))
	var peak memory
	for i := 1; i <= int(run/(10*time.Second)); i++ {
		time.Sleep(10 * time.Second) // the measurement's own cadence
		m := p.memory()
		t.Logf("t=%ds applied=%d %s", 10*i, cloud.Count("truck-042"), m)
		peak = higher(peak, m)
	}
	if peak.RSS > 16<<10 {
		t.Errorf("peak %s, want under 16 MiB", peak)
	}
	if n := cloud.Count("truck-042"); n < 5 {
		t.Errorf("%d reports applied in a minute at 10 s, want at least 5", n)
	}
	p.stop()
}

// typicalReport is a vehicle's report as the agent queues it: compacted
// against its hello (no static quantities), about 100 bytes sequenced.
func typicalReport(i int, at time.Time) *pb.Envelope {
	return &pb.Envelope{
		NodeId: "truck-042", BootEpoch: 1, SentAtMs: at.UnixMilli(), Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Report{Report: &pb.ResourceReport{
			CpuPermille: uint32(100 + i%700), Load1Centi: uint32(50 + i%300), Load5Centi: 80, Load15Centi: 90,
			MemUsedKib: uint64(1<<20 + i%100_000), SwapUsedKib: 1024,
			Disks: []*pb.DiskUsage{{Mount: "/", UsedKib: uint64(8<<20 + i%1000)}, {Mount: "/data", UsedKib: uint64(20<<20 + i%5000)}},
			Nets:  []*pb.NetRate{{Iface: "eth0", RxBytesPerS: uint64(1000 + i%5000), TxBytesPerS: 300}, {Iface: "wwan0", RxBytesPerS: 120, TxBytesPerS: uint64(80 + i%900)}},
			Temps: []*pb.Temperature{{Sensor: "cpu_thermal", DeciCelsius: int32(420 + i%100)}},
		}},
	}
}

// fill appends n typical reports to the outbox in dir with up to 8
// appenders, as a long outage would have left it, and returns their
// average size in the outbox.
func fill(t *testing.T, dir string, n int) float64 {
	t.Helper()
	cfg := outbox.DefaultConfig()
	cfg.NodeID, cfg.BootEpoch = "truck-042", 1
	cfg.Policies[outbox.Telemetry].Quota, cfg.Policies[outbox.Telemetry].TTL = 1<<30, 0
	opts := badgerq.DefaultOptions(dir)
	opts.MaxDiskBytes = 4 << 30
	q, err := badgerq.Open(opts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Duration(n) * 10 * time.Second)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if _, err := q.Append(context.Background(), typicalReport(i, start.Add(time.Duration(i)*10*time.Second))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	st := q.State()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	tel := st.Classes[outbox.Telemetry]
	if tel.Count != int64(n) || tel.Summarized != 0 {
		t.Fatalf("outbox holds %d reports (%d summarised), want %d raw", tel.Count, tel.Summarized, n)
	}
	return float64(tel.Bytes) / float64(n)
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// TestFigureBacklog fills a real agent's outbox with a backlog of typical
// reports, runs the binary over it offline and reads its memory, then
// brings the broker and a fake cloud up and measures memory and rate
// while the backlog drains.
func TestFigureBacklog(t *testing.T) {
	figureRun(t)
	n := 1_000_000
	if s := os.Getenv("SKYEDGE_BACKLOG"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("SKYEDGE_BACKLOG=%q: %v", s, err)
		}
	}
	profiles := "aws-iot-core,unlimited"
	if s := os.Getenv("SKYEDGE_PROFILES"); s != "" {
		profiles = s
	}
	for _, profile := range strings.Split(profiles, ",") {
		t.Run(profile, func(t *testing.T) { measureBacklog(t, n, profile) })
	}
}

func measureBacklog(t *testing.T, n int, profile string) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	dir := t.TempDir()
	outboxDir := filepath.Join(dir, "state", "outbox")
	t0 := time.Now()
	avg := fill(t, outboxDir, n)
	t.Logf("filled %d reports (%.1f bytes each in the outbox) in %s; database %.1f MiB on disk",
		n, avg, time.Since(t0).Round(time.Second), float64(dirSize(outboxDir))/(1<<20))

	b.Stop() // offline: the agent holds the backlog
	p := startAgent(t, writeConfig(t, b, dir, fmt.Sprintf(
		"outbox: {telemetry: {quota: 1Gi, ttl: 0s}, maxDisk: 4Gi, drainProfile: %s}\n", profile)))
	brokertest.WaitFor(t, wait, "the agent to open its outbox", func() bool { return p.logged("starting") != nil })
	t.Logf("agent started over the backlog: %v pending", p.logged("starting")["outbox_pending"])
	var offline memory
	for i := 1; i <= 3; i++ {
		time.Sleep(5 * time.Second) // the measurement's own cadence
		m := p.memory()
		t.Logf("offline t=%ds %s", 5*i, m)
		offline = higher(offline, m)
	}
	t.Logf("offline, resident: %s", p.mappings())

	b.Restart()
	var peak memory
	deadline := time.Now().Add(2 * time.Hour)
	for cloud.Count("truck-042") < n {
		if time.Now().After(deadline) {
			t.Fatalf("drain incomplete: %d of %d applied", cloud.Count("truck-042"), n)
		}
		time.Sleep(time.Second) // the measurement's own cadence
		m := p.memory()
		peak = higher(peak, m)
		if sec := int(time.Since(t0).Seconds()); sec%15 == 0 {
			t.Logf("draining: %d applied, %s", cloud.Count("truck-042"), m)
		}
	}
	hist := cloud.History("truck-042")
	first, last := hist[0].At, hist[len(hist)-1].At
	took := last.Sub(first)
	var msgs, bytesOnWire int
	for _, m := range b.Messages() {
		if strings.HasSuffix(m.Topic, "/up/batch") || strings.HasSuffix(m.Topic, "/up/report") {
			msgs++
			bytesOnWire += len(m.Payload)
		}
	}
	t.Logf("drained %d reports in %d MQTT messages (%d payload bytes, %.1f per report) in %s: %.0f reports/s",
		n, msgs, bytesOnWire, float64(bytesOnWire)/float64(n), took.Round(time.Millisecond), float64(n)/took.Seconds())
	t.Logf("agent memory: holding the backlog offline %s; draining, peak %s", offline, peak)
	if d := cloud.Duplicates("truck-042"); len(d) != 0 {
		t.Errorf("%d sequence numbers arrived twice", len(d))
	}
	var idle memory
	for i := 1; i <= 6; i++ {
		time.Sleep(10 * time.Second) // the measurement's own cadence
		idle = p.memory()
	}
	t.Logf("agent memory a minute after the drain: %s; resident: %s", idle, p.mappings())
	for _, rec := range p.loggedAll("outbox reclaimed deleted records") {
		took, _ := rec["took"].(float64) // slog's JSON writes durations in nanoseconds
		t.Logf("the outbox reclaimed %.0f bytes of deleted records in %v", rec["freed_bytes"], time.Duration(took))
	}
	p.stop()
	if rec := p.logged("stopped"); rec == nil || rec["outbox_pending"] != float64(0) {
		t.Errorf("agent stopped with %v, want the outbox empty", rec)
	}
	t.Logf("database after the drain: %.1f MiB on disk", float64(dirSize(outboxDir))/(1<<20))
}

// higher returns the reading with the larger VmRSS.
func higher(a, b memory) memory {
	if b.RSS > a.RSS {
		return b
	}
	return a
}
