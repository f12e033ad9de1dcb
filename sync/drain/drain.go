// Package drain sends an agent's outbox to the cloud and deletes what the
// cloud acknowledges. It is the agent half of the acknowledged link: it
// packs many envelopes into one pb.Batch message (at most
// protocol.MaxPayload), control before events before telemetry, paces
// sends with a token bucket (messages and bytes per second), keeps a
// bounded number of unacknowledged batches in flight and resends one
// whose ack does not come, and on every reconnect starts from the cloud's
// watermark (Resume), after a random delay so a fleet coming back at once
// spreads out.
//
// The Drainer touches no network itself: it calls a Sender for each MQTT
// message, and the uplink calls Resume, Pause and HandleAck from its
// connection callbacks. Those never block; the work happens in Run.
package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Sender publishes one MQTT message on the node's up topic for stream
// (QoS 1). A nil error means the broker has it, not that the cloud applied
// it; only an Ack says that.
type Sender interface {
	Send(ctx context.Context, payload []byte, stream string) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, payload []byte, stream string) error

// Send implements Sender.
func (f SenderFunc) Send(ctx context.Context, payload []byte, stream string) error {
	return f(ctx, payload, stream)
}

// Config configures a Drainer. Start from DefaultConfig.
type Config struct {
	// NodeID and BootEpoch fill the batch envelopes.
	NodeID    string
	BootEpoch uint64
	// Profile paces sends.
	Profile Profile
	// MaxInFlight bounds the batches sent and not yet fully acknowledged.
	MaxInFlight int
	// AckTimeout is how long a batch waits for its ack before it is sent
	// again; it doubles with each resend up to 8 times itself.
	AckTimeout time.Duration
	// ResumeJitter spreads the first send after a reconnect uniformly
	// over [0, ResumeJitter).
	ResumeJitter time.Duration
	// MaxBatchBytes and MaxBatchEnvelopes bound one message.
	MaxBatchBytes     int
	MaxBatchEnvelopes int
	// PollInterval is how often an idle drainer looks for new messages
	// when nobody calls Kick.
	PollInterval time.Duration
	// RetryDelay is the first wait after a failed send or queue read; it
	// doubles up to MaxRetryDelay.
	RetryDelay, MaxRetryDelay time.Duration
	// Clock, Logger and Rand (uniform in [0, 1), for the jitter); nil
	// means the real clock, a discarding logger and math/rand/v2.
	Clock  clock.Clock
	Logger *slog.Logger
	Rand   func() float64
}

// DefaultConfig returns the settings for AWS IoT Core's limits.
func DefaultConfig() Config {
	return Config{
		Profile:           AWSIoTCore,
		MaxInFlight:       8,
		AckTimeout:        30 * time.Second,
		ResumeJitter:      5 * time.Second,
		MaxBatchBytes:     protocol.MaxPayload,
		MaxBatchEnvelopes: 1000,
		PollInterval:      time.Second,
		RetryDelay:        time.Second,
		MaxRetryDelay:     30 * time.Second,
	}
}

// Validate reports the first rule c breaks.
func (c Config) Validate() error {
	if err := protocol.ValidateNodeID(c.NodeID); err != nil {
		return fmt.Errorf("drain config: %w", err)
	}
	switch {
	case c.Profile.MsgsPerSec < 0 || c.Profile.BytesPerSec < 0:
		return errors.New("drain config: negative pacing rate")
	case c.MaxInFlight < 1:
		return fmt.Errorf("drain config: max in flight %d, want >= 1", c.MaxInFlight)
	case c.AckTimeout <= 0 || c.PollInterval <= 0 || c.RetryDelay <= 0 || c.MaxRetryDelay < c.RetryDelay:
		return errors.New("drain config: ack timeout, poll interval and retry delays must be positive")
	case c.ResumeJitter < 0:
		return errors.New("drain config: negative resume jitter")
	case c.MaxBatchBytes < 1024 || c.MaxBatchBytes > protocol.MaxPayload:
		return fmt.Errorf("drain config: max batch bytes %d, want 1 KiB..%d", c.MaxBatchBytes, protocol.MaxPayload)
	case c.MaxBatchEnvelopes < 1 || c.MaxBatchEnvelopes > protocol.MaxBatchEnvelopes:
		return fmt.Errorf("drain config: max batch envelopes %d, want 1..%d", c.MaxBatchEnvelopes, protocol.MaxBatchEnvelopes)
	}
	return nil
}

// Stats are a drainer's counters since New.
type Stats struct {
	Batches   uint64 // messages sent for the first time
	Envelopes uint64 // envelopes in them
	Bytes     uint64 // payload bytes sent, resends included
	Resends   uint64 // messages sent again after an ack timeout
	Acked     uint64 // acks applied to the queue
	Errors    uint64 // failed sends, queue reads and acks
	InFlight  int    // batches awaiting their ack
}

// Drainer drains an outbox.Queue through a Sender.
type Drainer struct {
	q   outbox.Queue
	s   Sender
	cfg Config
	clk clock.Clock
	log *slog.Logger

	mu    sync.Mutex // guards the mailbox below
	ack   *acks.Set  // acks received and not yet applied
	link  *linkEvent // the latest Resume or Pause not yet applied
	wake  chan struct{}
	stats struct {
		batches, envelopes, bytes, resends, acked, errors atomic.Uint64
		inFlight                                          atomic.Int64
	}
	errs errLog // Run only
}

type linkEvent struct {
	up bool
}

// New returns a drainer of q through s.
func New(q outbox.Queue, s Sender, cfg Config) (*Drainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	d := &Drainer{q: q, s: s, cfg: cfg, clk: cfg.Clock, log: cfg.Logger.With("component", "drain"), wake: make(chan struct{}, 1)}
	d.errs = errLog{log: d.log, clk: d.clk}
	return d, nil
}

// Resume tells the drainer the link is up and where the cloud stands: it
// deletes everything the Welcome covers and resends the rest from the
// start, after the resume jitter. It never blocks.
func (d *Drainer) Resume(w *pb.Welcome) {
	d.mu.Lock()
	if d.ack == nil {
		d.ack = acks.NewSet(0, 0)
	}
	d.ack.AddWelcome(w)
	d.link = &linkEvent{up: true}
	d.mu.Unlock()
	d.Kick()
}

// Pause tells the drainer the link is down: it stops sending and forgets
// what was in flight (Resume resends it). It never blocks.
func (d *Drainer) Pause() {
	d.mu.Lock()
	d.link = &linkEvent{up: false}
	d.mu.Unlock()
	d.Kick()
}

// HandleAck records an Ack from the cloud; Run deletes what it covers. It
// never blocks.
func (d *Drainer) HandleAck(a *pb.Ack) {
	d.mu.Lock()
	if d.ack == nil {
		d.ack = acks.NewSet(0, 0)
	}
	d.ack.AddAck(a)
	d.mu.Unlock()
	d.Kick()
}

// Kick wakes the drainer, for example after an append.
func (d *Drainer) Kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Stats returns the drainer's counters.
func (d *Drainer) Stats() Stats {
	return Stats{
		Batches:   d.stats.batches.Load(),
		Envelopes: d.stats.envelopes.Load(),
		Bytes:     d.stats.bytes.Load(),
		Resends:   d.stats.resends.Load(),
		Acked:     d.stats.acked.Load(),
		Errors:    d.stats.errors.Load(),
		InFlight:  int(d.stats.inFlight.Load()),
	}
}

// Run drains until ctx is cancelled. Cancellation is not an error.
func (d *Drainer) Run(ctx context.Context) error {
	st := &state{pacer: newPacer(d.cfg.Profile, d.clk.Now()), retryDelay: d.cfg.RetryDelay}
	for {
		if ctx.Err() != nil {
			return nil
		}
		d.takeMailbox(st)
		wait := d.applyAcks(ctx, st)
		if w := d.step(ctx, st); w < wait {
			wait = w
		}
		d.stats.inFlight.Store(int64(len(st.inflight)))
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-d.clk.After(wait):
		}
	}
}
