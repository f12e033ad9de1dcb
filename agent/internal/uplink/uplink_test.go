package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/agent/internal/logtest"
	"github.com/skyedge/skyedge/agent/internal/stamp"
	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const node = "truck-042"

// wait is generous: these tests also run under qemu-user emulation.
const wait = 30 * time.Second

var fastRetry = backoff.Policy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, ResetAfter: 30 * time.Second}

// harness runs a Link against a broker and stops it when the test ends.
type harness struct {
	t      *testing.T
	broker *brokertest.Broker
	link   *Link
	logs   *logtest.Recorder
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, b *brokertest.Broker, tlsCfg *tls.Config, mod func(*Config)) *harness {
	t.Helper()
	logs := logtest.New(t)
	cfg := Config{
		NodeID:    node,
		Broker:    b.URL(),
		TLS:       tlsCfg,
		Reconnect: fastRetry,
		Stamper:   &stamp.Stamper{NodeID: node, BootEpoch: 3, Clock: clock.Real},
		Hello: func(context.Context) (*pb.Hello, error) {
			return &pb.Hello{Hostname: "cab-computer", CpuCores: 4, Labels: map[string]string{"role": "vehicle"}, ReportIntervalMs: 200}, nil
		},
		Logger: logs.Logger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, broker: b, link: l, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- l.Run(ctx) }()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels Run and checks that it returns nil promptly.
func (h *harness) stop() {
	h.t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run() = %v after cancel, want nil", err)
		}
	case <-time.After(wait):
		h.t.Errorf("Run() did not return within %s of cancel", wait)
	}
}

func (h *harness) waitHellos(n int) []*pb.Envelope {
	h.t.Helper()
	topic := protocol.UpTopic(node, protocol.StreamHello)
	brokertest.WaitFor(h.t, wait, "hello", func() bool { return len(h.broker.Envelopes(topic)) >= n && h.link.Connected() })
	return h.broker.Envelopes(topic)
}

func TestConnectSendsHello(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b, b.ClientTLS(node), nil)
	hellos := h.waitHellos(1)

	conns := b.Conns()
	if len(conns) != 1 || conns[0].ClientID != node || conns[0].CommonName != node || !conns[0].Clean {
		t.Errorf("broker saw connections %+v, want one clean session with client ID and CN %q", conns, node)
	}
	got := hellos[0]
	if got.GetNodeId() != node || got.GetBootEpoch() != 3 || got.GetCapability() != protocol.CapabilityVersion || got.GetSeq() != 0 || got.GetSentAtMs() == 0 {
		t.Errorf("hello envelope header = %v, want node %q, epoch 3, capability %d, seq 0, a production time", got, node, protocol.CapabilityVersion)
	}
	want := &pb.Hello{Hostname: "cab-computer", CpuCores: 4, Labels: map[string]string{"role": "vehicle"}, ReportIntervalMs: 200}
	if diff := cmp.Diff(want, got.GetHello(), protocmp.Transform()); diff != "" {
		t.Errorf("hello mismatch (-want +got):\n%s", diff)
	}
	if n := h.logs.Count("connected"); n != 1 {
		t.Errorf("logged %q %d times, want 1", "connected", n)
	}
}

func TestPublish(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b, b.ClientTLS(node), nil)
	h.waitHellos(1)

	st := &stamp.Stamper{NodeID: node, BootEpoch: 3, Clock: clock.Real}
	rep := st.Stamp(&pb.Envelope{Seq: 1, Body: &pb.Envelope_Report{Report: &pb.ResourceReport{CpuCores: 4, CpuPermille: 250}}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.link.Publish(ctx, protocol.StreamReport, mustMarshal(t, rep)); err != nil {
		t.Fatalf("Publish(report) = %v", err)
	}
	topic := protocol.UpTopic(node, protocol.StreamReport)
	brokertest.WaitFor(t, wait, "report", func() bool { return len(b.Envelopes(topic)) == 1 })
	if diff := cmp.Diff(rep, b.Envelopes(topic)[0], protocmp.Transform()); diff != "" {
		t.Errorf("report on the broker mismatch (-want +got):\n%s", diff)
	}

	bad := []struct {
		name, stream string
		payload      []byte
	}{
		{"hello stream", protocol.StreamHello, mustMarshal(t, rep)},
		{"unknown stream", "telemetry", mustMarshal(t, rep)},
		{"empty payload", protocol.StreamReport, nil},
		{"oversized payload", protocol.StreamBatch, make([]byte, protocol.MaxPayload+1)},
	}
	for _, tt := range bad {
		if err := h.link.Publish(ctx, tt.stream, tt.payload); err == nil {
			t.Errorf("Publish(%s) = nil, want an error", tt.name)
		}
	}
	if s := h.link.Stats(); s.Published != 1 || s.PublishErrors != uint64(len(bad)) {
		t.Errorf("Stats() = %+v, want 1 published and %d publish errors", s, len(bad))
	}
}

// TestSend checks the direct path of unsequenced replies: a DesiredAck
// and a LogsResponse reach their up topics; anything the outbox must
// carry is refused.
func TestSend(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b, b.ClientTLS(node), nil)
	h.waitHellos(1)
	st := &stamp.Stamper{NodeID: node, BootEpoch: 3, Clock: clock.Real}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack := st.Stamp(&pb.Envelope{Body: &pb.Envelope_DesiredAck{DesiredAck: &pb.DesiredAck{Generation: 7}}})
	logs := st.Stamp(&pb.Envelope{Body: &pb.Envelope_LogsResponse{LogsResponse: &pb.LogsResponse{RequestId: "r1", Lines: []string{"a"}}}})
	for _, env := range []*pb.Envelope{ack, logs} {
		if err := h.link.Send(ctx, env); err != nil {
			t.Fatalf("Send(%s) = %v", protocol.BodyName(env), err)
		}
	}
	for _, w := range []struct {
		stream string
		env    *pb.Envelope
	}{{protocol.StreamDesired, ack}, {protocol.StreamLogs, logs}} {
		topic := protocol.UpTopic(node, w.stream)
		brokertest.WaitFor(t, wait, topic, func() bool { return len(b.Envelopes(topic)) == 1 })
		if diff := cmp.Diff(w.env, b.Envelopes(topic)[0], protocmp.Transform()); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", topic, diff)
		}
	}
	for _, env := range []*pb.Envelope{
		st.Stamp(&pb.Envelope{Body: &pb.Envelope_Report{Report: &pb.ResourceReport{}}}),
		st.Stamp(&pb.Envelope{Seq: 4, Body: &pb.Envelope_DesiredAck{DesiredAck: &pb.DesiredAck{}}}),
	} {
		if err := h.link.Send(ctx, env); err == nil {
			t.Errorf("Send(%v) = nil, want an error", env)
		}
	}
}

func TestPublishWhileOffline(t *testing.T) {
	l, err := New(Config{NodeID: node, Broker: "tls://127.0.0.1:1", TLS: &tls.Config{}})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	if err := l.Publish(context.Background(), protocol.StreamReport, []byte{1}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Publish() before Run = %v, want ErrNotConnected", err)
	}
}

// TestConnectionCallbacks checks that OnConnected and OnDisconnected
// bracket every connection, including the last one at shutdown.
func TestConnectionCallbacks(t *testing.T) {
	b := brokertest.Start(t)
	var (
		mu     sync.Mutex
		events []string
	)
	note := func(e string) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
		}
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), events...)
	}
	h := start(t, b, b.ClientTLS(node), func(c *Config) {
		c.OnConnected, c.OnDisconnected = note("up"), note("down")
	})
	h.waitHellos(1)
	brokertest.WaitFor(t, wait, "first connection reported", func() bool { return len(got()) == 1 })
	b.Restart()
	h.waitHellos(2)
	brokertest.WaitFor(t, wait, "second connection reported", func() bool { return len(got()) == 3 })
	h.stop()
	if diff := cmp.Diff([]string{"up", "down", "up", "down"}, got()); diff != "" {
		t.Errorf("connection callbacks (-want +got):\n%s", diff)
	}
}

func TestCleanShutdownSaysGoodbye(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b, b.ClientTLS(node), nil)
	h.waitHellos(1)
	h.stop()

	// The broker acks before it routes, so the goodbye may reach the
	// subscriber just after Publish returned.
	topic := protocol.UpTopic(node, protocol.StreamBye)
	brokertest.WaitFor(t, wait, "goodbye", func() bool { return len(b.Envelopes(topic)) > 0 })
	byes := b.Envelopes(topic)
	if len(byes) != 1 || byes[0].GetGoodbye().GetReason() != pb.Goodbye_REASON_SHUTDOWN {
		t.Fatalf("goodbyes after a clean stop = %v, want one REASON_SHUTDOWN and no last will", byes)
	}
	brokertest.WaitFor(t, wait, "client gone", func() bool { return !b.Connected(node) })
	if byes := b.Envelopes(topic); len(byes) != 1 {
		t.Errorf("goodbyes after disconnect = %v, want only the SHUTDOWN one", byes)
	}
}

func TestReconnectAfterBrokerRestart(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b, b.ClientTLS(node), nil)
	h.waitHellos(1)

	b.Restart()
	h.waitHellos(2)
	if s := h.link.Stats(); s.Connects != 2 || s.Disconnects != 1 {
		t.Errorf("Stats() = %+v, want 2 connects and 1 disconnect", s)
	}
	if n := h.logs.Count("connection lost"); n != 1 {
		t.Errorf("logged %q %d times, want 1", "connection lost", n)
	}
}

// cuttingDialer connects through a relay it can cut, as a dead cellular
// link would: both the agent and the broker see the connection end
// without an MQTT DISCONNECT.
type cuttingDialer struct {
	mu     sync.Mutex
	relays []net.Conn
}

func (d *cuttingDialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	up, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	agentSide, relaySide := net.Pipe()
	go func() { _, _ = io.Copy(up, relaySide); up.Close() }()
	go func() { _, _ = io.Copy(relaySide, up); relaySide.Close() }()
	d.mu.Lock()
	d.relays = append(d.relays, up, relaySide)
	d.mu.Unlock()
	return agentSide, nil
}

func (d *cuttingDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.relays {
		c.Close()
	}
	d.relays = nil
}

func TestAbruptLossPublishesWill(t *testing.T) {
	b := brokertest.Start(t)
	d := &cuttingDialer{}
	h := start(t, b, b.ClientTLS(node), func(c *Config) { c.Dial = d.Dial })
	h.waitHellos(1)

	d.cut()
	bye := protocol.UpTopic(node, protocol.StreamBye)
	brokertest.WaitFor(t, wait, "last will", func() bool { return len(b.Envelopes(bye)) == 1 })
	will := b.Envelopes(bye)[0]
	if will.GetGoodbye().GetReason() != pb.Goodbye_REASON_LOST || will.GetNodeId() != node || will.GetBootEpoch() != 3 {
		t.Errorf("last will = %v, want REASON_LOST from %q in boot 3", will, node)
	}
	h.waitHellos(2)
}

func TestUnknownCARetriesAndLogsOnce(t *testing.T) {
	b := brokertest.Start(t)
	stranger := brokertest.Start(t) // another fleet: its CA did not sign b's certificate
	h := start(t, b, stranger.ClientTLS(node), nil)

	brokertest.WaitFor(t, wait, "3 failed attempts", func() bool { return h.link.Stats().ConnectFailures >= 3 })
	if h.link.Connected() {
		t.Fatal("Connected() = true against a broker of an unknown CA")
	}
	if n := h.logs.Count("connect failed"); n != 1 {
		t.Errorf("logged %q %d times over %d attempts, want 1", "connect failed", n, h.link.Stats().ConnectFailures)
	}
	if s := h.link.Stats(); s.LastError == "" || len(b.Conns()) != 0 {
		t.Errorf("Stats() = %+v, broker connections %v: want a last error and no MQTT session", s, b.Conns())
	}
}

func TestWelcomeAndMessages(t *testing.T) {
	b := brokertest.Start(t)
	var (
		mu  sync.Mutex
		got []*pb.Envelope
	)
	h := start(t, b, b.ClientTLS(node), func(c *Config) {
		c.OnMessage = func(env *pb.Envelope) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, env)
		}
	})
	h.waitHellos(1)

	down := protocol.DownTopic(node, protocol.StreamAck)
	welcome := &pb.Envelope{NodeId: node, Body: &pb.Envelope_Welcome{Welcome: &pb.Welcome{Capability: 1, ServerTimeMs: time.Now().UnixMilli(), Watermark: 7}}}
	ack := &pb.Envelope{NodeId: node, Body: &pb.Envelope_Ack{Ack: &pb.Ack{Cumulative: 9}}}
	for _, p := range [][]byte{mustMarshal(t, welcome), []byte("garbage"), []byte("more garbage"), mustMarshal(t, welcome), mustMarshal(t, ack)} {
		if err := b.Publish(down, p); err != nil {
			t.Fatalf("broker Publish() = %v", err)
		}
	}
	brokertest.WaitFor(t, wait, "3 valid messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3
	})
	brokertest.WaitFor(t, wait, "2 rejections", func() bool { return h.link.Stats().InboundRejected == 2 })
	if n := h.logs.Count("welcome"); n != 1 {
		t.Errorf("logged %q %d times for 2 welcomes on one connection, want 1", "welcome", n)
	}
	if n := h.logs.Count("message from the cloud rejected"); n != 1 {
		t.Errorf("logged 2 malformed messages %d times, want 1", n)
	}
	// paho runs handlers concurrently (OrderMatters=false), so messages
	// may be handed over in any order.
	mu.Lock()
	defer mu.Unlock()
	var welcomes, acks int
	for _, env := range got {
		switch {
		case env.GetWelcome().GetWatermark() == 7:
			welcomes++
		case env.GetAck().GetCumulative() == 9:
			acks++
		}
	}
	if welcomes != 2 || acks != 1 {
		t.Errorf("OnMessage got %v, want 2 welcomes and 1 ack", got)
	}
}

func mustMarshal(t *testing.T, env *pb.Envelope) []byte {
	t.Helper()
	b, err := protocol.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBackoffUsesClock checks that retries wait on the injected clock: no
// second attempt until the fake clock moves.
func TestBackoffUsesClock(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))
	var (
		mu    sync.Mutex
		dials int
	)
	l, err := New(Config{
		NodeID: node, Broker: "tls://edge-bridge.invalid:8883", TLS: &tls.Config{},
		Reconnect: backoff.Policy{Min: time.Second, Max: 4 * time.Second, ResetAfter: 30 * time.Second},
		Clock:     fake,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			dials++
			return nil, errors.New("network is unreachable")
		},
	})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return dials
	}
	brokertest.WaitFor(t, wait, "first attempt", func() bool { return l.Stats().ConnectFailures == 1 })
	if n := count(); n != 1 {
		t.Fatalf("%d dials before the clock moved, want 1", n)
	}
	for want := 2; want <= 4; want++ {
		brokertest.WaitFor(t, wait, "next attempt", func() bool {
			fake.Advance(4 * time.Second) // the policy's maximum
			return l.Stats().ConnectFailures >= uint64(want)
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v after cancel, want nil", err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "bad node", cfg: Config{NodeID: "Truck 42", Broker: "tls://h:8883", TLS: &tls.Config{}}},
		{name: "http broker", cfg: Config{NodeID: node, Broker: "http://h", TLS: &tls.Config{}}},
		{name: "tls without config", cfg: Config{NodeID: node, Broker: "tls://h:8883"}},
		{name: "plaintext not allowed", cfg: Config{NodeID: node, Broker: "tcp://h:1883"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Errorf("New(%+v) = nil error, want an error", tt.cfg)
			}
		})
	}
}

func TestParseBroker(t *testing.T) {
	tests := []struct {
		in      string
		want    Broker
		wantErr bool
	}{
		{in: "tls://bridge.example:8883", want: Broker{Addr: "bridge.example:8883", Host: "bridge.example", TLS: true}},
		{in: "ssl://bridge.example", want: Broker{Addr: "bridge.example:8883", Host: "bridge.example", TLS: true}},
		{in: "mqtts://[::1]:9883", want: Broker{Addr: "[::1]:9883", Host: "::1", TLS: true}},
		{in: "tcp://127.0.0.1", want: Broker{Addr: "127.0.0.1:1883", Host: "127.0.0.1"}},
		{in: "http://bridge.example", wantErr: true},
		{in: "bridge.example:8883", wantErr: true},
		{in: "tls://:8883", wantErr: true},
		{in: "tls://bridge.example:0", wantErr: true},
		{in: "tls://bridge.example:99999", wantErr: true},
		{in: "tls://bridge.example:", wantErr: true},
		{in: "tls://user:pw@bridge.example", wantErr: true},
		{in: "tls://bridge.example/mqtt", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBroker(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseBroker(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseBroker(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}
