package bridge

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/internal/pki"
	"github.com/skyedge/skyedge/protocol"
)

func TestPublishToAnotherNodesTopic(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	broker := "tls://" + b.MQTTAddr()

	victim := connect(t, broker, "victim", p.clientTLS(t, "victim"))
	victim.send(t, hello("victim", nil))
	victim.send(t, report("victim", 10))

	// QoS 0: dropped silently, the connection stays up.
	evil := connect(t, broker, "evil", p.clientTLS(t, "evil"))
	evil.send(t, hello("evil", nil))
	forged, err := proto.Marshal(report("victim", 999))
	if err != nil {
		t.Fatal(err)
	}
	evil.client.Publish(protocol.UpTopic("victim", protocol.StreamReport), 0, false, forged).WaitTimeout(5 * time.Second)
	evil.send(t, report("evil", 5)) // still connected, still applied
	if n, _ := getNode(t, b, "evil"); n.LastReport == nil || n.LastReport.CPUPermille != 5 {
		t.Errorf("evil's own report after a refused QoS 0 publish = %+v, want applied", n.LastReport)
	}

	// QoS 1 over MQTT 3.1.1: the broker closes the connection (there is no
	// negative PUBACK in 3.1.1), as AWS IoT Core does.
	evil.publish(t, protocol.UpTopic("victim", protocol.StreamReport), forged, false)
	eventually(t, 5*time.Second, func() string {
		if n, _ := getNode(t, b, "evil"); n.Online || n.OfflineReason != "refused" {
			return "evil after a QoS 1 publish to victim's topic: online " + fmtBool(n.Online) + ", reason " + n.OfflineReason + "; want offline, refused"
		}
		return ""
	})
	if got := metric(t, b, `skyedge_bridge_rejected_total{reason="spoofed"}`); got != 2 {
		t.Errorf(`rejected_total{reason="spoofed"} = %v, want 2`, got)
	}
	if n, _ := getNode(t, b, "victim"); n.LastReport.CPUPermille != 10 || !n.Online {
		t.Errorf("victim after forged reports: cpu %d online %v, want its own report (10) and still online", n.LastReport.CPUPermille, n.Online)
	}
	if n, _ := getNode(t, b, "evil"); n.Counters.Rejects != 2 {
		t.Errorf("evil's reject counter = %d, want 2", n.Counters.Rejects)
	}
	if got := b.logs.count("node=evil", "reason=spoofed"); got != 1 {
		t.Errorf("log lines about evil spoofing = %d, want 1", got)
	}
}

func TestSubscribeToAnotherNodesTopic(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	evil := connect(t, "tls://"+b.MQTTAddr(), "evil", p.clientTLS(t, "evil"))
	for _, filter := range []string{
		protocol.DownFilter("victim"),
		protocol.DownTopic("victim", protocol.StreamAck),
		protocol.AllUpFilter,
		"skyedge/v1/n/+/down/#",
		"skyedge/v1/n/evil/down/+", // not the node's filter, nor one topic
		"#",
		"$SYS/#",
	} {
		tok := evil.client.Subscribe(filter, 1, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("Subscribe(%q): no SUBACK", filter)
		}
		if got := tok.(*paho.SubscribeToken).Result()[filter]; got != 0x80 {
			t.Errorf("Subscribe(%q) granted %#x, want refused (0x80)", filter, got)
		}
	}
	// Its own down topics are allowed (connect subscribed to the filter).
	tok := evil.client.Subscribe(protocol.DownTopic("evil", protocol.StreamAck), 1, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.(*paho.SubscribeToken).Result()[protocol.DownTopic("evil", protocol.StreamAck)] != 1 {
		t.Errorf("Subscribe to its own down/ack topic refused")
	}
	if got := metric(t, b, `skyedge_bridge_rejected_total{reason="spoofed"}`); got != 2 {
		t.Errorf(`rejected_total{reason="spoofed"} = %v, want 2 (victim's filter and topic)`, got)
	}
	if got := metric(t, b, `skyedge_bridge_rejected_total{reason="bad_topic"}`); got != 5 {
		t.Errorf(`rejected_total{reason="bad_topic"} = %v, want 5`, got)
	}
}

func TestConnectRefusals(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	broker := "tls://" + b.MQTTAddr()

	t.Run("client ID is not the certificate's name", func(t *testing.T) {
		_, err := dial(t, broker, "victim", p.clientTLS(t, "evil"))
		if err == nil {
			t.Errorf("connect as victim with evil's certificate: %v, want refused", err)
		}
		if _, ok := getNode(t, b, "victim"); ok {
			t.Errorf("refused connect created node victim")
		}
		if got := b.logs.count("node=evil", "reason=spoofed", "is not the certificate's identity"); got != 1 {
			t.Errorf("log lines about the refused connect = %d, want 1", got)
		}
	})

	t.Run("last will on another node's topic", func(t *testing.T) {
		_, err := dial(t, broker, "evil", p.clientTLS(t, "evil"), func(o *paho.ClientOptions) {
			o.SetWill(protocol.UpTopic("victim", protocol.StreamBye), "x", 1, false)
		})
		if err == nil {
			t.Errorf("connect with a last will on victim's topic succeeded, want refused")
		}
	})

	t.Run("certificate from an unknown CA", func(t *testing.T) {
		other := newPKI(t)
		before := metric(t, b, "skyedge_bridge_tls_handshake_failures_total")
		cfg := other.clientTLS(t, "intruder")
		cfg.RootCAs = p.ca.CertPool() // trusts the bridge, but is not trusted
		if _, err := dial(t, broker, "intruder", cfg); err == nil {
			t.Fatal("connect with a certificate of another CA succeeded")
		}
		eventually(t, 5*time.Second, func() string {
			if got := metric(t, b, "skyedge_bridge_tls_handshake_failures_total"); got != before+1 {
				return fmt.Sprintf("tls_handshake_failures_total = %v, want %v", got, before+1)
			}
			return ""
		})
	})

	t.Run("no client certificate", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: p.ca.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
		if _, err := dial(t, broker, "anon", cfg); err == nil {
			t.Fatal("connect without a client certificate succeeded")
		}
	})

	t.Run("plaintext MQTT to the TLS port", func(t *testing.T) {
		c, err := net.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// CONNECT, MQTT 3.1.1, clean session, keepalive 30, client ID "plain".
		connect := []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 5, 'p', 'l', 'a', 'i', 'n'}
		if _, err := c.Write(connect); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if n >= 2 && buf[0] == 0x20 { // CONNACK
			t.Fatalf("plaintext CONNECT on the TLS port answered with a CONNACK % x", buf[:n])
		}
		if err == nil {
			// A TLS alert, then the close.
			_, err = c.Read(buf)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("plaintext connection left open on the TLS port")
		}
	})

	t.Run("expired certificate", func(t *testing.T) {
		iss, err := p.ca.Issue(pki.Options{Name: "old", Validity: time.Minute}, time.Now().Add(-2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := iss.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: p.ca.CertPool(), ServerName: "localhost"}
		if _, err := dial(t, broker, "old", cfg); err == nil {
			t.Fatal("connect with an expired certificate succeeded")
		}
	})
}
