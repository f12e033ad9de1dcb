// Package mosquitto starts a real Mosquitto 2 broker for tests, configured
// the way SkyEdge expects an external broker to be: a TLS listener on
// loopback requiring client certificates from the fleet CA, the
// certificate's common name as the user name, and an ACL that confines
// each node to its own topics while the bridge user reads every node's up
// topics and writes their down topics.
//
// Mosquitto 2 grants a SUBSCRIBE to $share/{group}/{filter} whatever the
// ACL says, and applies "read" rules to each message it delivers, by the
// message's own topic (no $share prefix). So "topic read
// skyedge/v1/n/+/up/#" is what lets a bridge's shared subscription
// receive anything; without it the subscription succeeds and stays
// silent, and nodes subscribing to other nodes' topics receive nothing.
package mosquitto

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Broker is a running Mosquitto process.
type Broker struct {
	Addr string // host:port of the TLS listener

	cmd  *exec.Cmd
	conf string
	log  *lockedBuffer
	done chan struct{}
}

// Options configure the broker.
type Options struct {
	CAFile, CertFile, KeyFile string
	// BridgeUsers are certificate names allowed to read all up topics and
	// write all down topics (the bridges, in external mode).
	BridgeUsers []string
	// Port to listen on; 0 picks a free one. Restarting a broker on the
	// same port lets a test cut and restore the cloud side.
	Port int
	// Verbose logs at debug level too (refused publishes, for instance).
	Verbose bool
}

// Require skips the test when mosquitto is not installed, except under
// CI=true, where a missing broker fails it.
func Require(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto not found: CI must run the external-broker tests (apt-get install mosquitto)")
		}
		t.Skip("mosquitto not found: install it (apt-get install mosquitto) to run the external-broker tests")
	}
	// Some installations only put it in /usr/sbin, outside PATH.
	return path
}

// Start runs a broker until the test ends.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	port := o.Port
	if port == 0 {
		port = freePort(t)
	}
	acl := filepath.Join(dir, "acl")
	var aclText strings.Builder
	for _, u := range o.BridgeUsers {
		fmt.Fprintf(&aclText, "user %s\ntopic read skyedge/v1/n/+/up/#\ntopic write skyedge/v1/n/+/down/#\n\n", u)
	}
	aclText.WriteString("pattern write skyedge/v1/n/%u/up/#\npattern read skyedge/v1/n/%u/down/#\n")
	if err := os.WriteFile(acl, []byte(aclText.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	// Mosquitto started as root drops to the "mosquitto" user, which cannot
	// read the test's private files: run as the current user instead.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	confText := fmt.Sprintf(`user %s
per_listener_settings false
allow_anonymous false
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
max_inflight_messages 100
max_queued_messages 10000
%slistener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
acl_file %s
`, me.Username, verbose(o.Verbose), port, o.CAFile, o.CertFile, o.KeyFile, acl)
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &Broker{Addr: fmt.Sprintf("127.0.0.1:%d", port), conf: conf, log: &lockedBuffer{}}
	b.start(t, bin)
	t.Cleanup(func() {
		b.Stop(t)
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.Log())
		}
	})
	return b
}

func (b *Broker) start(t testing.TB, bin string) {
	t.Helper()
	b.cmd = exec.Command(bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	b.done = make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", b.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case <-b.done:
			t.Fatalf("mosquitto exited at start:\n%s", b.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("mosquitto did not listen on %s in 10s:\n%s", b.Addr, b.log.String())
}

func verbose(on bool) string {
	if on {
		return "log_type information\nlog_type debug\n"
	}
	return ""
}

// Stop stops the broker (SIGTERM, then SIGKILL). Safe to call twice.
func (b *Broker) Stop(t testing.TB) {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// Restart stops the broker and starts it again on the same address.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.Stop(t)
	b.Start(t)
}

// Start starts a stopped broker again on the same address.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	b.start(t, b.cmd.Path)
}

// Log returns what the broker has logged so far.
func (b *Broker) Log() string { return b.log.String() }

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
