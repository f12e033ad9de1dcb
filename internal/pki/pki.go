// Package pki makes and loads the certificates of a SkyEdge fleet: an
// ECDSA P-256 certificate authority, node certificates whose common name is
// the node ID, and server certificates for the bridge. It is meant for
// development and tests and for operators without a CA of their own; an
// operator's CA works the same as long as node certificates carry the node
// ID as their common name.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skyedge/skyedge/protocol"
)

// File names inside a PKI directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Validity periods.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
)

// ErrExists is returned when a file would be overwritten.
var ErrExists = errors.New("already exists")

// CA is a loaded certificate authority able to issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte // the CA certificate, PEM-encoded
}

// InitCA creates a new CA in dir. It refuses to overwrite an existing one.
func InitCA(dir string, now time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("init CA: %s %w (remove it to start over, or use it as it is)", p, ErrExists)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("init CA: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "SkyEdge CA", Organization: []string{"SkyEdge"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("init CA: create certificate: %w", err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	return LoadCA(dir)
}

// LoadCA loads the CA of dir.
func LoadCA(dir string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w (run `skyedge certs init --dir %s` first)", dir, err, dir)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load CA from %s: key is %T, want ECDSA", dir, pair.PrivateKey)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load CA from %s: %s is not a CA certificate", dir, CACertFile)
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]})}, nil
}

// Options describe a certificate to issue.
type Options struct {
	// Name is the common name: a node ID for node certificates, any
	// node-ID-shaped name for servers and clients.
	Name string
	// Server makes a server certificate valid for Hosts (DNS names or IP
	// addresses). Without Server the certificate is for client auth only.
	Server bool
	Hosts  []string
	// Validity overrides LeafValidity when non-zero.
	Validity time.Duration
}

// Issued is a freshly issued certificate and its key, PEM-encoded.
type Issued struct {
	CertPEM, KeyPEM []byte
}

// TLSCertificate parses the pair for use in a tls.Config.
func (i *Issued) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(i.CertPEM, i.KeyPEM)
}

// Issue signs a new certificate.
func (ca *CA) Issue(o Options, now time.Time) (*Issued, error) {
	if err := protocol.ValidateNodeID(o.Name); err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	if o.Server && len(o.Hosts) == 0 {
		return nil, fmt.Errorf("issue server certificate %q: no hosts given (e.g. --host localhost,127.0.0.1)", o.Name)
	}
	if !o.Server && len(o.Hosts) > 0 {
		return nil, fmt.Errorf("issue certificate %q: hosts are only for server certificates (add --server)", o.Name)
	}
	validity := o.Validity
	if validity == 0 {
		validity = LeafValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: %w", o.Name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.Name, Organization: []string{"SkyEdge"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if o.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		for _, h := range o.Hosts {
			h = strings.TrimSpace(h)
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
				continue
			}
			if err := validateHost(h); err != nil {
				return nil, fmt.Errorf("issue server certificate %q: %w", o.Name, err)
			}
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: %w", o.Name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: %w", o.Name, err)
	}
	return &Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// IssueFiles issues a certificate and writes {name}.crt and {name}.key into
// dir, refusing to overwrite existing files. It returns their paths.
func (ca *CA) IssueFiles(dir string, o Options, now time.Time) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, o.Name+".crt"), filepath.Join(dir, o.Name+".key")
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("issue certificate %q: %s %w", o.Name, p, ErrExists)
		}
	}
	iss, err := ca.Issue(o, now)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, iss.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("issue certificate %q: %w", o.Name, err)
	}
	if err := os.WriteFile(certPath, iss.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("issue certificate %q: %w", o.Name, err)
	}
	return certPath, keyPath, nil
}

// CertPool returns a pool holding only this CA.
func (ca *CA) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// LoadPool reads a PEM bundle of CA certificates.
func LoadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("load CA bundle %s: no PEM certificates found", path)
	}
	return p, nil
}

// PeerIdentity returns the node ID of a verified TLS peer: the common name
// of its leaf certificate.
func PeerIdentity(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("peer presented no certificate")
	}
	cn := cs.PeerCertificates[0].Subject.CommonName
	if err := protocol.ValidateNodeID(cn); err != nil {
		return "", fmt.Errorf("peer certificate common name: %w", err)
	}
	return cn, nil
}

func validateHost(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host %q: want a DNS name or IP address", h)
	}
	for _, label := range strings.Split(strings.TrimPrefix(h, "*."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q: label %q is not a valid DNS label", h, label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host %q: character %q is not allowed in a DNS name", h, c)
			}
		}
	}
	return nil
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("pki: crypto/rand failed: " + err.Error())
	}
	return n
}
