package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/internal/pki"
	"github.com/skyedge/skyedge/internal/testutil/mosquitto"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// startMosquitto runs a Mosquitto 2 broker with mutual TLS from p on a
// free port, with the bridge (certificate "bridge") allowed every node's
// topics, or skips the test when the program is missing (fails under
// CI=true).
func startMosquitto(t *testing.T, p *fleetPKI) *mosquitto.Broker {
	t.Helper()
	mosquitto.Require(t)
	dir := t.TempDir()
	cert, key, err := p.ca.IssueFiles(dir, pki.Options{Name: "broker", Server: true, Hosts: []string{"localhost", "127.0.0.1"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return mosquitto.Start(t, mosquitto.Options{CAFile: p.caFile, CertFile: cert, KeyFile: key, BridgeUsers: []string{"bridge"}, Verbose: true})
}

// externalConfig is a bridge consuming m with the bridge certificate of p.
func externalConfig(t *testing.T, p *fleetPKI, m *mosquitto.Broker, clientID string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Mode = ModeExternal
	cfg.External = ExternalConfig{
		Broker: "tls://" + m.Addr, ClientID: clientID, ShareGroup: "skyedge-bridge", KeepAlive: 30 * time.Second,
		CertFile: p.cert, KeyFile: p.key, CAFile: p.caFile,
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.Logger = nil
	return cfg
}

func TestExternalMosquitto(t *testing.T) {
	p := newPKI(t)
	m := startMosquitto(t, p)
	b := start(t, externalConfig(t, p, m, "bridge-a"))
	broker := "tls://" + m.Addr

	truck := connect(t, broker, "truck-1", p.clientTLS(t, "truck-1"))
	truck.send(t, hello("truck-1", map[string]string{"fleet": "trucks"}))
	if w := truck.receive(t); w.GetWelcome() == nil {
		t.Fatalf("first message through mosquitto = %v, want a Welcome", w)
	}
	eventually(t, 5*time.Second, func() string {
		if n, ok := getNode(t, b, "truck-1"); !ok || !n.Online || n.Facts.Hostname != "truck-1.local" {
			return fmt.Sprintf("node after hello through mosquitto: %+v", n)
		}
		return ""
	})
	truck.send(t, report("truck-1", 555))
	eventually(t, 5*time.Second, func() string {
		if n, _ := getNode(t, b, "truck-1"); n.LastReport == nil || n.LastReport.CPUPermille != 555 {
			return fmt.Sprintf("last report through mosquitto = %+v, want cpu 555", n.LastReport)
		}
		return ""
	})
	truck.send(t, goodbye("truck-1", pb.Goodbye_REASON_SHUTDOWN))
	truck.client.Disconnect(250)
	eventually(t, 5*time.Second, func() string {
		if n, _ := getNode(t, b, "truck-1"); n.Online || n.OfflineReason != "clean" {
			return fmt.Sprintf("after goodbye: online %v reason %q, want offline, clean", n.Online, n.OfflineReason)
		}
		return ""
	})

	// An abrupt close: mosquitto publishes the node's last will.
	sat := connect(t, broker, "sat-1", p.clientTLS(t, "sat-1"))
	sat.send(t, hello("sat-1", nil))
	sat.breakConn()
	eventually(t, 10*time.Second, func() string {
		if n, _ := getNode(t, b, "sat-1"); n.Online || n.OfflineReason != "will" {
			return fmt.Sprintf("after an abrupt close: online %v reason %q, want offline, will", n.Online, n.OfflineReason)
		}
		return ""
	})

	// The broker refuses a node writing another node's topic: the
	// message never reaches the bridge.
	evil := connect(t, broker, "evil", p.clientTLS(t, "evil"))
	forged, err := proto.Marshal(hello("truck-1", map[string]string{"fleet": "pwned"}))
	if err != nil {
		t.Fatal(err)
	}
	evil.publish(t, protocol.UpTopic("truck-1", protocol.StreamHello), forged, true)
	evil.send(t, hello("evil", nil)) // after the forged one, on the same connection
	eventually(t, 5*time.Second, func() string {
		if _, ok := getNode(t, b, "evil"); !ok {
			return "evil's own hello not applied"
		}
		return ""
	})
	if n, _ := getNode(t, b, "truck-1"); n.Labels["fleet"] != "trucks" || n.Online {
		t.Errorf("truck-1 after evil's forged hello: labels %v online %v, want untouched", n.Labels, n.Online)
	}
	eventually(t, 5*time.Second, func() string {
		if !strings.Contains(m.Log(), "Denied PUBLISH from evil") {
			return "mosquitto did not log denying evil's publish"
		}
		return ""
	})
}

func TestExternalSharedSubscriptionSplitsTraffic(t *testing.T) {
	p := newPKI(t)
	m := startMosquitto(t, p)
	a := start(t, externalConfig(t, p, m, "bridge-a"))
	b := start(t, externalConfig(t, p, m, "bridge-b"))

	const reports = 60
	node := connect(t, "tls://"+m.Addr, "drone-1", p.clientTLS(t, "drone-1"))
	for i := range reports {
		node.send(t, report("drone-1", uint32(i+1)))
	}
	series := `skyedge_bridge_messages_total{stream="report"}`
	eventually(t, 10*time.Second, func() string {
		na, nb := metric(t, a, series), metric(t, b, series)
		if na+nb != reports {
			return fmt.Sprintf("bridges applied %v + %v reports, want %d in all", na, nb, reports)
		}
		if na == 0 || nb == 0 {
			return fmt.Sprintf("bridges applied %v and %v reports, want both a share", na, nb)
		}
		return ""
	})
}

func TestExternalReconnects(t *testing.T) {
	p := newPKI(t)
	m := startMosquitto(t, p)
	b := start(t, externalConfig(t, p, m, "bridge-a"))
	ready := func() int { return getJSON(t, b, "/readyz", nil) }
	if got := ready(); got != 200 {
		t.Fatalf("GET /readyz = %d, want 200", got)
	}

	m.Stop(t)
	eventually(t, 10*time.Second, func() string {
		if got := ready(); got != 503 {
			return fmt.Sprintf("GET /readyz with the broker gone = %d, want 503", got)
		}
		return ""
	})
	m.Start(t)
	eventually(t, 20*time.Second, func() string {
		if got := ready(); got != 200 {
			return fmt.Sprintf("GET /readyz after the broker came back = %d, want 200", got)
		}
		return ""
	})
	node := connect(t, "tls://"+m.Addr, "boat-1", p.clientTLS(t, "boat-1"))
	node.send(t, hello("boat-1", nil))
	if w := node.receive(t); w.GetWelcome() == nil {
		t.Fatalf("after the reconnect the node got %v, want a Welcome", w)
	}
	if got := b.logs.count("lost broker connection"); got != 1 {
		t.Errorf("log lines about the lost connection = %d, want 1", got)
	}
}
