// Package loadgen is a lean MQTT 3.1.1 publisher for benchmarks. It opens
// many connections, each as its own node (with its own TLS client
// certificate), and publishes pre-encoded QoS 1 messages (optionally each
// with a numbered prefix, so that a receiver that drops duplicates sees
// every message as new) with a window of unacknowledged PUBLISHes per
// connection, counting PUBACKs. It does only that, with hand-rolled
// packets, so that the client spends as little CPU as possible and the
// figures measure the broker.
package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skyedge/skyedge/internal/mqttwire"
)

// NodeID is the node ID of connection i: bench-00000, bench-00001, ...
func NodeID(i int) string { return fmt.Sprintf("bench-%05d", i) }

// Config configures a Pool.
type Config struct {
	// Addr is the broker's host:port.
	Addr string
	// Conns is the number of connections, one per node.
	Conns int
	// Window is the number of unacknowledged PUBLISHes per connection
	// (1 to 65535).
	Window int
	// TLS returns the TLS configuration of node, with its own client
	// certificate; nil means plaintext.
	TLS func(node string) (*tls.Config, error)
	// Topic and Payload give each node's message; the payload is encoded
	// once and sent over and over.
	Topic   func(node string) string
	Payload func(node string) ([]byte, error)
	// Prefix, when set, makes every message distinct: the n-th message a
	// node sends (n counts from 1 over the pool's life, across Publish
	// calls) is Prefix(node, n, dst) followed by the payload, where dst is
	// a buffer to append to. Protobuf fields may come in any order, so a
	// prefix can number protobuf messages without encoding each one.
	Prefix func(node string, n uint64, dst []byte) []byte
	// DialTimeout bounds connecting, the TLS handshake and the CONNACK
	// (10 s when 0).
	DialTimeout time.Duration
}

// Result is the outcome of Pool.Publish.
type Result struct {
	// Acked is the number of PUBACKs received.
	Acked   int
	Elapsed time.Duration
}

// Rate is the acknowledged messages per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// Pool is a set of connected nodes.
type Pool struct {
	cfg   Config
	conns []*conn
}

type conn struct {
	node  string
	c     net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	pkt   []byte
	idOff int

	// With Config.Prefix: the parts of every PUBLISH and the number of
	// messages sent.
	prefix  func(node string, n uint64, dst []byte) []byte
	topic   []byte // length-prefixed topic name
	payload []byte
	head    []byte // scratch: fixed header, topic, packet ID
	pre     []byte // scratch: the prefix
	sent    uint64
}

// Dial connects every node (CONNECT, CONNACK), a few at a time.
func Dial(ctx context.Context, cfg Config) (*Pool, error) {
	switch {
	case cfg.Conns < 1:
		return nil, fmt.Errorf("loadgen: %d connections, want at least 1", cfg.Conns)
	case cfg.Window < 1 || cfg.Window > 65535:
		return nil, fmt.Errorf("loadgen: window %d, want 1 to 65535 (packet IDs are 16-bit)", cfg.Window)
	case cfg.Topic == nil || cfg.Payload == nil:
		return nil, errors.New("loadgen: Topic and Payload are required")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	p := &Pool{cfg: cfg, conns: make([]*conn, cfg.Conns)}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range p.conns {
		g.Go(func() error {
			c, err := p.dial(ctx, NodeID(i))
			p.conns[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Pool) dial(ctx context.Context, node string) (*conn, error) {
	payload, err := p.cfg.Payload(node)
	if err != nil {
		return nil, fmt.Errorf("loadgen: payload of %s: %w", node, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %s: %w", node, err)
	}
	if p.cfg.TLS != nil {
		tc, err := p.cfg.TLS(node)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("loadgen: TLS config of %s: %w", node, err)
		}
		t := tls.Client(nc, tc)
		if err := t.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("loadgen: %s: TLS handshake: %w", node, err)
		}
		nc = t
	}
	c := &conn{node: node, c: nc, r: bufio.NewReaderSize(nc, 16<<10), w: bufio.NewWriterSize(nc, 32<<10)}
	c.pkt, c.idOff = mqttwire.PublishPacket(p.cfg.Topic(node), payload)
	if p.cfg.Prefix != nil {
		c.prefix, c.topic, c.payload = p.cfg.Prefix, mqttwire.AppendString(nil, p.cfg.Topic(node)), payload
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if _, err := nc.Write(mqttwire.ConnectPacket(node, 60)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("loadgen: %s: CONNECT: %w", node, err)
	}
	h, body, err := mqttwire.ReadPacket(c.r, nil, 0)
	typ := h >> 4
	if err == nil && typ != mqttwire.Connack {
		err = fmt.Errorf("got packet type %d, want CONNACK", typ)
	}
	if err == nil {
		err = mqttwire.ConnackError(body)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("loadgen: %s: %w", node, err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// Publish sends total messages spread evenly over the connections and
// returns once every one is acknowledged, or ctx ends (a broker that
// withholds PUBACKs makes Publish wait for ctx).
func (p *Pool) Publish(ctx context.Context, total int) (Result, error) {
	var mu sync.Mutex
	acked := 0
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range p.conns {
		n := total / len(p.conns)
		if i < total%len(p.conns) {
			n++
		}
		if n == 0 {
			continue
		}
		g.Go(func() error {
			got, err := c.publish(gctx, n, p.cfg.Window)
			mu.Lock()
			acked += got
			mu.Unlock()
			return err
		})
	}
	err := g.Wait()
	return Result{Acked: acked, Elapsed: time.Since(start)}, err
}

// publish sends n messages with at most window unacknowledged.
func (c *conn) publish(ctx context.Context, n, window int) (int, error) {
	slots := make(chan struct{}, window)
	var acked int
	readDone := make(chan error, 1)
	go func() {
		var buf []byte
		for acked < n {
			h, body, err := mqttwire.ReadPacket(c.r, buf, 0)
			typ := h >> 4
			if err != nil {
				readDone <- fmt.Errorf("%s: read: %w", c.node, err)
				return
			}
			buf = body[:0]
			switch typ {
			case mqttwire.Puback:
				<-slots
				acked++
			case mqttwire.Pingresp:
			default:
				readDone <- fmt.Errorf("%s: unexpected packet type %d", c.node, typ)
				return
			}
		}
		readDone <- nil
	}()
	// Unblock the reader when ctx ends.
	stop := context.AfterFunc(ctx, func() { c.c.SetReadDeadline(time.Now()) })
	defer stop()

	id := 0
	for i := 0; i < n; i++ {
		select {
		case slots <- struct{}{}:
		default:
			// The window is full: send what is buffered, then wait.
			if err := c.w.Flush(); err != nil {
				return c.wait(readDone, &acked, fmt.Errorf("%s: write: %w", c.node, err))
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return c.wait(readDone, &acked, ctx.Err())
			}
		}
		id = id%65535 + 1
		if err := c.writePublish(uint16(id)); err != nil {
			return c.wait(readDone, &acked, fmt.Errorf("%s: write: %w", c.node, err))
		}
	}
	if err := c.w.Flush(); err != nil {
		return c.wait(readDone, &acked, fmt.Errorf("%s: write: %w", c.node, err))
	}
	return c.wait(readDone, &acked, nil)
}

// writePublish buffers the next PUBLISH with packet ID id.
func (c *conn) writePublish(id uint16) error {
	if c.prefix == nil {
		c.pkt[c.idOff], c.pkt[c.idOff+1] = byte(id>>8), byte(id)
		_, err := c.w.Write(c.pkt)
		return err
	}
	c.sent++
	c.pre = c.prefix(c.node, c.sent, c.pre[:0])
	c.head = mqttwire.AppendLength(append(c.head[:0], mqttwire.Publish<<4|0x02), len(c.topic)+2+len(c.pre)+len(c.payload))
	c.head = append(append(c.head, c.topic...), byte(id>>8), byte(id))
	for _, b := range [][]byte{c.head, c.pre, c.payload} {
		if _, err := c.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// wait waits for the reader to finish and returns the acknowledged count
// with the first error.
func (c *conn) wait(readDone <-chan error, acked *int, err error) (int, error) {
	if err != nil {
		c.c.SetReadDeadline(time.Now())
	}
	rerr := <-readDone
	if err == nil {
		err = rerr
	}
	c.c.SetReadDeadline(time.Time{})
	return *acked, err
}

// Close sends DISCONNECT on every connection and closes it.
func (p *Pool) Close() error {
	var errs []error
	for _, c := range p.conns {
		if c == nil {
			continue
		}
		c.c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.c.Write(mqttwire.DisconnectPacket); err != nil {
			errs = append(errs, err)
		}
		if err := c.c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
