// Package brokertest runs a real MQTT broker over mutual TLS inside a
// test, with a throwaway certificate authority, so the agent's link is
// tested against the same wire a fleet sees. It records every connection
// and every message published under the SkyEdge topic prefix, wills
// included. Cloud, on top of it, plays the cloud's half of the
// acknowledged link (applied sets, Welcome, Acks). Only tests import it:
// neither is part of the agent binary.
package brokertest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/skyedge/skyedge/internal/pki"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Message is one message the broker routed.
type Message struct {
	Topic   string
	Payload []byte
	// Origin is the client ID of the publisher (of the will's owner for a
	// last will).
	Origin string
	At     time.Time
}

// Envelope decodes m as a SkyEdge envelope received on its topic.
func (m Message) Envelope() (*pb.Envelope, error) {
	_, env, err := protocol.DecodeFrom(m.Topic, m.Payload)
	return env, err
}

// Conn is one accepted MQTT connection.
type Conn struct {
	ClientID string
	// CommonName is the CN of the client certificate.
	CommonName string
	Clean      bool
}

// Broker is a running mochi-mqtt broker on 127.0.0.1 with a TLS listener
// that requires client certificates signed by CA.
type Broker struct {
	// Addr is host:port; it stays the same across Restart.
	Addr string
	// CA signed the broker's certificate and issues the clients'.
	CA *pki.CA
	// Dir holds the CA and the certificates issued by ClientTLS.
	Dir string

	t         testing.TB
	serverTLS *tls.Config

	mu        sync.Mutex // guards the fields below
	srv       *mqtt.Server
	messages  []Message
	conns     []Conn
	observers []func(Message)
}

// Start starts a broker on a free loopback port with a new CA in a
// temporary directory. It is stopped when the test ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.InitCA(dir, now)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	certFile, keyFile, err := ca.IssueFiles(dir, pki.Options{Name: "broker", Server: true, Hosts: []string{"127.0.0.1", "localhost"}}, now)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	serverTLS, err := pki.ServerTLS(certFile, keyFile, filepath.Join(dir, pki.CACertFile))
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	b := &Broker{Addr: "127.0.0.1:0", CA: ca, Dir: dir, t: t, serverTLS: serverTLS}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

// URL is the broker's address as an agent's broker setting.
func (b *Broker) URL() string { return "tls://" + b.Addr }

func (b *Broker) start() {
	b.t.Helper()
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		b.t.Fatalf("brokertest: add auth hook: %v", err)
	}
	if err := srv.AddHook(&recordHook{b: b}, nil); err != nil {
		b.t.Fatalf("brokertest: add record hook: %v", err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "tls", Address: b.Addr, TLSConfig: b.serverTLS})
	if err := srv.AddListener(ln); err != nil {
		b.t.Fatalf("brokertest: listen on %s: %v", b.Addr, err)
	}
	if err := srv.Serve(); err != nil {
		b.t.Fatalf("brokertest: serve: %v", err)
	}
	err := srv.Subscribe(protocol.TopicPrefix+"#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		m := Message{Topic: pk.TopicName, Payload: bytes.Clone(pk.Payload), Origin: pk.Origin, At: time.Now()}
		b.mu.Lock()
		b.messages = append(b.messages, m)
		observers := b.observers
		b.mu.Unlock()
		for _, fn := range observers {
			fn(m)
		}
	})
	if err != nil {
		b.t.Fatalf("brokertest: inline subscribe: %v", err)
	}
	b.mu.Lock()
	b.Addr = ln.Address()
	b.srv = srv
	b.mu.Unlock()
}

// Stop closes the broker and every client connection. Clients see their
// connection drop; no wills are published for them, as when a real
// broker goes down. Stopping a stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart stops the broker and starts a new one on the same address with
// the same certificates; recorded messages and connections are kept.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

// ClientFiles issues a client certificate with common name cn and
// returns the paths of the CA certificate, the client certificate and
// its key.
func (b *Broker) ClientFiles(cn string) (caFile, certFile, keyFile string) {
	b.t.Helper()
	certFile, keyFile, err := b.CA.IssueFiles(b.Dir, pki.Options{Name: cn}, time.Now())
	if err != nil {
		b.t.Fatalf("brokertest: %v", err)
	}
	return filepath.Join(b.Dir, pki.CACertFile), certFile, keyFile
}

// ClientTLS issues a client certificate with common name cn and returns
// the TLS configuration of a client trusting this broker's CA.
func (b *Broker) ClientTLS(cn string) *tls.Config {
	b.t.Helper()
	caFile, certFile, keyFile := b.ClientFiles(cn)
	cfg, err := pki.ClientTLS(certFile, keyFile, caFile, "")
	if err != nil {
		b.t.Fatalf("brokertest: %v", err)
	}
	return cfg
}

// Publish publishes payload on topic from the broker's inline client.
func (b *Broker) Publish(topic string, payload []byte) error {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("brokertest: publish on %s: broker stopped", topic)
	}
	return srv.Publish(topic, payload, false, 1)
}

// Observe calls fn with every message the broker routes under the
// SkyEdge prefix from now on, across restarts, on the publisher's
// connection goroutine: fn must not block.
func (b *Broker) Observe(fn func(Message)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observers = append(b.observers[:len(b.observers):len(b.observers)], fn)
}

// Messages returns the messages routed so far.
func (b *Broker) Messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.messages...)
}

// Conns returns the connections accepted so far.
func (b *Broker) Conns() []Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Conn(nil), b.conns...)
}

// Connected reports whether a client with id is connected now.
func (b *Broker) Connected(id string) bool {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv == nil {
		return false
	}
	cl, ok := srv.Clients.Get(id)
	return ok && !cl.Closed()
}

// Envelopes decodes the messages on topic, failing the test on any that
// does not decode.
func (b *Broker) Envelopes(topic string) []*pb.Envelope {
	b.t.Helper()
	var out []*pb.Envelope
	for _, m := range b.Messages() {
		if m.Topic != topic {
			continue
		}
		env, err := m.Envelope()
		if err != nil {
			b.t.Errorf("brokertest: message on %s: %v", m.Topic, err)
			continue
		}
		out = append(out, env)
	}
	return out
}

// WaitFor polls cond every 10 ms until it holds or timeout passes, and
// fails the test with what in the latter case.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// recordHook records the connections a Broker accepts.
type recordHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *recordHook) ID() string { return "brokertest-record" }

func (h *recordHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *recordHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	c := Conn{ClientID: cl.ID, Clean: pk.Connect.Clean}
	if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
		if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
			c.CommonName = cs.PeerCertificates[0].Subject.CommonName
		}
	}
	h.b.mu.Lock()
	h.b.conns = append(h.b.conns, c)
	h.b.mu.Unlock()
	return nil
}
