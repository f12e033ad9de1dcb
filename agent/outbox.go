package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// ErrNotRunning is returned by RecordEvent outside Run: the outbox is
// open only while the agent runs.
var ErrNotRunning = errors.New("agent not running")

// Limits of RecordEvent. They keep events small on the wire and in the
// outbox's event quota.
const (
	MaxEventKind       = 128  // bytes of Event.kind
	MaxEventMessage    = 4096 // bytes of Event.message
	MaxEventAttributes = 32   // entries of Event.attributes
	MaxEventAttrKey    = 128  // bytes of an attribute key
	MaxEventAttrValue  = 1024 // bytes of an attribute value
)

// pipe is the durable path of every message the agent must not lose:
// producers append to the outbox and wake the drainer, which sends and
// deletes only on the cloud's ack.
type pipe struct {
	q      outbox.Queue
	kv     kvStore // the agent's own state, in the same database
	d      *drain.Drainer
	closed atomic.Bool // set before the queue is closed
}

// publish appends env to the outbox and wakes the drainer. It returns the
// sequence number, which is set even with an error when the message was
// stored but its sync failed.
func (p *pipe) publish(ctx context.Context, env *pb.Envelope) (uint64, error) {
	if p.closed.Load() {
		return 0, ErrNotRunning
	}
	if err := protocol.Validate(env); err != nil {
		return 0, fmt.Errorf("queue %s: %w", protocol.BodyName(env), err)
	}
	seq, err := p.q.Append(ctx, env)
	if seq != 0 {
		p.d.Kick()
	}
	return seq, err
}

// openOutbox opens the outbox in DataDir/outbox and the drainer over it,
// for a run in boot epoch epoch.
func (a *Agent) openOutbox(epoch uint64) (*pipe, error) {
	oc := a.cfg.Outbox
	oc.NodeID, oc.BootEpoch, oc.Clock, oc.Logger = a.cfg.NodeID, epoch, a.cfg.Clock, a.baseLog
	var q outbox.Queue
	var kv kvStore
	if a.cfg.OpenOutbox != nil {
		mq, err := a.cfg.OpenOutbox(oc)
		if err != nil {
			return nil, err
		}
		q, kv = mq, newMemKV()
	} else {
		so := a.cfg.OutboxStorage
		so.Dir = filepath.Join(a.cfg.DataDir, OutboxDir)
		bq, err := badgerq.Open(so, oc)
		if err != nil {
			return nil, err
		}
		q, kv = bq, bq.Local()
	}
	dc := a.cfg.Drain
	dc.NodeID, dc.BootEpoch, dc.Clock, dc.Logger = a.cfg.NodeID, epoch, a.cfg.Clock, a.baseLog
	d, err := drain.New(q, drain.SenderFunc(a.send), dc)
	if err != nil {
		return nil, errors.Join(err, q.Close())
	}
	return &pipe{q: q, kv: kv, d: d}, nil
}

// memKV is the agent's state in memory, beside an outbox from
// Config.OpenOutbox.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (kv *memKV) Get(key string) ([]byte, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[key]
	if !ok {
		return nil, badgerq.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (kv *memKV) Set(key string, val []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.m[key] = slices.Clone(val)
	return nil
}

// send is the drainer's Sender: one QoS 1 publish through the link, which
// fails with uplink.ErrNotConnected while the link is down.
func (a *Agent) send(ctx context.Context, payload []byte, stream string) error {
	return a.link.Publish(ctx, stream, payload)
}

// publish is the producers' way into the outbox.
func (a *Agent) publish(ctx context.Context, env *pb.Envelope) (uint64, error) {
	p := a.pipe.Load()
	if p == nil {
		return 0, ErrNotRunning
	}
	return p.publish(ctx, env)
}

// RecordEvent queues an event for the cloud in the outbox and returns its
// sequence number. Alarms (SEVERITY_ALARM) go to the Control class, which
// drains before everything else; other events to the Event class. Both
// are on disk when RecordEvent returns, and stay there until the cloud
// acknowledges applying them.
//
// It fails with an error wrapping outbox.ErrFull when the event's class is
// over its quota (the refusal is counted and reported to the cloud in a
// gap marker), ErrNotRunning outside Run, and a plain error for an event
// without a severity or kind or beyond the MaxEvent limits. The event is
// not modified; its production time is now.
func (a *Agent) RecordEvent(ctx context.Context, ev *pb.Event) (uint64, error) {
	if err := checkEvent(ev); err != nil {
		a.events.failed.Add(1)
		return 0, fmt.Errorf("record event: %w", err)
	}
	env := a.stamper.Stamp(&pb.Envelope{Body: &pb.Envelope_Event{Event: ev}})
	seq, err := a.publish(ctx, env)
	switch {
	case seq != 0:
		a.events.queued.Add(1)
	case errors.Is(err, outbox.ErrFull):
		a.events.refused.Add(1)
	default:
		a.events.failed.Add(1)
	}
	if err != nil {
		return seq, fmt.Errorf("record event %s: %w", ev.GetKind(), err)
	}
	return seq, nil
}

// checkEvent checks ev against the MaxEvent limits.
func checkEvent(ev *pb.Event) error {
	switch {
	case ev == nil:
		return errors.New("nil event")
	case ev.GetSeverity() <= pb.Event_SEVERITY_UNSPECIFIED || ev.GetSeverity() > pb.Event_SEVERITY_ALARM:
		return fmt.Errorf("severity %v: want info, warning or alarm", ev.GetSeverity())
	case ev.GetKind() == "" || len(ev.GetKind()) > MaxEventKind || strings.ContainsFunc(ev.GetKind(), isControl):
		return fmt.Errorf("kind %q: want 1 to %d bytes of printable text, e.g. workload.crashed", ev.GetKind(), MaxEventKind)
	case len(ev.GetMessage()) > MaxEventMessage:
		return fmt.Errorf("message of %d bytes, at most %d", len(ev.GetMessage()), MaxEventMessage)
	case len(ev.GetAttributes()) > MaxEventAttributes:
		return fmt.Errorf("%d attributes, at most %d", len(ev.GetAttributes()), MaxEventAttributes)
	}
	for k, v := range ev.GetAttributes() {
		if k == "" || len(k) > MaxEventAttrKey || len(v) > MaxEventAttrValue {
			return fmt.Errorf("attribute %q: key must be 1 to %d bytes and value at most %d", k, MaxEventAttrKey, MaxEventAttrValue)
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("attribute %q: not valid UTF-8", k)
		}
	}
	if !utf8.ValidString(ev.GetKind()) || !utf8.ValidString(ev.GetMessage()) {
		return errors.New("kind or message is not valid UTF-8")
	}
	return nil
}
