package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestInitRefusesExistingCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := InitCA(dir, now); err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(dir, now); !errors.Is(err, ErrExists) {
		t.Fatalf("InitCA twice = %v, want ErrExists", err)
	}
}

func TestLoadCAMissing(t *testing.T) {
	if _, err := LoadCA(t.TempDir()); err == nil || !strings.Contains(err.Error(), "certs init") {
		t.Fatalf("LoadCA(empty) = %v, want a hint to run certs init", err)
	}
}

func TestIssue(t *testing.T) {
	ca, err := InitCA(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		err  string
	}{
		{"node", Options{Name: "truck-042"}, ""},
		{"server", Options{Name: "bridge", Server: true, Hosts: []string{"localhost", "127.0.0.1", "bridge.example.com"}}, ""},
		{"bad name", Options{Name: "Truck 42"}, "invalid node ID"},
		{"server without hosts", Options{Name: "bridge", Server: true}, "no hosts"},
		{"hosts without server", Options{Name: "n1", Hosts: []string{"localhost"}}, "--server"},
		{"bad host", Options{Name: "bridge", Server: true, Hosts: []string{"bad_host!"}}, "not allowed"},
		{"empty label", Options{Name: "bridge", Server: true, Hosts: []string{"a..b"}}, "DNS label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := ca.Issue(tc.opts, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Issue(%+v) = %v, want error containing %q", tc.opts, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pair, err := iss.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := x509.ParseCertificate(pair.Certificate[0])
			usage := x509.ExtKeyUsageClientAuth
			if tc.opts.Server {
				usage = x509.ExtKeyUsageServerAuth
			}
			opts := x509.VerifyOptions{Roots: ca.CertPool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}
			if tc.opts.Server {
				opts.DNSName = "localhost"
			}
			if _, err := leaf.Verify(opts); err != nil {
				t.Fatalf("issued certificate does not verify: %v", err)
			}
			if leaf.Subject.CommonName != tc.opts.Name {
				t.Errorf("CN = %q, want %q", leaf.Subject.CommonName, tc.opts.Name)
			}
		})
	}
}

func TestIssueFilesRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	ca, _ := InitCA(dir, now)
	if _, _, err := ca.IssueFiles(dir, Options{Name: "n1"}, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.IssueFiles(dir, Options{Name: "n1"}, now); !errors.Is(err, ErrExists) {
		t.Fatalf("IssueFiles twice = %v, want ErrExists", err)
	}
}

// TestMutualTLS runs a real handshake between a server and a node
// certificate and checks the identity the server sees, and that a
// certificate from another CA is refused.
func TestMutualTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	ca, _ := InitCA(dir, time.Now())
	foreign, _ := InitCA(other, time.Now())
	srvCert, srvKey, _ := ca.IssueFiles(dir, Options{Name: "bridge", Server: true, Hosts: []string{"127.0.0.1"}}, time.Now())
	nodeCert, nodeKey, _ := ca.IssueFiles(dir, Options{Name: "sat-1"}, time.Now())
	badCert, badKey, _ := foreign.IssueFiles(other, Options{Name: "sat-1"}, time.Now())

	srvConf, err := ServerTLS(srvCert, srvKey, dir+"/"+CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvConf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ids := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				ids <- "error"
			} else if id, err := PeerIdentity(tc.ConnectionState()); err == nil {
				ids <- id
			}
			c.Close()
		}
	}()
	dial := func(cert, key string) error {
		conf, err := ClientTLS(cert, key, dir+"/"+CACertFile, "")
		if err != nil {
			return err
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), conf)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a client-certificate rejection on the first read.
		_, err = c.Read(make([]byte, 1))
		return err
	}
	_ = dial(nodeCert, nodeKey)
	if got := <-ids; got != "sat-1" {
		t.Fatalf("server saw identity %q, want sat-1", got)
	}
	if err := dial(badCert, badKey); err == nil {
		t.Fatal("certificate from a foreign CA was accepted")
	}
	if got := <-ids; got != "error" {
		t.Fatalf("server accepted a foreign certificate as %q", got)
	}
}
