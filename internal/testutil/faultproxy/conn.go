package faultproxy

import (
	"net"
	"sync"
	"time"
)

// conn is one proxied client connection.
type conn struct {
	client net.Conn
	holed  bool // accepted during a blackhole: never connected upstream

	mu       sync.Mutex // guards upstream and closed
	upstream net.Conn
	closed   bool
	done     chan struct{} // closed by close
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	close(c.done)
	c.client.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
}

// setUpstream attaches the dialled target, or reports false when the
// connection was closed meanwhile.
func (c *conn) setUpstream(u net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.upstream = u
	return true
}

// refuse closes a connection with a reset, as a dead link's far end would.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) accept(nc net.Conn) {
	p.mu.Lock()
	if p.closed || p.mode == modeCut {
		p.mu.Unlock()
		p.stats.refused.Add(1)
		refuse(nc)
		return
	}
	c := &conn{client: nc, holed: p.mode == modeBlackhole, done: make(chan struct{})}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	p.stats.accepted.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.forget(c)
		if c.holed {
			p.sink(c)
			return
		}
		p.connect(c)
	}()
}

func (p *Proxy) forget(c *conn) {
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// sink reads and discards a blackholed connection's bytes until it closes.
func (p *Proxy) sink(c *conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		p.stats.dropped.Add(uint64(n))
		if err != nil {
			return
		}
	}
}

// connect dials the target and pumps both directions until either side
// closes.
func (p *Proxy) connect(c *conn) {
	u, err := p.dialer.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !c.setUpstream(u) {
		u.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(c, c.client, u) }()
	go func() { defer wg.Done(); p.pump(c, u, c.client) }()
	wg.Wait()
}

// chunk is data read at a time, waiting for its delivery.
type chunk struct {
	data []byte
	at   time.Time
}

// pump copies src to dst through a queue, so latency delays each chunk
// without slowing the reads behind it. Either side failing closes both.
func (p *Proxy) pump(c *conn, src, dst net.Conn) {
	q := make(chan chunk, 64)
	defer func() {
		c.close()
		for range q { // wait for the reader, which the close unblocks
		}
	}()
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				if p.current() == modeBlackhole {
					p.stats.dropped.Add(uint64(n))
				} else {
					select {
					case q <- chunk{buf[:n], time.Now()}:
					case <-c.done:
						return
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	wait := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		timer.Reset(d)
		select {
		case <-timer.C:
			return true
		case <-c.done:
			return false
		}
	}
	// The link delivers a chunk after its latency and after the chunks
	// before it have gone through at the capped rate.
	var free time.Time
	for ch := range q {
		latency, rate := p.shape()
		deliver := ch.at.Add(latency)
		if rate > 0 {
			deliver = later(deliver, free).Add(time.Duration(len(ch.data)) * time.Second / time.Duration(rate))
			free = deliver
		}
		if !wait(time.Until(deliver)) {
			return
		}
		if p.current() == modeBlackhole {
			p.stats.dropped.Add(uint64(len(ch.data)))
			continue
		}
		if _, err := dst.Write(ch.data); err != nil {
			return
		}
		p.stats.forwarded.Add(uint64(len(ch.data)))
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (p *Proxy) current() mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *Proxy) shape() (time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency, p.rate
}
