// Package faultproxy is a TCP proxy for tests that sits between an agent
// and its broker and breaks the link on command: cut it (connections
// closed, new ones refused), blackhole it (connections stay open but every
// byte vanishes, so TCP notices nothing and only application keep-alives
// can), slow it (latency and a bandwidth cap, like a satellite link), or
// flap it up and down.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type mode int

const (
	modeUp mode = iota
	modeCut
	modeBlackhole
)

// Stats counts what the proxy did.
type Stats struct {
	Accepted  uint64 // connections accepted and forwarded (or blackholed)
	Refused   uint64 // connections closed at once because the link was cut
	Forwarded uint64 // bytes delivered, both directions
	Dropped   uint64 // bytes discarded by a blackhole, both directions
}

// Proxy forwards TCP connections from Addr to a target.
type Proxy struct {
	target string
	ln     net.Listener
	dialer net.Dialer

	mu      sync.Mutex // guards the fields below
	mode    mode
	latency time.Duration
	rate    int // bytes per second per direction; 0 is unlimited
	conns   map[*conn]struct{}
	flap    chan struct{} // closed to stop the flapper
	closed  bool
	started chan struct{} // closed when a Run started by Start returns

	wg      sync.WaitGroup // connection goroutines and the flapper
	closing chan struct{}  // closed by Close
	stats   struct{ accepted, refused, forwarded, dropped atomic.Uint64 }
}

// New listens on a free loopback port for connections to forward to
// target (host:port). Call Run or Start, and Close.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy listen: %w", err)
	}
	return &Proxy{
		target:  target,
		ln:      ln,
		dialer:  net.Dialer{Timeout: 5 * time.Second},
		conns:   map[*conn]struct{}{},
		closing: make(chan struct{}),
	}, nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Start runs the proxy in the background until Close.
func (p *Proxy) Start() {
	done := make(chan struct{})
	p.mu.Lock()
	p.started = done
	p.mu.Unlock()
	go func() {
		defer close(done)
		p.Run(context.Background())
	}()
}

// Run accepts and forwards connections until ctx is cancelled or Close is
// called, then closes every connection and returns. Cancellation is not
// an error.
func (p *Proxy) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.shutdown() })
	defer stop()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.closing:
				p.wg.Wait()
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.shutdown()
			p.wg.Wait()
			return fmt.Errorf("faultproxy accept: %w", err)
		}
		p.accept(c)
	}
}

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (p *Proxy) Close() error {
	p.shutdown()
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if started != nil {
		<-started
	}
	p.wg.Wait()
	return nil
}

func (p *Proxy) shutdown() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.closing)
	p.stopFlapLocked()
	conns := p.takeConnsLocked(func(*conn) bool { return true })
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.close()
	}
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted:  p.stats.accepted.Load(),
		Refused:   p.stats.refused.Load(),
		Forwarded: p.stats.forwarded.Load(),
		Dropped:   p.stats.dropped.Load(),
	}
}

// Conns is the number of open client connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.stopFlapLocked()
	conns := p.cutLocked()
	p.mu.Unlock()
	closeAll(conns)
}

// Blackhole keeps connections open but discards every byte in both
// directions; new connections are accepted and blackholed too.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopFlapLocked()
	p.mode = modeBlackhole
}

// Slow delays every chunk by latency in each direction and caps each
// direction at bytesPerSec (0: no cap).
func (p *Proxy) Slow(latency time.Duration, bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopFlapLocked()
	p.mode = modeUp
	p.latency, p.rate = latency, bytesPerSec
}

// Restore ends every fault: the link forwards at full speed. Connections
// accepted during a blackhole, which never reached the target, are closed.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.stopFlapLocked()
	conns := p.restoreLocked()
	p.mu.Unlock()
	closeAll(conns)
}

// Flap alternates the link between up for up and cut for down, starting
// up, until another fault, Restore or Close.
func (p *Proxy) Flap(up, down time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopFlapLocked()
	if p.closed {
		return
	}
	stop := make(chan struct{})
	p.flap = stop
	p.wg.Add(1)
	go p.flapper(stop, up, down)
}

func (p *Proxy) flapper(stop chan struct{}, up, down time.Duration) {
	defer p.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		for _, phase := range []struct {
			d   time.Duration
			cut bool
		}{{up, false}, {down, true}} {
			p.mu.Lock()
			if p.flap != stop {
				p.mu.Unlock()
				return
			}
			var conns []*conn
			if phase.cut {
				conns = p.cutLocked()
			} else {
				conns = p.restoreLocked()
			}
			p.mu.Unlock()
			closeAll(conns)
			t.Reset(phase.d)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}
}

func (p *Proxy) stopFlapLocked() {
	if p.flap != nil {
		close(p.flap)
		p.flap = nil
	}
}

func (p *Proxy) cutLocked() []*conn {
	p.mode = modeCut
	return p.takeConnsLocked(func(*conn) bool { return true })
}

func (p *Proxy) restoreLocked() []*conn {
	p.mode, p.latency, p.rate = modeUp, 0, 0
	return p.takeConnsLocked(func(c *conn) bool { return c.holed })
}

// takeConnsLocked removes and returns the connections matching keep.
func (p *Proxy) takeConnsLocked(match func(*conn) bool) []*conn {
	var out []*conn
	for c := range p.conns {
		if match(c) {
			out = append(out, c)
			delete(p.conns, c)
		}
	}
	return out
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		c.close()
	}
}
