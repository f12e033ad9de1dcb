package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/internal/mqttwire"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// floodConfig configures a lean publisher: many nodes that speak what an
// agent puts on the wire in steady state, without an agent's outbox and
// MQTT client behind it, so that thousands fit beside the bridge on one
// machine. Each node connects with its own certificate, subscribes to its
// down topics, says hello (with an outbox ID), then publishes sequenced
// resource reports at QoS 1, each stamped with its own sent_at, and
// acknowledges what the bridge sends it (welcome, acks).
//
// With an Interval, each node publishes one report per interval (the
// "lean" path); without, as fast as its window of unacknowledged
// PUBLISHes allows (the "pipelined" path, as internal/loadgen does).
// Connections are spread over 127.0.0.x source addresses.
type floodConfig struct {
	Addr     string
	Nodes    []string
	TLS      []*tls.Config
	Window   int
	Interval time.Duration
	// First is the index of the first node in the whole fleet, which
	// picks the source addresses and the phase of its reports; Total is
	// the size of the fleet.
	First, Total int
}

// flood is a set of connected lean publishers.
type flood struct {
	cfg   floodConfig
	conns []*floodConn
	acked atomic.Uint64 // PUBACKs of reports
}

type floodConn struct {
	node  string
	index int // in the whole fleet
	nc    net.Conn
	r     *bufio.Reader
	topic string
	env   *pb.Envelope
	src   *simSource

	mu sync.Mutex // guards w and out: the writer and the reader's PUBACKs
	w  *bufio.Writer
}

// sourceAddr is the local address of connection i: 127.0.0.2 to
// 127.0.0.251 in turn, so that the ephemeral ports of one source address
// (about 28,000) never limit the connection count.
func sourceAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%250))}
}

// dialFlood connects every node (TLS, CONNECT, SUBSCRIBE, hello), a few
// at a time.
func dialFlood(ctx context.Context, cfg floodConfig) (*flood, error) {
	if cfg.Window < 1 || cfg.Window > 65535 {
		return nil, fmt.Errorf("bench flood: window %d, want 1 to 65535", cfg.Window)
	}
	cfg.Total = max(cfg.Total, cfg.First+len(cfg.Nodes))
	f := &flood{cfg: cfg, conns: make([]*floodConn, len(cfg.Nodes))}
	var prod production
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, node := range cfg.Nodes {
		g.Go(func() error {
			c := &floodConn{node: node, index: cfg.First + i, src: newSimSource(node, &prod)}
			err := c.dial(gctx, cfg.Addr, cfg.TLS[i])
			f.conns[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (c *floodConn) dial(ctx context.Context, addr string, tc *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := net.Dialer{LocalAddr: sourceAddr(c.index)}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("bench flood %s: %w", c.node, err)
	}
	cfg := tc.Clone()
	cfg.ServerName = serverName
	t := tls.Client(nc, cfg)
	if err := t.HandshakeContext(ctx); err != nil {
		nc.Close()
		return fmt.Errorf("bench flood %s: TLS handshake: %w", c.node, err)
	}
	c.nc, c.r, c.w = t, bufio.NewReaderSize(t, 1024), bufio.NewWriterSize(t, 4096)
	c.topic = protocol.UpTopic(c.node, protocol.StreamReport)
	if err := c.handshake(ctx); err != nil {
		t.Close()
		return fmt.Errorf("bench flood %s: %w", c.node, err)
	}
	return nil
}

// handshake sends CONNECT, SUBSCRIBE and a hello, as an agent does, and
// waits for their acknowledgements, acknowledging the welcome.
func (c *floodConn) handshake(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	hello, _ := c.src.Facts(ctx)
	first, _ := c.src.Sample(ctx, time.Now())
	protocol.SetHelloStatics(hello, first)
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	hello.OutboxId = hex.EncodeToString(id[:])
	now := time.Now().UnixMilli()
	stamp := func(env *pb.Envelope) *pb.Envelope {
		env.NodeId, env.BootEpoch, env.Capability, env.SentAtMs = c.node, 1, protocol.CapabilityVersion, now
		return env
	}
	payload, err := protocol.Marshal(stamp(&pb.Envelope{Body: &pb.Envelope_Hello{Hello: hello}}))
	if err != nil {
		return err
	}
	c.env = stamp(&pb.Envelope{Body: &pb.Envelope_Report{Report: protocol.CompactReport(first, hello)}})
	pkt := mqttwire.ConnectPacket(c.node, 60)
	pkt = append(pkt, mqttwire.SubscribePacket(1, protocol.DownFilter(c.node))...)
	pkt = mqttwire.AppendPublish(pkt, protocol.UpTopic(c.node, protocol.StreamHello), 2, payload)
	if _, err := c.nc.Write(pkt); err != nil {
		return fmt.Errorf("CONNECT: %w", err)
	}
	var connack, suback, helloAcked bool
	for !connack || !suback || !helloAcked {
		h, body, err := mqttwire.ReadPacket(c.r, nil, maxRemaining)
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		switch h >> 4 {
		case mqttwire.Connack:
			if err := mqttwire.ConnackError(body); err != nil {
				return err
			}
			connack = true
		case mqttwire.Suback:
			if len(body) != 3 || body[2] > 1 {
				return fmt.Errorf("subscription refused (SUBACK % x)", body)
			}
			suback = true
		case mqttwire.Puback:
			helloAcked = true
		case mqttwire.Publish:
			if err := c.ackPublish(h, body); err != nil {
				return err
			}
		default:
			return fmt.Errorf("handshake: unexpected packet type %d", h>>4)
		}
	}
	return nil
}

// ackPublish acknowledges a PUBLISH from the bridge.
func (c *floodConn) ackPublish(h byte, body []byte) error {
	id, ack, err := mqttwire.PublishID(h, body)
	if err != nil || !ack {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var b [4]byte
	if _, err := c.w.Write(mqttwire.AppendPuback(b[:0], id)); err != nil {
		return err
	}
	return c.w.Flush()
}

// Run publishes on every connection until ctx is done, then waits (a few
// seconds at most) for the PUBACKs still due and returns.
func (f *flood) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(f.conns))
	for i, c := range f.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.run(ctx, f.cfg, &f.acked)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Acked is the number of PUBACKs of reports received so far.
func (f *flood) Acked() uint64 { return f.acked.Load() }

// run publishes reports: one per interval, or with at most window
// unacknowledged.
func (c *floodConn) run(ctx context.Context, cfg floodConfig, acked *atomic.Uint64) error {
	slots := make(chan struct{}, cfg.Window)
	readErr := make(chan error, 1)
	go func() {
		var buf []byte
		for {
			h, body, err := mqttwire.ReadPacket(c.r, buf, maxRemaining)
			if err != nil {
				readErr <- err
				return
			}
			buf = body[:0]
			switch h >> 4 {
			case mqttwire.Puback:
				acked.Add(1)
				select {
				case <-slots:
				default:
				}
			case mqttwire.Publish:
				if err := c.ackPublish(h, body); err != nil {
					readErr <- err
					return
				}
			}
		}
	}()
	var (
		err        error
		readerDone bool
	)
	if cfg.Interval > 0 {
		readerDone, err = c.paced(ctx, cfg, readErr)
	} else {
		readerDone, err = c.pipelined(ctx, slots, readErr)
	}
	// Wait a little for the acknowledgements still due, then stop the
	// reader.
	deadline := time.Now().Add(5 * time.Second)
	for len(slots) > 0 && err == nil && !readerDone && time.Now().Before(deadline) {
		select {
		case err = <-readErr:
			readerDone = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !readerDone {
		c.nc.SetReadDeadline(time.Now())
		if rerr := <-readErr; err == nil && !isTimeout(rerr) {
			err = rerr
		}
		c.nc.SetReadDeadline(time.Time{})
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("bench flood %s: %w", c.node, err)
	}
	return nil
}

// pipelined keeps the window full until ctx is done. It returns whether
// the reader ended, and the first error.
func (c *floodConn) pipelined(ctx context.Context, slots chan struct{}, readErr <-chan error) (bool, error) {
	var (
		pkt, payload []byte
		id           uint16
	)
	for {
		select {
		case slots <- struct{}{}:
		default:
			// The window is full: send what is buffered, then wait.
			if err := c.flush(); err != nil {
				return false, err
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return false, nil
			case err := <-readErr:
				return true, err
			}
		}
		if ctx.Err() != nil {
			<-slots
			return false, c.flush()
		}
		var err error
		id = id%65535 + 1
		if pkt, payload, err = c.report(pkt, payload, id); err != nil {
			return false, err
		}
		c.mu.Lock()
		_, err = c.w.Write(pkt)
		c.mu.Unlock()
		if err != nil {
			return false, err
		}
	}
}

// paced sends one report per interval, starting at the node's phase in
// the interval so that the fleet's reports are spread evenly.
func (c *floodConn) paced(ctx context.Context, cfg floodConfig, readErr <-chan error) (bool, error) {
	phase := time.Duration(int64(cfg.Interval) * int64(c.index) / int64(cfg.Total))
	t := time.NewTimer(phase)
	defer t.Stop()
	var (
		pkt, payload []byte
		id           uint16
	)
	next := time.Now().Add(phase)
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case err := <-readErr:
			return true, err
		case <-t.C:
		}
		var err error
		id = id%65535 + 1
		if pkt, payload, err = c.report(pkt, payload, id); err != nil {
			return false, err
		}
		c.mu.Lock()
		_, err = c.w.Write(pkt)
		if err == nil {
			err = c.w.Flush()
		}
		c.mu.Unlock()
		if err != nil {
			return false, err
		}
		next = next.Add(cfg.Interval)
		t.Reset(time.Until(next))
	}
}

// report builds the next report's PUBLISH: sequenced, stamped now.
func (c *floodConn) report(pkt, payload []byte, id uint16) ([]byte, []byte, error) {
	c.env.Seq++
	c.env.SentAtMs = time.Now().UnixMilli()
	payload, err := proto.MarshalOptions{}.MarshalAppend(payload[:0], c.env)
	if err != nil {
		return pkt, payload, err
	}
	return mqttwire.AppendPublish(pkt[:0], c.topic, id, payload), payload, nil
}

func (c *floodConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close disconnects every connection.
func (f *flood) Close() {
	for _, c := range f.conns {
		if c == nil || c.nc == nil {
			continue
		}
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.nc.Write(mqttwire.DisconnectPacket)
		c.nc.Close()
	}
}

// maxRemaining bounds the packets the publisher reads: it expects only
// CONNACK, SUBACK, PUBACK, PINGRESP and small PUBLISHes (acks, welcomes).
const maxRemaining = 1 << 16
