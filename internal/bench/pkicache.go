package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skyedge/skyedge/internal/pki"
)

// serverName is the bridge certificate's name; every listener and proxy
// of a benchmark is on this loopback address.
const serverName = "127.0.0.1"

// renewBefore is how long before expiry a cached certificate is reissued.
const renewBefore = 7 * 24 * time.Hour

// PKI is the benchmarks' development PKI, cached in a directory so that
// the thousands of node certificates a large run needs are issued once:
// a CA (ca.crt, ca.key), the bridge's server certificate for 127.0.0.1
// (bridge.crt, bridge.key) and one client certificate per node under
// nodes/. It is safe for concurrent use.
type PKI struct {
	Dir  string
	ca   *pki.CA
	pool *x509.CertPool
}

// OpenPKI loads the PKI cached in dir, creating what is missing. A new CA
// discards the node certificates of an old one.
func OpenPKI(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bench pki: %w", err)
	}
	now := time.Now()
	ca, err := pki.LoadCA(dir)
	if err != nil || now.Add(renewBefore).After(ca.Cert.NotAfter) {
		for _, f := range []string{pki.CACertFile, pki.CAKeyFile, "bridge.crt", "bridge.key"} {
			os.Remove(filepath.Join(dir, f))
		}
		if err := os.RemoveAll(filepath.Join(dir, "nodes")); err != nil {
			return nil, fmt.Errorf("bench pki: %w", err)
		}
		if ca, err = pki.InitCA(dir, now); err != nil {
			return nil, fmt.Errorf("bench pki: %w", err)
		}
	}
	p := &PKI{Dir: dir, ca: ca, pool: ca.CertPool()}
	if err := os.MkdirAll(filepath.Join(dir, "nodes"), 0o700); err != nil {
		return nil, fmt.Errorf("bench pki: %w", err)
	}
	if _, _, err := p.files(dir, pki.Options{Name: "bridge", Server: true, Hosts: []string{serverName, "localhost"}}); err != nil {
		return nil, err
	}
	return p, nil
}

// CAFile is the CA certificate's path.
func (p *PKI) CAFile() string { return filepath.Join(p.Dir, pki.CACertFile) }

// ServerFiles are the bridge certificate's and key's paths.
func (p *PKI) ServerFiles() (cert, key string) {
	return filepath.Join(p.Dir, "bridge.crt"), filepath.Join(p.Dir, "bridge.key")
}

// NodeFiles returns the certificate and key files of node, issuing them
// when missing or close to expiry.
func (p *PKI) NodeFiles(node string) (cert, key string, err error) {
	return p.files(filepath.Join(p.Dir, "nodes"), pki.Options{Name: node})
}

// ClientTLS returns the TLS configuration of node: its own certificate,
// trusting the bridge's.
func (p *PKI) ClientTLS(node string) (*tls.Config, error) {
	dir := filepath.Join(p.Dir, "nodes")
	certFile, keyFile := filepath.Join(dir, node+".crt"), filepath.Join(dir, node+".key")
	cert, ok := load(certFile, keyFile)
	if !ok {
		if _, _, err := p.files(dir, pki.Options{Name: node}); err != nil {
			return nil, err
		}
		var err error
		if cert, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("bench pki: load %s: %w", certFile, err)
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      p.pool,
	}, nil
}

// ClientTLSAll returns the TLS configuration of every node, issuing and
// loading them on every core.
func (p *PKI) ClientTLSAll(ctx context.Context, nodes []string) ([]*tls.Config, error) {
	out := make([]*tls.Config, len(nodes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	for i, n := range nodes {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			c, err := p.ClientTLS(n)
			out[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// files returns the certificate and key of o in dir, issuing them when
// they are missing, unreadable or expire within renewBefore.
func (p *PKI) files(dir string, o pki.Options) (cert, key string, err error) {
	cert, key = filepath.Join(dir, o.Name+".crt"), filepath.Join(dir, o.Name+".key")
	if _, ok := load(cert, key); ok {
		return cert, key, nil
	}
	os.Remove(cert)
	os.Remove(key)
	if _, _, err := p.ca.IssueFiles(dir, o, time.Now()); err != nil && !errors.Is(err, pki.ErrExists) {
		return "", "", fmt.Errorf("bench pki: %w", err)
	}
	return cert, key, nil
}

// load loads cert and key, and reports whether they form a pair valid
// for at least renewBefore.
func load(cert, key string) (tls.Certificate, bool) {
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil || pair.Leaf == nil {
		return tls.Certificate{}, false
	}
	return pair, time.Now().Add(renewBefore).Before(pair.Leaf.NotAfter)
}
