package e2e

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/bridge"
	"github.com/skyedge/skyedge/internal/testutil/mosquitto"
)

var demoFleet = map[string]map[string]string{
	"truck-042": {"role": "vehicle", "zone": "eu-central"},
	"sat-7":     {"role": "satellite", "orbit": "leo"},
	"factory-7": {"role": "factory", "zone": "eu-central"},
}

// allOnline waits until every node of fleet is online with a report.
func allOnline(t *testing.T, httpAddr string, fleet map[string]map[string]string) {
	t.Helper()
	eventually(t, 20*time.Second, func() (bool, string) {
		got := nodes(t, httpAddr)
		for name := range fleet {
			n, ok := got[name]
			if !ok || !n.Online || n.LastReport == nil {
				return false, fmt.Sprintf("node %s online with a report; have %+v", name, n)
			}
		}
		return true, ""
	})
}

func checkNodes(t *testing.T, httpAddr string, fleet map[string]map[string]string) {
	t.Helper()
	got := nodes(t, httpAddr)
	for name, labels := range fleet {
		n := got[name]
		for k, v := range labels {
			if n.Labels[k] != v {
				t.Errorf("node %s label %s = %q, want %q", name, k, n.Labels[k], v)
			}
		}
		if n.Facts.Arch != runtime.GOARCH || n.Facts.CPUCores == 0 {
			t.Errorf("node %s facts = %+v, want arch %s and cores", name, n.Facts, runtime.GOARCH)
		}
		if n.LastReport.CPUCores == 0 || n.LastReport.MemTotalKiB == 0 {
			t.Errorf("node %s report = %+v, want live resources", name, n.LastReport)
		}
	}
}

// TestFleetEmbeddedBroker runs the bridge with its embedded broker and
// three agents over mutual TLS, then checks offline reasons and that the
// registry and the links survive a bridge restart.
func TestFleetEmbeddedBroker(t *testing.T) {
	p := newPKI(t)
	dataDir := t.TempDir()
	b := startBridge(t, p, dataDir, nil)
	agents := map[string]*runningAgent{}
	for name, labels := range demoFleet {
		agents[name] = startAgent(t, p, name, b.MQTTAddr(), labels, nil)
	}
	allOnline(t, b.HTTPAddr(), demoFleet)
	checkNodes(t, b.HTTPAddr(), demoFleet)

	agents["sat-7"].stop()
	eventually(t, 10*time.Second, func() (bool, string) {
		n := nodes(t, b.HTTPAddr())["sat-7"]
		return !n.Online && n.OfflineReason == "clean", fmt.Sprintf("sat-7 offline (clean), have %+v", n)
	})

	// Restart the bridge on the same port and data: the registry is kept
	// and the two running agents reconnect by themselves.
	mqttAddr := b.MQTTAddr()
	b.stop()
	b2 := startBridge(t, p, dataDir, func(c *bridge.Config) { c.Embedded.ListenAddr = mqttAddr })
	if n := nodes(t, b2.HTTPAddr())["sat-7"]; n.ID != "sat-7" || n.Online {
		t.Fatalf("after restart sat-7 = %+v, want kept in the registry and offline", n)
	}
	delete(demoFleet, "sat-7")
	defer func() { demoFleet["sat-7"] = map[string]string{"role": "satellite", "orbit": "leo"} }()
	allOnline(t, b2.HTTPAddr(), demoFleet)
}

// TestFleetExternalMosquitto runs the same fleet through a real Mosquitto
// 2 with TLS, require_certificate, use_identity_as_username and per-node
// ACLs; the bridge consumes the fleet through a shared subscription.
func TestFleetExternalMosquitto(t *testing.T) {
	mosquitto.Require(t)
	p := newPKI(t)
	bridgeCert, bridgeKey := p.files(t, "bridge-1")
	broker := mosquitto.Start(t, mosquitto.Options{
		CAFile: p.caFile, CertFile: filepath.Join(p.dir, "bridge.crt"), KeyFile: filepath.Join(p.dir, "bridge.key"),
		BridgeUsers: []string{"bridge-1"},
	})
	b := startBridge(t, p, t.TempDir(), func(c *bridge.Config) {
		c.Mode = "external"
		c.External.Broker = "tls://" + broker.Addr
		c.External.ClientID = "bridge-1"
		c.External.CertFile, c.External.KeyFile, c.External.CAFile = bridgeCert, bridgeKey, p.caFile
	})
	agents := map[string]*runningAgent{}
	for name, labels := range demoFleet {
		agents[name] = startAgent(t, p, name, broker.Addr, labels, nil)
	}
	allOnline(t, b.HTTPAddr(), demoFleet)
	checkNodes(t, b.HTTPAddr(), demoFleet)

	agents["factory-7"].stop()
	eventually(t, 10*time.Second, func() (bool, string) {
		n := nodes(t, b.HTTPAddr())["factory-7"]
		return !n.Online && n.OfflineReason == "clean", fmt.Sprintf("factory-7 offline (clean), have %+v", n)
	})
	// Both the bridge and the agents reconnect after a broker restart.
	broker.Restart(t)
	eventually(t, 20*time.Second, func() (bool, string) {
		got := nodes(t, b.HTTPAddr())
		for _, name := range []string{"truck-042", "sat-7"} {
			if !got[name].Online {
				return false, fmt.Sprintf("%s back online after the broker restart, have %+v", name, got[name])
			}
		}
		return true, ""
	})
}
