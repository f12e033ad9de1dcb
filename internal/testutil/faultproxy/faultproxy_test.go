package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func start(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	p.Start()
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within d.
func roundTrip(c net.Conn, msg []byte, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func TestForwards(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	if err := roundTrip(c, []byte("hello"), time.Second); err != nil {
		t.Fatalf("round trip through the proxy: %v", err)
	}
	// The echo can arrive before the proxy has counted its last write.
	deadline := time.Now().Add(5 * time.Second)
	for s := p.Stats(); s.Forwarded < 10 && time.Now().Before(deadline); s = p.Stats() {
		time.Sleep(time.Millisecond)
	}
	if s := p.Stats(); s.Accepted != 1 || s.Forwarded != 10 {
		t.Errorf("Stats() = %+v, want 1 connection and 10 bytes forwarded", s)
	}
}

func TestCut(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	if err := roundTrip(c, []byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if err := roundTrip(c, []byte("y"), time.Second); err == nil || isTimeout(err) {
		t.Errorf("round trip on a cut connection = %v, want it closed", err)
	}
	// New connections are refused until Restore: the dial or the first
	// round trip fails, depending on when the reset arrives.
	if n, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		err = roundTrip(n, []byte("z"), time.Second)
		n.Close()
		if err == nil || isTimeout(err) {
			t.Errorf("round trip on a connection made while cut = %v, want it closed", err)
		}
	}
	if s := p.Stats(); s.Refused != 1 {
		t.Errorf("Stats().Refused = %d, want 1", s.Refused)
	}
	p.Restore()
	if err := roundTrip(dial(t, p), []byte("back"), time.Second); err != nil {
		t.Errorf("round trip after Restore: %v", err)
	}
}

func TestBlackhole(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	if err := roundTrip(c, []byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	// The connection stays open, writes succeed, nothing comes back.
	if err := roundTrip(c, []byte("lost"), 200*time.Millisecond); !isTimeout(err) {
		t.Errorf("round trip in a blackhole = %v, want a timeout", err)
	}
	n := dial(t, p)
	if err := roundTrip(n, []byte("lost too"), 200*time.Millisecond); !isTimeout(err) {
		t.Errorf("round trip on a connection made in a blackhole = %v, want a timeout", err)
	}
	if s := p.Stats(); s.Dropped < 12 {
		t.Errorf("Stats().Dropped = %d, want the 12 bytes written", s.Dropped)
	}
	p.Restore()
	// The old connection works again; what was lost stays lost.
	if err := roundTrip(c, []byte("again"), time.Second); err != nil {
		t.Errorf("round trip after Restore: %v", err)
	}
	// The one made in the blackhole never reached the target: closed.
	if err := roundTrip(n, []byte("?"), time.Second); err == nil || isTimeout(err) {
		t.Errorf("round trip on the blackholed-at-accept connection = %v, want it closed", err)
	}
}

func TestSlow(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	p.Slow(100*time.Millisecond, 0)
	begin := time.Now()
	if err := roundTrip(c, []byte("ping"), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(begin); rtt < 200*time.Millisecond {
		t.Errorf("round trip took %v, want at least 2 x 100 ms", rtt)
	}
	p.Slow(0, 20_000)
	begin = time.Now()
	if err := roundTrip(c, make([]byte, 4000), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	// 4,000 bytes each way at 20 kB/s: at least 200 ms each way, less the
	// last chunk's wait.
	if d := time.Since(begin); d < 180*time.Millisecond {
		t.Errorf("4,000 bytes each way at 20 kB/s took %v", d)
	}
	p.Restore()
	begin = time.Now()
	if err := roundTrip(c, []byte("fast"), time.Second); err != nil || time.Since(begin) > 100*time.Millisecond {
		t.Errorf("round trip after Restore = %v in %v, want fast", err, time.Since(begin))
	}
}

func TestFlap(t *testing.T) {
	p := start(t)
	p.Flap(150*time.Millisecond, 150*time.Millisecond)
	// Within a few periods a connection is cut and, later, accepted again.
	deadline := time.Now().Add(5 * time.Second)
	var cut, up bool
	for time.Now().Before(deadline) && !(cut && up) {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			// Refused or reset while the link is down: that is the cut.
			cut = true
			continue
		}
		if roundTrip(c, []byte("f"), 100*time.Millisecond) == nil {
			up = true
		} else {
			cut = true
		}
		c.Close()
	}
	if !cut || !up {
		t.Fatalf("flapping link: saw up %v, cut %v; want both", up, cut)
	}
	p.Restore()
	if err := roundTrip(dial(t, p), []byte("steady"), time.Second); err != nil {
		t.Errorf("round trip after Restore: %v", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	c := dial(t, p)
	if err := roundTrip(c, []byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run() did not return after cancel")
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("Conns() = %d after Run returned, want 0", n)
	}
	p.Close()
}
