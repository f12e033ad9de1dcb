package pki

import (
	"crypto/tls"
	"fmt"
)

// ServerTLS is the TLS configuration of a SkyEdge server that requires
// clients to present a certificate signed by the CA in caFile.
func ServerTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server TLS: load %s: %w", certFile, err)
	}
	pool, err := LoadPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("server TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ClientTLS is the TLS configuration of a SkyEdge client (agent or bridge
// in external-broker mode) that authenticates with certFile and trusts the
// servers signed by the CA in caFile. serverName overrides the name checked
// against the server's certificate (and sent as SNI) when non-empty.
func ClientTLS(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client TLS: load %s: %w", certFile, err)
	}
	pool, err := LoadPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}
