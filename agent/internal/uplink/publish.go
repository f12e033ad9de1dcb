package uplink

import (
	"context"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Publish sends payload, an encoded envelope, on the node's up topic for
// stream at QoS 1 and waits for the broker's PUBACK, at most until ctx is
// done or PublishTimeout passes. It returns ErrNotConnected at once while
// the link is down. A PUBACK means the broker has the message, not that
// the cloud applied it: the durable outbox deletes nothing on it.
//
// Payloads come from the outbox, which marshalled and checked them when
// they were appended; Publish checks only the stream and the size.
func (l *Link) Publish(ctx context.Context, stream string, payload []byte) error {
	c := l.current()
	if c == nil {
		return ErrNotConnected
	}
	err := l.publishRaw(ctx, c, stream, payload)
	if err != nil {
		l.failed(ctx, err)
		return err
	}
	l.published.Add(1)
	return nil
}

// failed counts and notes a publish error, unless the caller gave up (its
// context ended, as at shutdown): that is not the link's failure.
func (l *Link) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	l.publishErrors.Add(1)
	l.noteError(err)
}

// publishRaw checks and publishes one payload on c.
func (l *Link) publishRaw(ctx context.Context, c paho.Client, stream string, payload []byte) error {
	topic := protocol.UpTopic(l.cfg.NodeID, stream)
	switch {
	case !durableStreams[stream]:
		return fmt.Errorf("publish on %s: %q is not a stream of durable messages", topic, stream)
	case len(payload) == 0 || len(payload) > protocol.MaxPayload:
		return fmt.Errorf("publish on %s: payload of %d bytes, want 1..%d", topic, len(payload), protocol.MaxPayload)
	}
	if err := l.wait(ctx, c.Publish(topic, 1, false, payload), l.cfg.PublishTimeout); err != nil {
		return fmt.Errorf("publish on %s: %w", topic, err)
	}
	return nil
}

// durableStreams are the up streams Publish may use: the link sends the
// hello and the goodbye itself.
var durableStreams = map[string]bool{
	protocol.StreamReport: true,
	protocol.StreamEvent:  true,
	protocol.StreamBatch:  true,
}

// publishOn publishes an envelope the link makes itself (hello, goodbye)
// on its stream's up topic.
func (l *Link) publishOn(ctx context.Context, c paho.Client, env *pb.Envelope) error {
	stream := protocol.StreamOf(env)
	if stream == "" {
		return fmt.Errorf("publish: envelope has no body")
	}
	if env.GetNodeId() != l.cfg.NodeID {
		return fmt.Errorf("publish %s: envelope of node %q on the link of %q", protocol.BodyName(env), env.GetNodeId(), l.cfg.NodeID)
	}
	if err := protocol.Validate(env); err != nil {
		return fmt.Errorf("publish %s: %w", protocol.BodyName(env), err)
	}
	payload, err := protocol.Marshal(env)
	if err != nil {
		return fmt.Errorf("publish %s: %w", protocol.BodyName(env), err)
	}
	topic := protocol.UpTopic(l.cfg.NodeID, stream)
	if err := l.wait(ctx, c.Publish(topic, 1, false, payload), l.cfg.PublishTimeout); err != nil {
		return fmt.Errorf("publish %s on %s: %w", protocol.BodyName(env), topic, err)
	}
	return nil
}

var errTimeout = errors.New("no acknowledgement in time")

// wait waits for tok, at most until ctx is done or timeout passes on the
// link's clock. It never calls tok.Wait, which could block forever.
func (l *Link) wait(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-l.cfg.Clock.After(timeout):
		return fmt.Errorf("%w (%s)", errTimeout, timeout)
	}
}

// directStreams are the up streams Send may use: replies that are not
// sequenced and not kept, because the cloud asks again or learns the
// same from the next hello.
var directStreams = map[string]bool{
	protocol.StreamDesired: true, // DesiredAck
	protocol.StreamLogs:    true, // LogsResponse
}

// Send publishes env, stamped and unsequenced, on its stream's up topic
// at QoS 1 and waits for the broker's PUBACK, like Publish. It is for
// replies that are never queued (a DesiredAck, a LogsResponse): it
// returns ErrNotConnected at once while the link is down, and an error
// for a body of any other stream.
func (l *Link) Send(ctx context.Context, env *pb.Envelope) error {
	c := l.current()
	if c == nil {
		return ErrNotConnected
	}
	if s := protocol.StreamOf(env); !directStreams[s] || env.GetSeq() != 0 {
		return fmt.Errorf("send %s: only unsequenced desired-state acks and logs responses are sent directly", protocol.BodyName(env))
	}
	if err := l.publishOn(ctx, c, env); err != nil {
		l.failed(ctx, err)
		return err
	}
	l.published.Add(1)
	return nil
}
