package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// connListener accepts connections and, for TLS, completes the handshake
// before handing them to the broker. It gives every connection a deadline
// for its handshake and CONNECT packet (the broker only sets deadlines
// after CONNECT, so a silent client would otherwise hold a goroutine
// forever), and it keeps failed handshakes away from the broker, which
// would log each one.
type connListener struct {
	inner   net.Listener
	tls     *tls.Config // nil: plaintext
	timeout time.Duration
	failed  func(remote net.Addr, err error)
	hsDone  func(resumed bool) // a handshake completed, resuming a session or not

	conns chan net.Conn
	done  chan struct{}
	slots chan struct{} // bounds concurrent handshakes
	once  sync.Once
	wg    sync.WaitGroup
}

// maxHandshakes bounds the handshakes in progress; beyond it, accepting
// waits, and new connections queue in the kernel's backlog.
const maxHandshakes = 256

func newConnListener(inner net.Listener, cfg *tls.Config, timeout time.Duration, failed func(net.Addr, error), done func(resumed bool)) *connListener {
	l := &connListener{
		inner:   inner,
		tls:     cfg,
		timeout: timeout,
		failed:  failed,
		hsDone:  done,
		conns:   make(chan net.Conn),
		done:    make(chan struct{}),
		slots:   make(chan struct{}, maxHandshakes),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *connListener) acceptLoop() {
	defer l.wg.Done()
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return
		}
		c, err := l.inner.Accept()
		if err != nil {
			<-l.slots
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

func (l *connListener) handshake(c net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.slots }()
	_ = c.SetDeadline(time.Now().Add(l.timeout))
	if l.tls != nil {
		tc := tls.Server(c, l.tls)
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			_ = c.Close()
			if l.failed != nil {
				l.failed(c.RemoteAddr(), err)
			}
			return
		}
		if l.hsDone != nil {
			l.hsDone(tc.ConnectionState().DidResume)
		}
		c = tc
	}
	// The deadline stays until the broker has read CONNECT and set its
	// keepalive deadline.
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next connection that completed its handshake.
func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and waits for handshakes in progress to end.
func (l *connListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	l.wg.Wait()
	return err
}

// Addr is the bound address.
func (l *connListener) Addr() net.Addr { return l.inner.Addr() }
