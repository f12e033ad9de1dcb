package outbox

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
)

// WhenFull is what a class does when an append takes it over its quota.
type WhenFull uint8

// When-full policies.
const (
	// Refuse new messages with ErrFull; the producer sees it. The refusal
	// is counted and recorded in a gap marker.
	Refuse WhenFull = iota
	// DropOldest accepts the message and drops the class's oldest
	// messages (never gap markers) to get back under quota.
	DropOldest
	// Compact accepts the message, replaces old resource reports by
	// per-window TelemetrySummary messages (windows growing through
	// Config.Tiers as pressure rises, then recent reports summarised
	// too), and only then drops the oldest. Telemetry only.
	Compact
)

// String names the policy.
func (w WhenFull) String() string {
	switch w {
	case Refuse:
		return "refuse"
	case DropOldest:
		return "drop-oldest"
	case Compact:
		return "compact"
	}
	return "unknown"
}

// Policy is one class's storage policy.
type Policy struct {
	// Quota is the most bytes (payload plus per-message overhead) the
	// class may hold. A class over quota is relieved down to 3/4 of it.
	Quota int64
	// TTL is the most a message may age before it is dropped; 0 keeps
	// messages until acknowledged or pushed out by the quota.
	TTL time.Duration
	// WhenFull is what happens at the quota.
	WhenFull WhenFull
}

// Tier is one step of telemetry compaction: reports (and summaries of
// shorter windows) in windows of Window, aligned to the Unix epoch, that
// ended at least MinAge ago are merged into one summary per window. When
// the tiers do not bring telemetry under its quota they are applied once
// more ignoring MinAge, so every finished window is summarised.
type Tier struct {
	Window time.Duration
	MinAge time.Duration
}

// Config configures a queue. Start from DefaultConfig.
type Config struct {
	// NodeID and BootEpoch fill the envelopes the queue writes itself
	// (gap markers, summaries, the corruption alarm).
	NodeID    string
	BootEpoch uint64
	// Policies holds each class's policy, indexed by Class.
	Policies [NumClasses]Policy
	// Tiers are the telemetry compaction steps, in order of growing
	// windows; each window must divide the next.
	Tiers []Tier
	// SyncInterval bounds how long appended telemetry may stay unsynced
	// (what a power cut can lose). Run syncs at this interval.
	SyncInterval time.Duration
	// MaintainInterval is how often Run checks the disk, records refusals
	// as gaps and does storage housekeeping.
	MaintainInterval time.Duration
	// ExpireInterval is how often Run drops messages past their TTL.
	ExpireInterval time.Duration
	// MaxGapRanges bounds the sequence ranges one gap marker carries
	// before a new marker is started.
	MaxGapRanges int
	// Clock is the time source; nil means clock.Real.
	Clock clock.Clock
	// Logger receives state changes and errors of background work; nil
	// discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration for a typical edge node: 4 MiB of
// control messages, 16 MiB of events and 32 MiB of telemetry, kept for up
// to a week (telemetry three days), telemetry compacted into 1-minute,
// 10-minute and hourly summaries as the backlog grows.
func DefaultConfig() Config {
	const day = 24 * time.Hour
	return Config{
		Policies: [NumClasses]Policy{
			Control:   {Quota: 4 << 20, TTL: 7 * day, WhenFull: Refuse},
			Event:     {Quota: 16 << 20, TTL: 7 * day, WhenFull: Refuse},
			Telemetry: {Quota: 32 << 20, TTL: 3 * day, WhenFull: Compact},
		},
		Tiers: []Tier{
			{Window: time.Minute, MinAge: 10 * time.Minute},
			{Window: 10 * time.Minute, MinAge: time.Hour},
			{Window: time.Hour, MinAge: 6 * time.Hour},
		},
		SyncInterval:     100 * time.Millisecond,
		MaintainInterval: time.Second,
		ExpireInterval:   time.Minute,
		MaxGapRanges:     512,
	}
}

// Validate reports the first rule c breaks.
func (c Config) Validate() error {
	if err := protocol.ValidateNodeID(c.NodeID); err != nil {
		return fmt.Errorf("outbox config: %w", err)
	}
	for _, cl := range Classes {
		p := c.Policies[cl]
		switch {
		case p.Quota <= 0:
			return fmt.Errorf("outbox config: %s quota %d, want > 0", cl, p.Quota)
		case p.TTL < 0:
			return fmt.Errorf("outbox config: %s TTL %v, want >= 0", cl, p.TTL)
		case p.WhenFull > Compact:
			return fmt.Errorf("outbox config: %s when-full policy %d unknown", cl, p.WhenFull)
		case p.WhenFull == Compact && cl != Telemetry:
			return fmt.Errorf("outbox config: %s cannot use the compact policy (telemetry only)", cl)
		}
	}
	if c.Policies[Telemetry].WhenFull == Compact && len(c.Tiers) == 0 {
		return errors.New("outbox config: telemetry compaction needs at least one tier")
	}
	for i, t := range c.Tiers {
		if t.Window < time.Second || t.Window%time.Second != 0 {
			return fmt.Errorf("outbox config: tier %d window %v, want whole seconds", i, t.Window)
		}
		if t.MinAge < t.Window {
			return fmt.Errorf("outbox config: tier %d min age %v below its window %v", i, t.MinAge, t.Window)
		}
		if i > 0 {
			prev := c.Tiers[i-1].Window
			if t.Window <= prev || t.Window%prev != 0 {
				return fmt.Errorf("outbox config: tier %d window %v must be a larger multiple of %v", i, t.Window, prev)
			}
		}
	}
	if c.SyncInterval <= 0 || c.MaintainInterval <= 0 || c.ExpireInterval <= 0 {
		return errors.New("outbox config: sync, maintain and expire intervals must be positive")
	}
	if c.MaxGapRanges < 1 {
		return fmt.Errorf("outbox config: max gap ranges %d, want >= 1", c.MaxGapRanges)
	}
	return nil
}
