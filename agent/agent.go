// Package agent is the SkyEdge edge agent: the one type that builds and
// owns every subsystem of the edge binary. Today those are the resource
// sampler (internal/collect), the MQTT link to the cloud
// (internal/uplink) and the reporter between them; the durable outbox,
// the workload runner and OTA join them here.
//
// The agent's configuration comes in two layers: Config, the library
// configuration built by code (a fleet simulator, tests), and FileConfig,
// the versioned YAML file an operator writes, which converts into a
// Config.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/agent/internal/collect"
	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/agent/internal/uplink"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Source produces what the agent reports about its node. The host
// sampler is the real one; a fleet simulator feeds synthetic samples
// through the same code paths.
type Source interface {
	// Facts returns the node's static facts; the caller caches them.
	Facts(ctx context.Context) (*pb.Hello, error)
	// Sample returns a resource report taken at now. Rates are computed
	// since the previous call.
	Sample(ctx context.Context, now time.Time) (*pb.ResourceReport, error)
}

// Publisher is the seam between the producers of envelopes (reporter,
// events) and the link. Today it is the direct MQTT publisher; the
// durable outbox implements the same interface and the link drains it, so
// neither producers nor link change.
type Publisher interface {
	// Publish sends or stores env. An error wrapping ErrNotConnected means
	// the envelope was not taken because the link is down.
	Publish(ctx context.Context, env *pb.Envelope) error
}

// ErrNotConnected is returned by a Publisher that cannot take an
// envelope while the link is down.
var ErrNotConnected = uplink.ErrNotConnected

// Stats are the agent's counters since New.
type Stats struct {
	ReportsSent     uint64 // reports acknowledged by the broker
	ReportsDropped  uint64 // reports lost: link down or publish failed
	SampleErrors    uint64 // samples that failed
	Connects        uint64 // connections established
	ConnectFailures uint64 // connection attempts that failed
	Disconnects     uint64 // connections lost
	PublishErrors   uint64 // publishes that failed while connected
	LastError       string // the most recent error of any kind
}

// Agent is a running edge agent. Create it with New, run it with Run.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	stamper  *stamp.Stamper
	link     *uplink.Link
	reporter *reporter
	running  atomic.Bool

	// sentHello is the Hello most recently handed to the link.
	sentHello atomic.Pointer[pb.Hello]

	factsMu   sync.Mutex // guards the fields below
	facts     *pb.Hello
	factsErrs int
}

// New checks cfg and builds the agent without starting anything: the
// node's certificate must carry NodeID as its common name.
func New(cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	log := cfg.Logger.With("node", cfg.NodeID)
	if cfg.Source == nil {
		cfg.Source = collect.New(collect.Options{AgentVersion: cfg.Version, Logger: log})
	}
	a := &Agent{
		cfg:     cfg,
		log:     log.With("component", "agent"),
		stamper: &stamp.Stamper{NodeID: cfg.NodeID, Clock: cfg.Clock},
	}
	link, err := uplink.New(uplink.Config{
		NodeID:         cfg.NodeID,
		Broker:         cfg.Broker,
		AllowPlaintext: cfg.AllowPlaintext,
		TLS:            cfg.TLS,
		KeepAlive:      cfg.KeepAlive,
		Reconnect:      cfg.Reconnect,
		Stamper:        a.stamper,
		Hello:          a.hello,
		Logger:         log,
		Clock:          cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.link = link
	a.reporter = &reporter{
		src:       cfg.Source,
		pub:       link,
		stamper:   a.stamper,
		clock:     cfg.Clock,
		interval:  cfg.ReportInterval,
		log:       log.With("component", "reporter"),
		sentHello: a.sentHello.Load,
	}
	return a, nil
}

// Run starts the agent and blocks until ctx is done; cancellation is not
// an error. Every start increments the boot epoch stored in DataDir. Run
// may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	epoch, corrupt, err := nextBootEpoch(a.cfg.DataDir, a.cfg.Clock.Now())
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if corrupt != nil {
		a.log.Warn("boot epoch file was corrupt", "error", corrupt)
	}
	a.stamper.BootEpoch = epoch // before any goroutine reads it
	a.log.Info("starting", "version", a.cfg.Version, "boot_epoch", epoch, "broker", a.cfg.Broker,
		"report_interval", a.cfg.ReportInterval)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.link.Run(ctx) })
	g.Go(func() error { return a.reporter.Run(ctx) })
	err = g.Wait()
	a.log.Info("stopped")
	return err
}

// Connected reports whether the link to the cloud is up.
func (a *Agent) Connected() bool { return a.link.Connected() }

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	ls := a.link.Stats()
	s := Stats{
		ReportsSent:     a.reporter.sent.Load(),
		ReportsDropped:  a.reporter.dropped.Load(),
		SampleErrors:    a.reporter.sampleErrors.Load(),
		Connects:        ls.Connects,
		ConnectFailures: ls.ConnectFailures,
		Disconnects:     ls.Disconnects,
		PublishErrors:   ls.PublishErrors,
		LastError:       ls.LastError,
	}
	if msg, at := a.reporter.lastError(); msg != "" && at.After(ls.LastErrorAt) {
		s.LastError = msg
	}
	return s
}

// hello builds the body of the hello sent on every connect: the cached
// facts, the static quantities of the latest sample (which reports then
// leave out), the labels and the report interval. When the facts cannot
// be read, it sends what it knows rather than stay offline, and tries
// again on the next connect.
func (a *Agent) hello(ctx context.Context) (*pb.Hello, error) {
	h := a.cachedFacts(ctx)
	protocol.SetHelloStatics(h, a.reporter.last.Load())
	h.Labels = a.cfg.Labels
	h.ReportIntervalMs = uint32(min(a.cfg.ReportInterval.Milliseconds(), 1<<32-1))
	if h.AgentVersion == "" {
		h.AgentVersion = a.cfg.Version
	}
	a.sentHello.Store(h)
	return h, nil
}

func (a *Agent) cachedFacts(ctx context.Context) *pb.Hello {
	a.factsMu.Lock()
	defer a.factsMu.Unlock()
	if a.facts == nil {
		f, err := a.cfg.Source.Facts(ctx)
		if err != nil {
			if a.factsErrs++; a.factsErrs == 1 {
				a.log.Warn("node facts unavailable; the hello carries only version, OS and architecture", "error", err)
			}
			return &pb.Hello{Os: runtime.GOOS, Arch: runtime.GOARCH}
		}
		a.facts = f
	}
	return proto.Clone(a.facts).(*pb.Hello)
}
