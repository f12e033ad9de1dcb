package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skyedge/skyedge/internal/pki"
)

type options struct {
	bin, dir, http, mqtt, examples string
}

// node is one demo agent: a name and the labels an operator would give it.
type node struct {
	name   string
	labels []string
}

// The demo fleet. Locations and jurisdictions are labels the scheduler
// uses for latency and data residency; hello-exec spreads over role.
// cloud-gwc is not an edge site: skyedge.io/site makes it the agent that
// runs what is placed in the catalog region azure-germanywestcentral.
var fleet = []node{
	{"truck-042", []string{"role=vehicle", "zone=eu-central", "skyedge.io/jurisdiction=DE", "skyedge.io/lat=48.14", "skyedge.io/lon=11.58"}},
	{"sat-7", []string{"role=satellite", "orbit=leo", "skyedge.io/jurisdiction=EU"}},
	{"factory-7", []string{"role=factory", "zone=eu-central", "skyedge.io/jurisdiction=DE", "skyedge.io/lat=48.78", "skyedge.io/lon=9.18"}},
	{"cloud-gwc", []string{"tier=cloud", "skyedge.io/site=azure-germanywestcentral"}},
}

// catalogFlag is the bridge's flag naming the cloud catalog file.
const catalogFlag = "-catalog"

func run(ctx context.Context, o options, log *slog.Logger) error {
	// Absolute paths: the agents run their workloads in directories under
	// the data directory, whatever their working directory.
	var err error
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	ex, err := loadExamples(o.examples)
	if err != nil {
		return err
	}
	pkiDir := filepath.Join(o.dir, "pki")
	if err := ensurePKI(pkiDir, o.mqtt, log); err != nil {
		return err
	}
	logDir := filepath.Join(o.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	var procs []*proc
	defer func() { stopAll(procs, log) }()

	bridge, err := start(filepath.Join(o.bin, "cloudcore-bridge"), filepath.Join(logDir, "bridge.log"),
		"-data-dir", filepath.Join(o.dir, "bridge"),
		"-mqtt", o.mqtt, "-http", o.http,
		"-cert", filepath.Join(pkiDir, "bridge.crt"), "-key", filepath.Join(pkiDir, "bridge.key"),
		"-ca", filepath.Join(pkiDir, pki.CACertFile),
		catalogFlag, ex.catalog)
	if err != nil {
		return err
	}
	procs = append(procs, bridge)
	if err := waitReady(ctx, "http://"+o.http+"/readyz", bridge); err != nil {
		return fmt.Errorf("bridge did not become ready (see %s): %w", bridge.logPath, err)
	}
	log.Info("bridge ready", "mqtt", o.mqtt, "http", o.http, "catalog", ex.catalog, "log", bridge.logPath)
	api := newAPI(o.http)
	// Deferred after stopAll, so it runs before: the agents must still
	// be there to stop the workloads.
	defer removeWorkloads(api, log)

	for _, n := range fleet {
		args := []string{
			"-node", n.name, "-broker", "tls://" + o.mqtt,
			"-ca", filepath.Join(pkiDir, pki.CACertFile),
			"-cert", filepath.Join(pkiDir, n.name+".crt"), "-key", filepath.Join(pkiDir, n.name+".key"),
			"-data-dir", filepath.Join(o.dir, "agents", n.name), "-interval", "5s",
		}
		for _, l := range n.labels {
			args = append(args, "-label", l)
		}
		p, err := start(filepath.Join(o.bin, "skyedge-agent"), filepath.Join(logDir, n.name+".log"), args...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		log.Info("agent started", "node", n.name, "log", p.logPath)
	}
	exit := exited(procs)

	if err := api.waitOnline(ctx, exit, 30*time.Second); err != nil || ctx.Err() != nil {
		return err
	}
	log.Info("all nodes online", "nodes", len(fleet))
	for _, w := range ex.workloads {
		if err := api.apply(ctx, w, log); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted
			}
			return err
		}
	}

	cli := o.bin + "/skyedge"
	server := ""
	if o.http != defaultHTTP {
		server = fmt.Sprintf("  export SKYEDGE_SERVER=http://%s\n", o.http)
	}
	fmt.Printf(`
SkyEdge demo is running: a bridge and %d agents over mutual TLS, and the
workloads of %s placed on them.

%s  %[4]s nodes list
  %[4]s sites
  %[4]s workloads list
  %[4]s workloads get hello-exec -o json
  %[4]s plan -f %[5]s
  %[4]s logs hello-exec
  curl -s http://%[6]s/metrics | grep skyedge_

Logs are in %[7]s.
Press Ctrl-C to stop: the workloads are deleted first, so that nothing
keeps running on this machine.
`, len(fleet), filepath.Join(o.examples, "workloads"), server, cli,
		filepath.Join(o.examples, "workloads", "sky-residency.yaml"), o.http, logDir)

	select {
	case <-ctx.Done():
		log.Info("stopping")
		return nil
	case p := <-exit:
		return fmt.Errorf("%s exited unexpectedly: %v (see %s)", p.name, p.err, p.logPath)
	}
}

// ensurePKI makes the CA, the bridge's server certificate and one
// certificate per node, keeping whatever already exists.
func ensurePKI(dir, mqttAddr string, log *slog.Logger) error {
	now := time.Now()
	ca, err := pki.LoadCA(dir)
	if err != nil {
		if ca, err = pki.InitCA(dir, now); err != nil {
			return err
		}
		log.Info("created development CA", "dir", dir)
	}
	host, _, err := net.SplitHostPort(mqttAddr)
	if err != nil {
		return fmt.Errorf("-mqtt %q: %w", mqttAddr, err)
	}
	hosts := []string{"localhost", "127.0.0.1"}
	if host != "" && host != "localhost" && host != "127.0.0.1" && host != "0.0.0.0" {
		hosts = append(hosts, host)
	}
	certs := []pki.Options{{Name: "bridge", Server: true, Hosts: hosts}}
	for _, n := range fleet {
		certs = append(certs, pki.Options{Name: n.name})
	}
	for _, o := range certs {
		if _, err := os.Stat(filepath.Join(dir, o.Name+".crt")); err == nil {
			continue
		}
		if _, _, err := ca.IssueFiles(dir, o, now); err != nil {
			return err
		}
	}
	return nil
}

// proc is a child process of the demo.
type proc struct {
	name, logPath string
	cmd           *exec.Cmd
	done          chan struct{}
	err           error
}

func start(bin, logPath string, args ...string) (*proc, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found: run `make build` first", bin)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Ctrl-C in the terminal reaches the demo, which then
	// stops its children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{name: filepath.Base(bin) + " " + strings.Join(nameArg(args), ""), logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func nameArg(args []string) []string {
	for i, a := range args {
		if a == "-node" && i+1 < len(args) {
			return []string{args[i+1]}
		}
	}
	return nil
}

func exited(procs []*proc) <-chan *proc {
	ch := make(chan *proc, len(procs))
	for _, p := range procs {
		go func() { <-p.done; ch <- p }()
	}
	return ch
}

// stopAll stops the agents first (they say goodbye to the bridge), then
// the bridge: SIGTERM, and SIGKILL after a grace period.
func stopAll(procs []*proc, log *slog.Logger) {
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			log.Warn("did not stop in 10s, killing", "process", p.name)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func waitReady(ctx context.Context, url string, p *proc) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("bridge exited: %v", p.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("timed out after 30s")
}
