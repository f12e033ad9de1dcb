package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// maxDistinctErrors bounds the distinct connect errors remembered during
// one outage.
const maxDistinctErrors = 16

// loop connects, waits for the connection to end, and reconnects after a
// backoff, until ctx is done.
func (l *Link) loop(ctx context.Context) {
	bo := backoff.New(l.cfg.Reconnect)
	offlineSince := l.cfg.Clock.Now()
	outage := outage{seen: make(map[string]bool)}
	for {
		s, err := l.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.connectFailures.Add(1)
			l.noteError(err)
			delay := bo.Next()
			if outage.add(err) {
				l.log.Warn("connect failed", "error", err, "attempt", outage.attempts, "retry_in", delay.Round(time.Millisecond))
			}
			if !l.sleep(ctx, delay) {
				return
			}
			continue
		}
		connectedAt := l.cfg.Clock.Now()
		l.log.Info("connected", "attempts", outage.attempts+1,
			"offline", connectedAt.Sub(offlineSince).Round(time.Millisecond), "repeated_errors", outage.repeats)
		outage = outage.reset()
		if l.cfg.OnConnected != nil {
			l.cfg.OnConnected()
		}

		select {
		case <-ctx.Done():
			l.shutdown(s)
			return
		case err := <-s.lost:
			l.setClient(nil)
			if l.cfg.OnDisconnected != nil {
				l.cfg.OnDisconnected()
			}
			l.disconnects.Add(1)
			l.noteError(err)
			offlineSince = l.cfg.Clock.Now()
			up := offlineSince.Sub(connectedAt)
			bo.Connected(up)
			delay := bo.Next()
			l.log.Warn("connection lost", "error", err, "connected_for", up.Round(time.Millisecond), "retry_in", delay.Round(time.Millisecond))
			if !l.sleep(ctx, delay) {
				return
			}
		}
	}
}

// outage tallies the connect errors between two connections, so each
// distinct error is logged once and the repeats are counted.
type outage struct {
	seen     map[string]bool
	attempts int // failed attempts
	repeats  int // failures with an error already logged
}

// add records err and reports whether it is new in this outage.
func (o *outage) add(err error) bool {
	o.attempts++
	k := err.Error()
	if o.seen[k] {
		o.repeats++
		return false
	}
	if len(o.seen) < maxDistinctErrors {
		o.seen[k] = true
	}
	return true
}

func (o outage) reset() outage { return outage{seen: make(map[string]bool)} }

func (l *Link) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-l.cfg.Clock.After(d):
		return true
	}
}

// session is one MQTT connection.
type session struct {
	client paho.Client
	lost   chan error // receives the error that ended the connection

	mu        sync.Mutex // guards stopClose
	stopClose func() bool
}

// connect makes one connection attempt: dial, TLS, CONNACK, subscribe,
// hello. On success the link is marked connected.
func (l *Link) connect(ctx context.Context) (*session, error) {
	// The will and the hello of one connection carry the same time, so the
	// cloud can tell a late will of an older connection (published by the
	// broker after this one said hello) from this connection's own.
	connectedAt := l.cfg.Clock.Now().UnixMilli()
	will, err := protocol.Marshal(l.cfg.Stamper.Stamp(&pb.Envelope{
		SentAtMs: connectedAt,
		Body:     &pb.Envelope_Goodbye{Goodbye: &pb.Goodbye{Reason: pb.Goodbye_REASON_LOST}},
	}))
	if err != nil {
		return nil, fmt.Errorf("connect: last will: %w", err)
	}
	s := &session{lost: make(chan error, 1)}
	scheme := "tcp://"
	if l.broker.TLS {
		scheme = "tls://"
	}
	opts := paho.NewClientOptions().
		AddBroker(scheme+l.broker.Addr).
		SetClientID(l.cfg.NodeID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(l.cfg.KeepAlive).
		SetConnectTimeout(l.cfg.ConnectTimeout).
		SetBinaryWill(protocol.UpTopic(l.cfg.NodeID, protocol.StreamBye), will, 1, false).
		SetDefaultPublishHandler(l.onMessage).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case s.lost <- err:
			default:
			}
		}).
		SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			return l.dial(ctx, s)
		})
	s.client = paho.NewClient(opts)

	tok := s.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// Cancelling ctx aborts the dial, or closes the connection during
		// the MQTT handshake; wait for paho to notice so that none of its
		// goroutines outlives Run.
		<-tok.Done()
	}
	s.release()
	if ctx.Err() != nil {
		if tok.Error() == nil {
			s.client.Disconnect(0)
		}
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := l.greet(ctx, s.client, connectedAt); err != nil {
		s.client.Disconnect(0)
		return nil, err
	}
	l.connects.Add(1) // before Connected() turns true
	l.setClient(s.client)
	return s, nil
}

// dial opens the network connection for paho, bounded by ctx and the
// connect timeout. Until the session is released, cancelling ctx closes
// the connection, which aborts paho's CONNECT handshake.
func (l *Link) dial(ctx context.Context, s *session) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, l.cfg.ConnectTimeout)
	defer cancel()
	conn, err := l.cfg.Dial(dctx, "tcp", l.broker.Addr)
	if err != nil {
		return nil, err // a net.OpError names the operation and the address
	}
	if l.tls != nil {
		saved := l.session()
		tc := tls.Client(conn, l.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			l.keepSession(saved, err)
			return nil, fmt.Errorf("tls handshake with %s: %w", l.broker.Addr, err)
		}
		conn = tc
	}
	s.mu.Lock()
	s.stopClose = context.AfterFunc(ctx, func() { conn.Close() })
	s.mu.Unlock()
	return conn, nil
}

// session returns the TLS session the next handshake will try to resume,
// if any. The cache's key is the server name, which New always sets.
func (l *Link) session() *tls.ClientSessionState {
	if l.tls.ClientSessionCache == nil {
		return nil
	}
	cs, _ := l.tls.ClientSessionCache.Get(l.tls.ServerName)
	return cs
}

// keepSession puts saved back in the session cache after a handshake that
// failed because of the link, not the server. crypto/tls drops the
// session of any failed resuming handshake (a server aborts on a corrupt
// ticket), but a connection cut or reset mid-handshake, which is what an
// outage looks like behind a proxy or load balancer, says nothing about
// the ticket; losing it would make every node of a returning fleet pay a
// full handshake. An alert from the server keeps the drop.
func (l *Link) keepSession(saved *tls.ClientSessionState, err error) {
	var op *net.OpError
	if saved == nil || errors.As(err, &op) && op.Op == "remote error" {
		return
	}
	l.tls.ClientSessionCache.Put(l.tls.ServerName, saved)
}

// release detaches the connection from the connect context.
func (s *session) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopClose != nil {
		s.stopClose()
	}
}

// greet subscribes to the node's down topics and sends the hello, stamped
// with the connection's time (see connect).
func (l *Link) greet(ctx context.Context, c paho.Client, connectedAt int64) error {
	filter := protocol.DownFilter(l.cfg.NodeID)
	tok := c.Subscribe(filter, 1, l.onMessage)
	if err := l.wait(ctx, tok, l.cfg.ConnectTimeout); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		if code, ok := st.Result()[filter]; ok && code > protocol.MaxQoS {
			return fmt.Errorf("subscribe %s: refused by the broker (code %#x)", filter, code)
		}
	}
	hello := &pb.Hello{}
	if l.cfg.Hello != nil {
		h, err := l.cfg.Hello(ctx)
		if err != nil {
			return fmt.Errorf("hello: %w", err)
		}
		hello = h
	}
	env := l.cfg.Stamper.Stamp(&pb.Envelope{SentAtMs: connectedAt, Body: &pb.Envelope_Hello{Hello: hello}})
	l.welcomed.Store(false)
	l.helloAt.Store(env.GetSentAtMs())
	if err := l.publishOn(ctx, c, env); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	return nil
}

// shutdown says goodbye and disconnects, bounded by goodbyeTimeout.
func (l *Link) shutdown(s *session) {
	l.setClient(nil)
	if l.cfg.OnDisconnected != nil {
		l.cfg.OnDisconnected()
	}
	ctx, cancel := context.WithTimeout(context.Background(), goodbyeTimeout)
	defer cancel()
	bye := l.cfg.Stamper.Stamp(&pb.Envelope{Body: &pb.Envelope_Goodbye{Goodbye: &pb.Goodbye{Reason: pb.Goodbye_REASON_SHUTDOWN}}})
	if err := l.publishOn(ctx, s.client, bye); err != nil {
		l.log.Warn("goodbye not delivered; the broker will publish the last will", "error", err)
	}
	s.client.Disconnect(250)
	l.log.Info("disconnected", "reason", "shutdown")
}

// Rehello says hello again on the current connection, stamped with the
// connection's time like the first one, for a cloud that missed the first
// (a bridge behind an external broker that reconnected after the node).
func (l *Link) Rehello(ctx context.Context) error {
	c := l.current()
	if c == nil {
		return ErrNotConnected
	}
	hello := &pb.Hello{}
	if l.cfg.Hello != nil {
		h, err := l.cfg.Hello(ctx)
		if err != nil {
			return fmt.Errorf("hello: %w", err)
		}
		hello = h
	}
	env := l.cfg.Stamper.Stamp(&pb.Envelope{SentAtMs: l.helloAt.Load(), Body: &pb.Envelope_Hello{Hello: hello}})
	if err := l.publishOn(ctx, c, env); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	return nil
}
