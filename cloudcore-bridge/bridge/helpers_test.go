package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/internal/pki"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// fleetPKI is a throwaway CA with a bridge server certificate.
type fleetPKI struct {
	dir string
	ca  *pki.CA
	// Files of the bridge's server certificate and of the CA.
	cert, key, caFile string
}

func newPKI(t testing.TB) *fleetPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.InitCA(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueFiles(dir, pki.Options{Name: "bridge", Server: true, Hosts: []string{"localhost", "127.0.0.1"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	return &fleetPKI{dir: dir, ca: ca, cert: cert, key: key, caFile: dir + "/" + pki.CACertFile}
}

// clientTLS is the TLS configuration of a client whose certificate names
// id.
func (p *fleetPKI) clientTLS(t testing.TB, id string) *tls.Config {
	t.Helper()
	iss, err := p.ca.Issue(pki.Options{Name: id}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := iss.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      p.ca.CertPool(),
		ServerName:   "localhost",
	}
}

// logBuffer collects a bridge's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count is the number of lines containing every one of parts.
func (l *logBuffer) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		for _, p := range parts {
			if !strings.Contains(sc.Text(), p) {
				continue next
			}
		}
		n++
	}
	return n
}

// testBridge is a bridge running in the background.
type testBridge struct {
	*Bridge
	logs *logBuffer
	stop func() error
}

// embeddedConfig is a bridge on ephemeral ports with the certificates of p.
func embeddedConfig(t testing.TB, p *fleetPKI) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Embedded = EmbeddedConfig{ListenAddr: "127.0.0.1:0", CertFile: p.cert, KeyFile: p.key, CAFile: p.caFile}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.Logger = nil // start logs to a buffer
	return cfg
}

// start runs a bridge with cfg until the test ends or stop is called.
func start(t testing.TB, cfg Config) *testBridge {
	t.Helper()
	logs := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run() = %v before ready", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("bridge not ready within 20s")
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	})
	return &testBridge{Bridge: b, logs: logs, stop: stop}
}

// sim is a simulated node: a paho client with its messages from the
// bridge.
type sim struct {
	id     string
	client paho.Client
	down   chan *pb.Envelope
	raw    net.Conn // the TCP connection under TLS, to break it abruptly
	// connectedAt stamps the will and every hello of this connection, as
	// the agent does, so the bridge can tell this connection's will from
	// an older one's.
	connectedAt int64
}

type simOption func(*paho.ClientOptions)

// connect connects node id to broker (a tls:// or tcp:// URL) with tlsCfg,
// subscribes to its down topics and registers a lost-connection Goodbye
// as its last will. It fails the test when the connection fails.
func connect(t testing.TB, broker, id string, tlsCfg *tls.Config, opts ...simOption) *sim {
	t.Helper()
	s, err := dial(t, broker, id, tlsCfg, opts...)
	if err != nil {
		t.Fatalf("node %s: connect to %s: %v", id, broker, err)
	}
	return s
}

func dial(t testing.TB, broker, id string, tlsCfg *tls.Config, opts ...simOption) (*sim, error) {
	t.Helper()
	s := &sim{id: id, down: make(chan *pb.Envelope, 256), connectedAt: time.Now().UnixMilli()}
	will, err := proto.Marshal(&pb.Envelope{NodeId: id, SentAtMs: s.connectedAt, Body: &pb.Envelope_Goodbye{Goodbye: &pb.Goodbye{Reason: pb.Goodbye_REASON_LOST}}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetTLSConfig(tlsCfg).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).SetOrderMatters(false).
		SetConnectTimeout(5*time.Second).SetKeepAlive(30*time.Second).SetProtocolVersion(4).
		SetBinaryWill(protocol.UpTopic(id, protocol.StreamBye), will, 1, false).
		SetCustomOpenConnectionFn(func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			s.raw = c
			mu.Unlock()
			if u.Scheme == "tcp" {
				return c, nil
			}
			tc := tls.Client(c, o.TLSConfig)
			if err := tc.Handshake(); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		})
	for _, opt := range opts {
		opt(o)
	}
	s.client = paho.NewClient(o)
	if tok := s.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		s.client.Disconnect(0)
		return nil, fmt.Errorf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { s.client.Disconnect(0) })
	tok := s.client.Subscribe(protocol.DownFilter(id), 1, func(_ paho.Client, m paho.Message) {
		env := new(pb.Envelope)
		if err := proto.Unmarshal(m.Payload(), env); err != nil {
			t.Errorf("node %s: undecodable message on %s: %v", id, m.Topic(), err)
			return
		}
		select {
		case s.down <- env:
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("subscribe: %v", tok.Error())
	}
	mu.Lock()
	defer mu.Unlock()
	return s, nil
}

// send publishes env on the stream of its body and waits for the PUBACK.
func (s *sim) send(t testing.TB, env *pb.Envelope) {
	if env.GetHello() != nil {
		env.SentAtMs = s.connectedAt
	}
	t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	s.publish(t, protocol.UpTopic(s.id, protocol.StreamOf(env)), b, true)
}

// publish sends payload to topic at QoS 1, waiting for the PUBACK if wait.
func (s *sim) publish(t testing.TB, topic string, payload []byte, wait bool) paho.Token {
	t.Helper()
	tok := s.client.Publish(topic, 1, false, payload)
	if wait && (!tok.WaitTimeout(10*time.Second) || tok.Error() != nil) {
		t.Fatalf("node %s: publish to %s: no PUBACK (%v)", s.id, topic, tok.Error())
	}
	return tok
}

// breakConn closes the node's TCP connection without a DISCONNECT or TLS
// close_notify.
func (s *sim) breakConn() { s.raw.Close() }

func hello(id string, labels map[string]string) *pb.Envelope {
	return &pb.Envelope{NodeId: id, BootEpoch: 1, SentAtMs: time.Now().UnixMilli(), Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Hello{Hello: &pb.Hello{
			AgentVersion: "0.1.0", Hostname: id + ".local", Os: "linux", Arch: "arm64", Platform: "debian 12",
			KernelVersion: "6.1.0", CpuModel: "Cortex-A72", CpuCores: 4, MemTotalKib: 4 << 20, Labels: labels,
		}}}
}

func report(id string, cpu uint32) *pb.Envelope {
	return &pb.Envelope{NodeId: id, BootEpoch: 1, Seq: uint64(cpu), SentAtMs: time.Now().UnixMilli(),
		Capability: protocol.CapabilityVersion,
		Body: &pb.Envelope_Report{Report: &pb.ResourceReport{
			CpuCores: 4, CpuPermille: cpu, Load1Centi: 120, MemTotalKib: 4 << 20, MemUsedKib: 1 << 20,
			Disks:   []*pb.DiskUsage{{Mount: "/", TotalKib: 32 << 20, UsedKib: 8 << 20}},
			Nets:    []*pb.NetRate{{Iface: "wwan0", RxBytesPerS: 1200, TxBytesPerS: 800}},
			Temps:   []*pb.Temperature{{Sensor: "cpu", DeciCelsius: 512}},
			UptimeS: 3600, IntervalMs: 10000,
		}}}
}

func goodbye(id string, r pb.Goodbye_Reason) *pb.Envelope {
	return &pb.Envelope{NodeId: id, SentAtMs: time.Now().UnixMilli(), Body: &pb.Envelope_Goodbye{Goodbye: &pb.Goodbye{Reason: r}}}
}

// getJSON GETs path from the bridge's API and decodes the body into v.
func getJSON(t testing.TB, b *testBridge, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

// node GETs one node; ok is false on 404.
func getNode(t testing.TB, b *testBridge, id string) (n registry.Node, ok bool) {
	t.Helper()
	code := getJSON(t, b, "/api/v1/nodes/"+id, &n)
	return n, code == http.StatusOK
}

// metric returns the value of the sample named series (name{labels}) in
// /metrics, or 0 when absent.
func metric(t testing.TB, b *testBridge, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// eventually polls cond until it returns "" or timeout passes, then fails
// with cond's last complaint.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receive waits for the next message from the bridge to s.
func (s *sim) receive(t testing.TB) *pb.Envelope {
	t.Helper()
	select {
	case env := <-s.down:
		return env
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s: nothing received on its down topics within 10s", s.id)
		return nil
	}
}
