package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/agent/internal/logtest"
	"github.com/skyedge/skyedge/internal/backoff"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Badger leaves two goroutines behind when it fails to open a damaged
// database, as TestCorruptOutbox makes it; they are Badger's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/dgraph-io/badger/v4.(*DB).monitorCache"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2/z.(*AllocatorPool).freeupAllocators"),
	)
}

const (
	node = "truck-042"
	// wait is generous: these tests also run under qemu-user emulation.
	wait     = 60 * time.Second
	interval = 200 * time.Millisecond
)

var (
	helloTopic = protocol.UpTopic(node, protocol.StreamHello)
	byeTopic   = protocol.UpTopic(node, protocol.StreamBye)
)

// plentyFree is the outbox's DiskFree in tests: room to spare, whatever
// the machine's disk.
func plentyFree(string) (free, total uint64, err error) { return 100 << 30, 200 << 30, nil }

func testConfig(t *testing.T, b *brokertest.Broker, tlsCfg *tls.Config, dataDir string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = node
	cfg.Labels = map[string]string{"role": "vehicle", "zone": "eu-west"}
	cfg.Broker = b.URL()
	cfg.TLS = tlsCfg
	cfg.ReportInterval = interval
	cfg.DataDir = dataDir
	cfg.Reconnect = backoff.Policy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, ResetAfter: 30 * time.Second}
	cfg.Version = "1.2.3-test"
	cfg.Logger = logtest.New(t).Logger()
	cfg.OutboxStorage.DiskFree = plentyFree
	cfg.Drain.ResumeJitter = 20 * time.Millisecond
	cfg.Drain.RetryDelay = 50 * time.Millisecond
	cfg.Drain.MaxRetryDelay = 500 * time.Millisecond
	return cfg
}

// running is an Agent whose Run is in progress.
type running struct {
	*Agent
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: a, t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run() = %v after cancel, want nil", err)
		}
	case <-time.After(wait):
		r.t.Errorf("Run() did not return within %s of cancel", wait)
	}
}

func waitCount(t *testing.T, b *brokertest.Broker, topic string, n int) []*pb.Envelope {
	t.Helper()
	brokertest.WaitFor(t, wait, topic, func() bool { return len(b.Envelopes(topic)) >= n })
	return b.Envelopes(topic)
}

// waitApplied waits until the cloud has applied n of node's messages.
func waitApplied(t *testing.T, c *brokertest.Cloud, n int) []brokertest.Applied {
	t.Helper()
	brokertest.WaitFor(t, wait, fmt.Sprintf("%d messages applied by the cloud", n), func() bool { return c.Count(node) >= n })
	return c.History(node)
}

// reportEnvelopes decodes every report the broker routed for node, alone
// or in a batch, in the order they were routed.
func reportEnvelopes(t *testing.T, b *brokertest.Broker) []*pb.Envelope {
	t.Helper()
	var out []*pb.Envelope
	for _, topic := range []string{protocol.UpTopic(node, protocol.StreamReport), protocol.UpTopic(node, protocol.StreamBatch)} {
		for _, env := range b.Envelopes(topic) {
			if bt := env.GetBatch(); bt != nil {
				for _, e := range bt.GetEnvelopes() {
					if e.GetReport() != nil {
						out = append(out, e)
					}
				}
			} else if env.GetReport() != nil {
				out = append(out, env)
			}
		}
	}
	return out
}

// TestHelloAndReports runs the agent with the real host sampler.
func TestHelloAndReports(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	a := start(t, testConfig(t, b, b.ClientTLS(node), t.TempDir()))

	hello := waitCount(t, b, helloTopic, 1)[0]
	if conns := b.Conns(); len(conns) != 1 || conns[0].ClientID != node || conns[0].CommonName != node {
		t.Errorf("broker connections = %+v, want client ID and CN %q", conns, node)
	}
	h := hello.GetHello()
	if hello.GetBootEpoch() != 1 || h.GetHostname() == "" || h.GetCpuCores() == 0 || h.GetMemTotalKib() == 0 ||
		h.GetAgentVersion() != "1.2.3-test" || h.GetReportIntervalMs() != 200 || h.GetLabels()["zone"] != "eu-west" {
		t.Errorf("hello = %v, want epoch 1, the host's facts, version, labels and a 200 ms interval", hello)
	}
	if id := h.GetOutboxId(); len(id) != 16 || id != a.Stats().Outbox.ID {
		t.Errorf("hello outbox ID = %q, want the outbox's 16-digit ID %q", id, a.Stats().Outbox.ID)
	}

	waitApplied(t, cloud, 3)
	reports := reportEnvelopes(t, b)
	for i, env := range reports {
		// Reports leave out what the hello carries; the bridge restores it.
		if r := env.GetReport(); r.GetMemTotalKib() != 0 && r.GetMemTotalKib() == h.GetMemTotalKib() {
			t.Errorf("report %d repeats the hello's memory total: %v", i, r)
		}
		r := protocol.ExpandReport(env.GetReport(), h, env.GetSentAtMs())
		if env.GetNodeId() != node || env.GetBootEpoch() != 1 || env.GetSeq() == 0 || env.GetCapability() != protocol.CapabilityVersion {
			t.Errorf("report %d header = %v, want node %q, epoch 1, a sequence number", i, env, node)
		}
		if r.GetMemTotalKib() == 0 || r.GetIntervalMs() == 0 || r.GetCpuPermille() > 1000 {
			t.Errorf("report %d = %v, want memory and rates over an interval", i, r)
		}
		if i > 0 {
			if gap := env.GetSentAtMs() - reports[i-1].GetSentAtMs(); gap < interval.Milliseconds()/2 {
				t.Errorf("reports %d and %d produced %d ms apart, want about %s", i-1, i, gap, interval)
			}
		}
	}
	if !a.Connected() {
		t.Errorf("Connected() = false while reporting")
	}
	a.stop()

	byes := waitCount(t, b, byeTopic, 1)
	if len(byes) != 1 || byes[0].GetGoodbye().GetReason() != pb.Goodbye_REASON_SHUTDOWN {
		t.Errorf("goodbyes = %v, want one REASON_SHUTDOWN", byes)
	}
	if s := a.Stats(); s.ReportsQueued < 3 || s.ReportsRefused+s.ReportsFailed != 0 || s.Connects != 1 || s.PublishErrors != 0 || s.Drain.Envelopes < 3 {
		t.Errorf("Stats() = %+v, want >= 3 reports queued and sent, none lost, 1 connect, no publish errors", s)
	}
}

func TestReconnectAfterBrokerRestart(t *testing.T) {
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	cfg := testConfig(t, b, b.ClientTLS(node), t.TempDir())
	cfg.Source = &fakeSource{}
	a := start(t, cfg)
	waitApplied(t, cloud, 1)

	b.Restart()
	hellos := waitCount(t, b, helloTopic, 2)
	if hellos[1].GetBootEpoch() != hellos[0].GetBootEpoch() {
		t.Errorf("boot epoch changed on reconnect: %d, then %d", hellos[0].GetBootEpoch(), hellos[1].GetBootEpoch())
	}
	if id0, id1 := hellos[0].GetHello().GetOutboxId(), hellos[1].GetHello().GetOutboxId(); id0 == "" || id0 != id1 {
		t.Errorf("outbox ID changed on reconnect: %q, then %q", id0, id1)
	}
	after := cloud.Count(node)
	waitApplied(t, cloud, after+2)
	if s := a.Stats(); s.Connects != 2 || s.Disconnects != 1 {
		t.Errorf("Stats() = %+v, want 2 connects and 1 disconnect", s)
	}
}

func TestBootEpochAcrossRestarts(t *testing.T) {
	b := brokertest.Start(t)
	dir := t.TempDir()
	tlsCfg := b.ClientTLS(node)
	for want := uint64(1); want <= 2; want++ {
		cfg := testConfig(t, b, tlsCfg, dir)
		cfg.Source = &fakeSource{}
		a := start(t, cfg)
		hellos := waitCount(t, b, helloTopic, int(want))
		if got := hellos[want-1].GetBootEpoch(); got != want {
			t.Errorf("start %d: hello boot epoch = %d, want %d", want, got, want)
		}
		a.stop()
	}
}

func TestNewRejectsCertificateOfAnotherNode(t *testing.T) {
	b := brokertest.Start(t)
	cfg := testConfig(t, b, b.ClientTLS("truck-043"), t.TempDir())
	_, err := New(cfg)
	if err == nil {
		t.Fatal("New() with truck-043's certificate for node truck-042 = nil error")
	}
	for _, want := range []string{`"truck-043"`, `"truck-042"`, "common name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New() error = %q, want it to mention %s", err, want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	b := brokertest.Start(t)
	tlsCfg := b.ClientTLS(node)
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{name: "node ID", mod: func(c *Config) { c.NodeID = "Truck 42" }, want: "node ID"},
		{name: "data dir", mod: func(c *Config) { c.DataDir = "" }, want: "DataDir"},
		{name: "plaintext", mod: func(c *Config) { c.Broker = "tcp://127.0.0.1:1883" }, want: "AllowPlaintext"},
		{name: "no TLS", mod: func(c *Config) { c.TLS = nil }, want: "TLS configuration missing"},
		{name: "no client certificate", mod: func(c *Config) { c.TLS = &tls.Config{} }, want: "no client certificate"},
		{name: "label", mod: func(c *Config) { c.Labels = map[string]string{"": "x"} }, want: "labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, b, tlsCfg, t.TempDir())
			tt.mod(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	b := brokertest.Start(t)
	cfg := testConfig(t, b, b.ClientTLS(node), t.TempDir())
	cfg.Source = &fakeSource{}
	a := start(t, cfg)
	waitCount(t, b, helloTopic, 1)
	if err := a.Run(context.Background()); err == nil {
		t.Error("second Run() = nil, want an error")
	}
}
