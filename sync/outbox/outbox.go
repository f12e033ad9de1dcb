// Package outbox declares SkyEdge's durable outbox: the queue every message
// an agent must not lose goes through before it is sent, and from which it
// is deleted only when the cloud has acknowledged applying it (MQTT's PUBACK
// deletes nothing).
//
// Append gives each message the node's next sequence number, one space
// shared by every class, persisted and never reused. Messages fall in three
// classes, drained in priority order: Control (alarms, gap markers),
// Event, Telemetry. Each class has a Policy: a byte quota, a maximum age,
// and what to do when full (refuse, drop the oldest, or, for telemetry,
// first compact old reports into per-window summaries). Nothing is dropped
// silently: every drop is counted and recorded in a Gap marker (itself a
// Control message) whose sequence ranges let the cloud settle the hole.
//
// Implementations live in subpackages (badgerq on disk, memq in memory,
// faultyq for error injection) and all pass the contract in outboxtest.
// README.md holds the design and its known limits.
package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/skyedge/skyedge/sync/acks"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Errors callers branch on.
var (
	// ErrFull is returned by Append when the message's class refuses new
	// messages (over quota) or the disk guard refuses every write.
	ErrFull = errors.New("outbox full")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("outbox closed")
	// ErrNotQueued is returned by Append for bodies that are never
	// sequenced (hello, goodbye, ack, welcome, batch, none).
	ErrNotQueued = errors.New("message is not a durable outbox message")
)

// Class is a message's drain priority; lower classes drain first.
type Class uint8

// Classes, in drain order.
const (
	// Control holds what the cloud must hear first: alarms (events of
	// severity ALARM) and gap markers.
	Control Class = iota
	// Event holds the node's other events.
	Event
	// Telemetry holds resource reports and telemetry summaries.
	Telemetry
)

// NumClasses is the number of classes; Class values are 0..NumClasses-1.
const NumClasses = 3

// Classes lists the classes in drain order.
var Classes = [NumClasses]Class{Control, Event, Telemetry}

// String is the class name used in Gap.class, logs and metrics.
func (c Class) String() string {
	switch c {
	case Control:
		return "control"
	case Event:
		return "event"
	case Telemetry:
		return "telemetry"
	}
	return "unknown"
}

// ClassOf returns the class of a durable message: gaps, workload statuses
// and alarms are Control, other events Event, reports and summaries Telemetry. ok is false
// for bodies that are not queued.
func ClassOf(env *pb.Envelope) (c Class, ok bool) {
	switch b := env.GetBody().(type) {
	case *pb.Envelope_Gap, *pb.Envelope_Status:
		return Control, true
	case *pb.Envelope_Event:
		if b.Event.GetSeverity() == pb.Event_SEVERITY_ALARM {
			return Control, true
		}
		return Event, true
	case *pb.Envelope_Report, *pb.Envelope_Summary:
		return Telemetry, true
	}
	return 0, false
}

// Reason says why messages were dropped; the values are Gap.reason.
type Reason string

// Drop reasons.
const (
	ReasonQuota Reason = "quota" // over the class quota
	ReasonTTL   Reason = "ttl"   // older than the class TTL
	ReasonDisk  Reason = "disk"  // refused or dropped by the disk guard
)

// Item is one queued message.
type Item struct {
	Seq        uint64
	Class      Class
	ProducedAt time.Time
	// Payload is the marshalled Envelope, with Seq stamped. Callers must
	// not modify it.
	Payload []byte
}

// Cursor is a drainer's position: per class, the highest sequence number
// already read. Pending returns only items above it, so a drainer pages
// through the backlog without re-reading what it has in flight, and new
// control messages still come first on its next call. The zero Cursor
// starts from the beginning (after a reconnect).
type Cursor struct {
	After [NumClasses]uint64
}

// Advance returns c moved past it. A drainer that sends fewer items than
// Pending returned advances over the ones it sent.
func (c Cursor) Advance(it Item) Cursor {
	if it.Seq > c.After[it.Class] {
		c.After[it.Class] = it.Seq
	}
	return c
}

// Queue is the durable outbox. Methods are safe for concurrent use.
type Queue interface {
	// Append stamps env.Seq with the next sequence number and env.SentAtMs
	// with the clock when it is 0, marshals env and stores it under its
	// class's policy. Control and event messages are durable when Append
	// returns; telemetry is synced within the configured SyncInterval and
	// always before Pending hands it out. It returns ErrFull (after
	// counting the refusal) when the class refuses, ErrNotQueued for
	// bodies that are never sequenced, and leaves env.Seq 0 on error,
	// except when the message was stored but syncing it failed: then it
	// returns the sequence number with the error.
	Append(ctx context.Context, env *pb.Envelope) (uint64, error)
	// Pending returns up to maxItems unacknowledged items above cursor, in
	// drain order (Control, Event, Telemetry; by sequence number within a
	// class) and totalling at most maxBytes of payload (the first item is
	// returned even when larger), with the cursor advanced past them. Only
	// items already synced to disk are returned, so nothing that a crash
	// could lose is ever sent.
	Pending(ctx context.Context, cursor Cursor, maxItems, maxBytes int) ([]Item, Cursor, error)
	// Ack deletes every item with a sequence number up to cumulative or
	// inside one of ranges. Unknown sequence numbers are ignored.
	Ack(ctx context.Context, cumulative uint64, ranges []acks.Range) error
	// State is a snapshot of the queue's contents and counters.
	State() State
	// Run does the background work until ctx is cancelled or the queue is
	// closed: periodic sync, TTL expiry, recording refusals as gaps, the
	// disk guard and storage housekeeping. Cancellation is not an error.
	Run(ctx context.Context) error
	// Close syncs and releases the queue. Cancel Run first.
	Close() error
}

// Pressure is the disk guard's verdict.
type Pressure uint8

// Pressure levels.
const (
	// PressureNone: within every limit.
	PressureNone Pressure = iota
	// PressureSoft: close to a limit. Telemetry's quota is halved until
	// the pressure passes.
	PressureSoft
	// PressureHard: at a limit. Every Append is refused with ErrFull.
	PressureHard
)

// String names the level for logs.
func (p Pressure) String() string {
	switch p {
	case PressureNone:
		return "none"
	case PressureSoft:
		return "soft"
	case PressureHard:
		return "hard"
	}
	return "unknown"
}

// State is a snapshot of a queue. Counters count since Open.
type State struct {
	// FirstSeq and LastSeq bound the pending items (Hello.outbox_first_seq
	// and outbox_last_seq); both 0 when the queue is empty.
	FirstSeq, LastSeq uint64
	// NextSeq is the sequence number the next message will get;
	// NextSeq-1 is the highest ever assigned (Hello.next_seq).
	NextSeq uint64
	// ID names the store's sequence space (Hello.outbox_id): random,
	// created with the store and kept in it, so a store recreated after
	// corruption, which numbers from 1 again, gets another.
	ID string
	// Classes holds per-class figures, indexed by Class.
	Classes [NumClasses]ClassState
	// DiskBytes is the space the store occupies on disk (0 in memory).
	DiskBytes int64
	// Pressure is the disk guard's last verdict.
	Pressure Pressure
	// Recovered is set when Open found the store corrupt, moved it aside
	// to this path and started afresh.
	Recovered string
}

// ClassState holds one class's figures.
type ClassState struct {
	Count             int64  // pending items
	Bytes             int64  // their size as counted against the quota
	FirstSeq, LastSeq uint64 // 0 when empty
	Appended          uint64 // accepted by Append
	Refused           uint64 // refused by Append with ErrFull
	DroppedQuota      uint64 // dropped over quota
	DroppedTTL        uint64 // dropped past the TTL
	DroppedDisk       uint64 // dropped under disk pressure
	Summarized        uint64 // telemetry replaced by summaries
}
