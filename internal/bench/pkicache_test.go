package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPKICache(t *testing.T) {
	dir := t.TempDir()
	p, err := OpenPKI(dir)
	if err != nil {
		t.Fatalf("OpenPKI: %v", err)
	}
	conf, err := p.ClientTLS("sim-00042")
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	if cn := conf.Certificates[0].Leaf.Subject.CommonName; cn != "sim-00042" {
		t.Errorf("ClientTLS(sim-00042) certificate CN = %q, want sim-00042", cn)
	}
	cert := filepath.Join(dir, "nodes", "sim-00042.crt")
	before, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}

	// A second open reuses the CA and every certificate.
	p2, err := OpenPKI(dir)
	if err != nil {
		t.Fatalf("OpenPKI again: %v", err)
	}
	if !p2.ca.Cert.Equal(p.ca.Cert) {
		t.Error("OpenPKI again made a new CA, want the cached one")
	}
	if _, err := p2.ClientTLS("sim-00042"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(cert); string(after) != string(before) {
		t.Error("ClientTLS reissued a cached, valid certificate")
	}

	// A damaged certificate is reissued.
	if err := os.WriteFile(cert, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.ClientTLS("sim-00042"); err != nil {
		t.Errorf("ClientTLS(damaged cache) = %v, want a new certificate", err)
	}
}
