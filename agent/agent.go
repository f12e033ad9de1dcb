// Package agent is the SkyEdge edge agent: the one type that builds and
// owns every subsystem of the edge binary: the resource sampler
// (internal/collect), the MQTT link to the cloud (internal/uplink), the
// durable outbox (sync/outbox/badgerq) with its drainer (sync/drain), the
// reporter that feeds it, and the workloads the cloud assigns
// (sync/desired for the versioned desired set, internal/runner to run
// it); OTA joins them here.
//
// Every report, event and workload status goes into the outbox first and
// is deleted only when the cloud acknowledges applying it, so nothing is
// lost to a disconnect, a crash or a reboot. The desired set is stored
// before it is acknowledged, and run from storage at boot, before any
// contact with the cloud. README.md holds the design and limits.
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
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
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

// Stats are the agent's counters since New. What the outbox dropped to
// stay within its quotas, TTLs and disk guard is in Outbox.Classes (every
// drop is also reported to the cloud in a gap marker).
type Stats struct {
	ReportsQueued  uint64 // reports appended to the outbox
	ReportsRefused uint64 // reports the outbox refused (outbox.ErrFull: disk guard)
	ReportsFailed  uint64 // reports lost to another append error
	SampleErrors   uint64 // samples that failed

	EventsQueued  uint64 // events appended to the outbox by RecordEvent
	EventsRefused uint64 // events refused with outbox.ErrFull
	EventsFailed  uint64 // events invalid or lost to another append error

	Connects        uint64 // connections established
	ConnectFailures uint64 // connection attempts that failed
	Disconnects     uint64 // connections lost
	PublishErrors   uint64 // publishes that failed while connected

	// AcksIgnored counts acks and welcomes that named sequence numbers
	// the outbox never assigned; WelcomeTimeouts the connections whose
	// drain resumed without a welcome.
	AcksIgnored     uint64
	WelcomeTimeouts uint64

	// Outbox is the outbox's state (pending range and counts, per-class
	// appends, refusals and drops, disk use); zero before Run.
	Outbox outbox.State
	// Drain holds the drainer's counters; zero before Run.
	Drain drain.Stats

	// Workloads holds the counters of the workloads the node runs.
	Workloads WorkloadStats

	LastError string // the most recent error of any kind
}

// WorkloadStats are the counters of the workloads the node runs, since
// New.
type WorkloadStats struct {
	// Generation is the desired-state generation the node holds, and
	// Assigned the number of workloads in it.
	Generation uint64
	Assigned   int

	DesiredApplied    uint64 // desired-state messages stored and applied
	DesiredIgnored    uint64 // resends of what the node holds, or received while disabled
	DesiredMismatched uint64 // diffs on another base, answered with the generation held
	DesiredFailed     uint64 // messages refused or not stored (not acknowledged)
	DesiredDropped    uint64 // messages dropped on a full queue
	DesiredAcksSent   uint64 // DesiredAcks the broker took
	// AssignmentsRefused counts assignments the node could not take (a
	// bad name, a spec that does not decode); the runner's Rejected
	// counts those it refused to run (an invalid spec).
	AssignmentsRefused uint64

	StatusesQueued    uint64 // workload statuses appended to the outbox
	StatusesRefused   uint64 // refused by the outbox (outbox.ErrFull)
	StatusesFailed    uint64 // lost to another append error
	StatusesCoalesced uint64 // replaced by a newer one of the same workload before they were queued
	StatusesWaiting   int    // waiting for the outbox now

	LogsServed  uint64 // logs responses the broker took
	LogsDropped uint64 // logs requests dropped on a full queue

	// From the runner: instances started, restarted, adopted from an
	// earlier agent, starts that failed, assignments refused as invalid.
	Starts, Restarts, Adoptions, StartFailures, Rejected uint64
}

// Agent is a running edge agent. Create it with New, run it with Run.
type Agent struct {
	cfg      Config
	baseLog  *slog.Logger // with the node, for the subsystems
	log      *slog.Logger
	stamper  *stamp.Stamper
	link     *uplink.Link
	reporter *reporter
	session  *session
	work     *workloads
	running  atomic.Bool

	// pipe is the outbox and its drainer, set by Run before any
	// goroutine starts and kept afterwards for Stats.
	pipe atomic.Pointer[pipe]

	events struct{ queued, refused, failed atomic.Uint64 }

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
		baseLog: log,
		log:     log.With("component", "agent"),
		stamper: &stamp.Stamper{NodeID: cfg.NodeID, Clock: cfg.Clock},
	}
	a.session = newSession(drainOf{a}, a.outboxState, cfg.Clock, cfg.WelcomeTimeout,
		func(ctx context.Context) error { return a.link.Rehello(ctx) }, log.With("component", "session"))
	link, err := uplink.New(uplink.Config{
		NodeID:         cfg.NodeID,
		Broker:         cfg.Broker,
		AllowPlaintext: cfg.AllowPlaintext,
		TLS:            cfg.TLS,
		KeepAlive:      cfg.KeepAlive,
		Reconnect:      cfg.Reconnect,
		Stamper:        a.stamper,
		Hello:          a.hello,
		OnMessage:      a.message,
		OnConnected:    a.connected,
		OnDisconnected: a.disconnected,
		Logger:         log,
		Clock:          cfg.Clock,
		Dial:           cfg.Dial,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.link = link
	a.work, err = newWorkloads(cfg, a.stamper, link.Send, a.publish, link.Connected, log)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.reporter = &reporter{
		src:       cfg.Source,
		publish:   a.publish,
		stamper:   a.stamper,
		clock:     cfg.Clock,
		interval:  cfg.ReportInterval,
		log:       log.With("component", "reporter"),
		sentHello: a.sentHello.Load,
	}
	return a, nil
}

// Run starts the agent and blocks until ctx is done; cancellation is not
// an error. Every start increments the boot epoch stored in DataDir and
// opens the outbox in DataDir/outbox, then hands the desired set stored
// there to the runner before the link connects, so the node's workloads
// run with or without the cloud. On stop the link says goodbye and the
// outbox is synced and closed; the workloads keep running, for the next
// agent to adopt. Run may be called once.
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
	p, err := a.openOutbox(epoch)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.pipe.Store(p)
	st := p.q.State()
	if st.Recovered != "" {
		// The outbox queued an outbox.corrupt alarm for the cloud.
		a.log.Error("outbox was unreadable: moved aside and started empty; its unsent messages are lost to the cloud",
			"moved_to", st.Recovered, "outbox_id", st.ID)
	}
	a.log.Info("starting", "version", a.cfg.Version, "boot_epoch", epoch, "broker", a.cfg.Broker,
		"report_interval", a.cfg.ReportInterval, "outbox_id", st.ID, "outbox_pending", pending(st),
		"drain_profile", a.cfg.Drain.Profile.Name)
	a.work.load(p.kv)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.work.Run(gctx) })
	g.Go(func() error { return p.q.Run(gctx) })
	g.Go(func() error { return p.d.Run(gctx) })
	g.Go(func() error { return a.session.Run(gctx) })
	g.Go(func() error { return a.link.Run(gctx) })
	g.Go(func() error { return a.reporter.Run(gctx) })
	err = g.Wait()
	p.closed.Store(true)
	if cerr := p.q.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("agent: %w", cerr))
	}
	a.log.Info("stopped", "outbox_pending", pending(p.q.State()))
	return err
}

// pending counts the messages in the outbox.
func pending(st outbox.State) int64 {
	var n int64
	for _, c := range st.Classes {
		n += c.Count
	}
	return n
}

// drainOf hands the session's calls to the drainer once Run has made it.
// Before that there is no connection, so nothing calls it.
type drainOf struct{ a *Agent }

func (d drainOf) Resume(w *pb.Welcome) {
	if p := d.a.pipe.Load(); p != nil {
		p.d.Resume(w)
	}
}

func (d drainOf) Pause() {
	if p := d.a.pipe.Load(); p != nil {
		p.d.Pause()
	}
}

func (d drainOf) HandleAck(ack *pb.Ack) {
	if p := d.a.pipe.Load(); p != nil {
		p.d.HandleAck(ack)
	}
}

func (a *Agent) outboxState() outbox.State {
	if p := a.pipe.Load(); p != nil {
		return p.q.State()
	}
	return outbox.State{}
}

// Connected reports whether the link to the cloud is up.
func (a *Agent) Connected() bool { return a.link.Connected() }

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	ls := a.link.Stats()
	s := Stats{
		ReportsQueued:   a.reporter.queued.Load(),
		ReportsRefused:  a.reporter.refused.Load(),
		ReportsFailed:   a.reporter.failed.Load(),
		SampleErrors:    a.reporter.sampleErrors.Load(),
		EventsQueued:    a.events.queued.Load(),
		EventsRefused:   a.events.refused.Load(),
		EventsFailed:    a.events.failed.Load(),
		Connects:        ls.Connects,
		ConnectFailures: ls.ConnectFailures,
		Disconnects:     ls.Disconnects,
		PublishErrors:   ls.PublishErrors,
		AcksIgnored:     a.session.ignored.Load(),
		WelcomeTimeouts: a.session.timeouts.Load(),
		Workloads:       a.work.Stats(),
		LastError:       ls.LastError,
	}
	if p := a.pipe.Load(); p != nil {
		s.Outbox = p.q.State()
		s.Drain = p.d.Stats()
	}
	if msg, at := a.reporter.lastError(); msg != "" && at.After(ls.LastErrorAt) {
		s.LastError = msg
	}
	return s
}

// hello builds the body of the hello sent on every connect: the cached
// facts, the static quantities of the latest sample (which reports then
// leave out), the labels, the report interval and the outbox's range and
// ID. When the facts cannot be read, it sends what it knows rather than
// stay offline, and tries again on the next connect.
func (a *Agent) hello(ctx context.Context) (*pb.Hello, error) {
	h := a.cachedFacts(ctx)
	protocol.SetHelloStatics(h, a.reporter.last.Load())
	h.Labels = a.cfg.Labels
	h.ReportIntervalMs = uint32(min(a.cfg.ReportInterval.Milliseconds(), 1<<32-1))
	// Where resending must start: the cloud answers with its watermark.
	st := a.outboxState()
	h.OutboxFirstSeq, h.OutboxLastSeq, h.OutboxId = st.FirstSeq, st.LastSeq, st.ID
	if st.NextSeq > 0 {
		h.NextSeq = st.NextSeq - 1
	}
	h.AppliedGeneration = a.work.generation.Load()
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
