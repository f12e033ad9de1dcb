package uplink

import (
	"context"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/skyedge/skyedge/protocol"
)

// inbound is a message received from the broker, queued for dispatch.
type inbound struct {
	topic   string
	payload []byte
}

// onMessage is paho's message callback. It runs on a paho goroutine and
// must never block: it queues the message, or drops and counts it when
// the queue is full. Acks are cumulative, so a dropped ack is superseded
// by the next one.
func (l *Link) onMessage(_ paho.Client, m paho.Message) {
	select {
	case l.inbox <- inbound{topic: m.Topic(), payload: m.Payload()}:
	default:
		l.inboundDropped.Add(1)
	}
}

// dispatch decodes queued messages and hands them to OnMessage, until
// ctx is done.
func (l *Link) dispatch(ctx context.Context) {
	var dropsLogged uint64
	rejected := make(map[protocol.Reason]bool)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-l.inbox:
			if d := l.inboundDropped.Load(); d > dropsLogged {
				l.log.Warn("messages from the cloud dropped: queue full", "dropped", d)
				dropsLogged = d
			}
			l.handle(m, rejected)
		}
	}
}

func (l *Link) handle(m inbound, rejected map[protocol.Reason]bool) {
	t, env, err := protocol.DecodeFrom(m.topic, m.payload)
	if err == nil && (t.Node != l.cfg.NodeID || t.Dir != protocol.DirDown) {
		err = &protocol.Error{Reason: protocol.ReasonBadTopic, Err: errNotForUs(m.topic)}
	}
	if err != nil {
		l.inboundRejected.Add(1)
		if r := protocol.ReasonOf(err); !rejected[r] {
			rejected[r] = true
			l.log.Warn("message from the cloud rejected", "topic", m.topic, "reason", r, "error", err)
		}
		return
	}
	if w := env.GetWelcome(); w != nil && l.welcomed.CompareAndSwap(false, true) {
		l.log.Info("welcome", "server_capability", w.GetCapability(), "clock_skew", l.skew(w.GetServerTimeMs()),
			"watermark", w.GetWatermark(), "desired_generation", w.GetDesiredGeneration())
	}
	if l.cfg.OnMessage != nil {
		l.cfg.OnMessage(env)
	}
}

// skew estimates how far the cloud's clock is ahead of ours: the server
// time against the midpoint between our hello and the welcome's arrival.
func (l *Link) skew(serverMs int64) time.Duration {
	sent := l.helloAt.Load()
	if serverMs == 0 || sent == 0 {
		return 0
	}
	now := l.cfg.Clock.Now().UnixMilli()
	mid := sent + (now-sent)/2
	return time.Duration(serverMs-mid) * time.Millisecond
}

type errNotForUs string

func (e errNotForUs) Error() string {
	return "topic " + string(e) + " is not one of this node's down topics"
}
