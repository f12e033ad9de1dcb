package bridge

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/api"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNodeLifecycle(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	broker := "tls://" + b.MQTTAddr()

	truck := connect(t, broker, "truck-1", p.clientTLS(t, "truck-1"))
	truck.send(t, hello("truck-1", map[string]string{"fleet": "trucks"}))

	// The bridge answers the hello with a Welcome on down/ack.
	w := truck.receive(t)
	if w.GetWelcome() == nil || w.GetNodeId() != "truck-1" {
		t.Fatalf("first message to the node = %v, want a Welcome", w)
	}
	if got := w.GetWelcome().GetCapability(); got != protocol.CapabilityVersion {
		t.Errorf("Welcome capability = %d, want %d", got, protocol.CapabilityVersion)
	}
	if skew := time.Since(time.UnixMilli(w.GetWelcome().GetServerTimeMs())); skew < 0 || skew > time.Minute {
		t.Errorf("Welcome server time is %v off", skew)
	}

	// The node is online with its facts, in the list and on its own.
	var list api.NodeList
	if code := getJSON(t, b, "/api/v1/nodes", &list); code != http.StatusOK || len(list.Items) != 1 {
		t.Fatalf("GET /api/v1/nodes = %d with %d nodes, want 200 with 1", code, len(list.Items))
	}
	n, ok := getNode(t, b, "truck-1")
	if !ok {
		t.Fatal("GET /api/v1/nodes/truck-1 = 404 after hello")
	}
	wantFacts := registry.Facts{Hostname: "truck-1.local", OS: "linux", Arch: "arm64", Platform: "debian 12",
		Kernel: "6.1.0", CPUModel: "Cortex-A72", CPUCores: 4, MemTotalKiB: 4 << 20}
	if diff := cmp.Diff(wantFacts, n.Facts); diff != "" {
		t.Errorf("facts (-want +got):\n%s", diff)
	}
	if !n.Online || n.ConnectedSince.IsZero() || n.AgentVersion != "0.1.0" || n.Labels["fleet"] != "trucks" {
		t.Errorf("node after hello = %+v, want online since connect, agent 0.1.0, fleet=trucks", n)
	}
	if diff := cmp.Diff(list.Items[0], n, cmpopts.IgnoreUnexported(registry.Node{})); diff != "" {
		t.Errorf("list item and single node differ (-list +node):\n%s", diff)
	}
	if got := metric(t, b, "skyedge_bridge_connected_nodes"); got != 1 {
		t.Errorf("skyedge_bridge_connected_nodes = %v, want 1", got)
	}

	// A report becomes the last report.
	truck.send(t, report("truck-1", 420))
	n, _ = getNode(t, b, "truck-1")
	if n.LastReport == nil || n.LastReport.CPUPermille != 420 || n.LastReport.Disks[0].Mount != "/" {
		t.Errorf("last report = %+v, want the one sent (cpu 420)", n.LastReport)
	}
	if got := metric(t, b, `skyedge_bridge_messages_total{stream="report"}`); got != 1 {
		t.Errorf(`messages_total{stream="report"} = %v, want 1`, got)
	}

	// A clean goodbye and DISCONNECT: offline, "clean".
	truck.send(t, goodbye("truck-1", pb.Goodbye_REASON_SHUTDOWN))
	truck.client.Disconnect(250)
	eventually(t, 5*time.Second, func() string {
		if n, _ := getNode(t, b, "truck-1"); n.Online || n.OfflineReason != "clean" {
			return "after goodbye and disconnect: online " + fmtBool(n.Online) + ", reason " + n.OfflineReason + "; want offline, clean"
		}
		return ""
	})

	// An abrupt close of another node's TCP connection: offline with a
	// reason.
	sat := connect(t, broker, "sat-1", p.clientTLS(t, "sat-1"))
	sat.send(t, hello("sat-1", nil))
	sat.breakConn()
	eventually(t, 5*time.Second, func() string {
		if n, _ := getNode(t, b, "sat-1"); n.Online || n.OfflineReason != "connection_lost" {
			return "after an abrupt close: online " + fmtBool(n.Online) + ", reason " + n.OfflineReason + "; want offline, connection_lost"
		}
		return ""
	})
	if got := metric(t, b, "skyedge_bridge_connected_nodes"); got != 0 {
		t.Errorf("skyedge_bridge_connected_nodes = %v, want 0", got)
	}
}

func fmtBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestRegistrySurvivesRestart(t *testing.T) {
	p := newPKI(t)
	cfg := embeddedConfig(t, p)
	b := start(t, cfg)
	node := connect(t, "tls://"+b.MQTTAddr(), "plant-7", p.clientTLS(t, "plant-7"))
	node.send(t, hello("plant-7", map[string]string{"site": "lyon"}))
	node.send(t, report("plant-7", 77))
	before, _ := getNode(t, b, "plant-7")
	if err := b.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil after cancel", err)
	}
	node.client.Disconnect(0)

	b2 := start(t, cfg)
	after, ok := getNode(t, b2, "plant-7")
	if !ok {
		t.Fatal("node unknown after restart")
	}
	// Still known with everything it said; offline because the bridge it
	// was connected to stopped.
	before.Online, before.ConnectedSince, before.OfflineReason = false, time.Time{}, "bridge_shutdown"
	if diff := cmp.Diff(before, after, cmpopts.IgnoreUnexported(registry.Node{}), cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".LastSeen"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("node after restart (-before +after):\n%s", diff)
	}
	if after.LastReport == nil || after.LastReport.CPUPermille != 77 {
		t.Errorf("last report after restart = %+v, want cpu 77", after.LastReport)
	}
}

func TestPlaintextListenerOnlyWhenConfigured(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	if got := b.PlainAddr(); got != "" {
		t.Errorf("PlainAddr() = %q without a plaintext listener configured, want \"\"", got)
	}

	cfg := embeddedConfig(t, p)
	cfg.Embedded.PlainAddr = "127.0.0.1:0"
	b = start(t, cfg)
	if b.PlainAddr() == "" {
		t.Fatal("PlainAddr() = \"\" with a plaintext listener configured")
	}
	if b.logs.count("plaintext MQTT listener enabled", "level=WARN") != 1 {
		t.Errorf("no warning about the plaintext listener in the log")
	}
	dev := connect(t, "tcp://"+b.PlainAddr(), "dev-1", nil)
	dev.send(t, hello("dev-1", nil))
	if n, ok := getNode(t, b, "dev-1"); !ok || !n.Online {
		t.Errorf("node on the plaintext listener: found %v online %v, want online", ok, n.Online)
	}
}

func TestSessionTakeoverKeepsTheNodeOnline(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	broker := "tls://" + b.MQTTAddr()
	cfg := p.clientTLS(t, "van-1")
	lost := make(chan struct{})
	first := connect(t, broker, "van-1", cfg, func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	first.send(t, hello("van-1", nil))
	second := connect(t, broker, "van-1", cfg)
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the first connection was not closed when the second took over")
	}
	second.send(t, report("van-1", 9))
	if n, _ := getNode(t, b, "van-1"); !n.Online {
		t.Errorf("node after a session takeover: offline (%q), want online", n.OfflineReason)
	}
	second.client.Disconnect(250)
	eventually(t, 5*time.Second, func() string {
		if n, _ := getNode(t, b, "van-1"); n.Online || n.OfflineReason != "clean" {
			return "after the new connection's DISCONNECT: online " + fmtBool(n.Online) + ", reason " + n.OfflineReason
		}
		return ""
	})
}

func TestRunFailsWhenThePortIsTaken(t *testing.T) {
	p := newPKI(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := embeddedConfig(t, p)
	cfg.Embedded.ListenAddr = taken.Addr().String()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "mqtt listen") {
		t.Errorf("Run() with the MQTT port taken = %v, want a listen error", err)
	}
	if err := b.Run(context.Background()); err == nil {
		t.Errorf("second Run() = nil, want an error")
	}
}

func TestKeepaliveTimeout(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	c, err := tls.Dial("tcp", b.MQTTAddr(), p.clientTLS(t, "buoy-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// CONNECT, MQTT 3.1.1, clean session, keepalive 1 s, client ID buoy-1;
	// then silence: no PINGREQ ever.
	id := "buoy-1"
	connect := append([]byte{0x10, byte(12 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 1, 0, byte(len(id))}, id...)
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK = % x, %v; want accepted", ack, err)
	}
	eventually(t, 10*time.Second, func() string {
		if n, _ := getNode(t, b, "buoy-1"); n.Online || n.OfflineReason != "keepalive_timeout" {
			return "silent node: online " + fmtBool(n.Online) + ", reason " + n.OfflineReason + "; want offline, keepalive_timeout"
		}
		return ""
	})
}
