package endpoint

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/skyedge/skyedge/internal/pki"
)

func serverTLS(t *testing.T) (*tls.Config, *pki.CA) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.InitCA(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueFiles(dir, pki.Options{Name: "bridge", Server: true, Hosts: []string{"127.0.0.1"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ServerTLS(cert, key, dir+"/"+pki.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, ca
}

func TestConnListenerHandshake(t *testing.T) {
	cfg, ca := serverTLS(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	failures := make(chan error, 4)
	l := newConnListener(inner, cfg, 200*time.Millisecond, func(_ net.Addr, err error) { failures <- err }, nil)
	defer l.Close()

	// A silent client is dropped when the handshake times out.
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	select {
	case err := <-failures:
		if err == nil {
			t.Errorf("silent client: failure reported with a nil error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("silent client not dropped within 5s of a 200ms handshake timeout")
	}

	// A client with a certificate of the CA is handed over, handshake done.
	iss, err := ca.Issue(pki.Options{Name: "n1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := iss.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	accepted := make(chan struct{})
	go func() {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.CertPool(), ServerName: "127.0.0.1"})
		if err == nil {
			defer c.Close()
			<-accepted // keep the connection open until the test is done with it
		}
		errc <- err
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept() = %v", err)
	}
	defer c.Close()
	tc, ok := c.(*tls.Conn)
	if !ok || !tc.ConnectionState().HandshakeComplete {
		t.Fatalf("Accept() = %T, want a *tls.Conn with its handshake complete", c)
	}
	if got := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "n1" {
		t.Errorf("peer = %q, want n1", got)
	}
	close(accepted)
	if err := <-errc; err != nil {
		t.Errorf("client: %v", err)
	}

	if err := l.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept() after Close = %v, want net.ErrClosed", err)
	}
}
