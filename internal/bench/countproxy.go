package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// countProxy forwards TCP connections from a loopback port to a target
// and counts the bytes in each direction: what a node's link carries,
// TLS and MQTT framing included.
type countProxy struct {
	ln     net.Listener
	target string
	up     atomic.Uint64 // client to target
	down   atomic.Uint64 // target to client
}

func newCountProxy(target string) (*countProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench proxy: %w", err)
	}
	return &countProxy{ln: ln, target: target}, nil
}

// Addr is the address to dial instead of the target.
func (p *countProxy) Addr() string { return p.ln.Addr().String() }

// Bytes returns the bytes forwarded so far, up (to the target) and down.
func (p *countProxy) Bytes() (up, down uint64) { return p.up.Load(), p.down.Load() }

// Run forwards connections until ctx is done, then closes them all.
func (p *countProxy) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex // guards conns
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		p.ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	defer stop()
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bench proxy: accept: %w", err)
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !track(c) || !track(u) {
			c.Close()
			u.Close()
			continue
		}
		wg.Add(2)
		go p.pipe(&wg, u, c, &p.up)
		go p.pipe(&wg, c, u, &p.down)
	}
}

// pipe copies from src to dst, counting, and closes both at the end.
func (p *countProxy) pipe(wg *sync.WaitGroup, dst, src net.Conn, n *atomic.Uint64) {
	defer wg.Done()
	_, _ = io.Copy(countWriter{dst, n}, src) // ends when either side closes
	dst.Close()
	src.Close()
}

type countWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(uint64(n))
	return n, err
}
