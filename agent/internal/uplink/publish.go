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

// Publish sends env on its stream's up topic at QoS 1 and waits for the
// broker's PUBACK, at most until ctx is done or PublishTimeout passes. It
// returns ErrNotConnected at once while the link is down. A PUBACK means
// the broker has the message, not that the cloud applied it.
func (l *Link) Publish(ctx context.Context, env *pb.Envelope) error {
	c := l.current()
	if c == nil {
		return ErrNotConnected
	}
	if err := l.publishOn(ctx, c, env); err != nil {
		l.publishErrors.Add(1)
		l.noteError(err)
		return err
	}
	l.published.Add(1)
	return nil
}

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
