package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestReconnectResumesTLS checks that an agent coming back after a cut
// link resumes its TLS session (no certificate signature or verification
// on either side), which is what lets a whole fleet return at once.
func TestReconnectResumesTLS(t *testing.T) {
	p := newPKI(t)
	br := startBridge(t, p, t.TempDir(), nil)
	px := proxied(t, br.MQTTAddr())
	startAgent(t, p, "truck-9", px.Addr(), nil, nil)
	api := br.HTTPAddr()
	online := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			return nodes(t, api)["truck-9"].Online == want, fmt.Sprintf("truck-9 online=%v", want)
		}
	}
	eventually(t, 15*time.Second, online(true))
	const resumed = `skyedge_bridge_tls_handshakes_total{resumed="true"}`
	if n := metric(t, api, resumed); n != 0 {
		t.Fatalf("first connection resumed a session (%v)", n)
	}
	px.Cut()
	eventually(t, 15*time.Second, online(false))
	px.Restore()
	eventually(t, 20*time.Second, online(true))
	if n := metric(t, api, resumed); n < 1 {
		t.Errorf("%s = %v after a reconnect, want >= 1", resumed, n)
	}
	if n := metric(t, api, `skyedge_bridge_tls_handshakes_total{resumed="false"}`); n != 1 {
		t.Errorf("full handshakes = %v, want only the first", n)
	}
}
