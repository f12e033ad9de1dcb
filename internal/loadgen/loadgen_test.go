package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/internal/mqttwire"
	"github.com/skyedge/skyedge/internal/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder accepts everything and records who connected and what was
// published.
type recorder struct {
	mqtt.HookBase
	reject   bool
	mu       sync.Mutex
	clients  []string
	messages atomic.Int64
	badTopic atomic.Int64
}

func (r *recorder) ID() string { return "recorder" }

func (r *recorder) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish
}

func (r *recorder) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients = append(r.clients, cl.ID)
	return true
}

func (r *recorder) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (r *recorder) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if r.reject {
		return pk, packets.ErrRejectPacket
	}
	if pk.TopicName != "t/"+cl.ID || !bytes.Equal(pk.Payload, []byte("payload of "+cl.ID)) || pk.FixedHeader.Qos != 1 {
		r.badTopic.Add(1)
	}
	r.messages.Add(1)
	return pk, nil
}

// broker starts mochi on a free port, with TLS when tc is not nil.
func broker(t *testing.T, hook mqtt.Hook, tc *tls.Config) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0", TLSConfig: tc})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return l.Address()
}

func config(addr string, conns, window int) Config {
	return Config{
		Addr: addr, Conns: conns, Window: window,
		Topic:   func(node string) string { return "t/" + node },
		Payload: func(node string) ([]byte, error) { return []byte("payload of " + node), nil },
	}
}

func TestPublishTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := ca.IssueFiles(dir, pki.Options{Name: "broker", Server: true, Hosts: []string{"127.0.0.1"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stc, err := pki.ServerTLS(srvCert, srvKey, dir+"/"+pki.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	hook := &recorder{}
	cfg := config(broker(t, hook, stc), 8, 16)
	var mu sync.Mutex
	certs := map[string]bool{}
	cfg.TLS = func(node string) (*tls.Config, error) {
		iss, err := ca.Issue(pki.Options{Name: node}, time.Now())
		if err != nil {
			return nil, err
		}
		cert, err := iss.TLSCertificate()
		mu.Lock()
		certs[node] = true
		mu.Unlock()
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.CertPool(), ServerName: "127.0.0.1"}, err
	}
	ctx := context.Background()
	p, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	defer p.Close()

	const total = 5003 // not a multiple of the connections
	res, err := p.Publish(ctx, total)
	if err != nil {
		t.Fatalf("Publish(%d) = %v", total, err)
	}
	if res.Acked != total || res.Rate() <= 0 {
		t.Errorf("Publish(%d) = %+v (rate %v), want %d acked at a positive rate", total, res, res.Rate(), total)
	}
	if got := hook.messages.Load(); got != total {
		t.Errorf("broker received %d messages, want %d", got, total)
	}
	if got := hook.badTopic.Load(); got != 0 {
		t.Errorf("%d messages had the wrong topic, payload or QoS", got)
	}
	// A second run on the same connections wraps nothing and works too.
	if res, err := p.Publish(ctx, 800); err != nil || res.Acked != 800 {
		t.Errorf("second Publish(800) = %+v, %v", res, err)
	}

	hook.mu.Lock()
	clients := slices.Sorted(slices.Values(hook.clients))
	hook.mu.Unlock()
	want := []string{}
	for i := range 8 {
		want = append(want, NodeID(i))
	}
	if !slices.Equal(clients, want) || len(certs) != 8 {
		t.Errorf("client IDs %v with %d certificates, want %v each with its own", clients, len(certs), want)
	}
}

func TestPacketIDsWrap(t *testing.T) {
	hook := &recorder{}
	p, err := Dial(context.Background(), config(broker(t, hook, nil), 1, 64))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const total = 70000 // more than 65535 IDs on one connection
	res, err := p.Publish(context.Background(), total)
	if err != nil || res.Acked != total {
		t.Fatalf("Publish(%d) = %+v, %v; want all acked", total, res, err)
	}
}

func TestPublishWithoutPubacksStopsAtDeadline(t *testing.T) {
	hook := &recorder{reject: true}
	p, err := Dial(context.Background(), config(broker(t, hook, nil), 2, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := p.Publish(ctx, 100)
	if err == nil || res.Acked != 0 {
		t.Errorf("Publish to a broker withholding PUBACKs = %+v, %v; want an error and nothing acked", res, err)
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no connections", config("127.0.0.1:1", 0, 1)},
		{"window too large", config("127.0.0.1:1", 1, 70000)},
		{"no payload", Config{Addr: "127.0.0.1:1", Conns: 1, Window: 1, Topic: func(string) string { return "t" }}},
	}
	for _, tt := range tests {
		if _, err := Dial(context.Background(), tt.cfg); err == nil {
			t.Errorf("%s: Dial() = nil error", tt.name)
		}
	}
	// A broker that refuses the connection.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		mqttwire.ReadPacket(bufio.NewReader(c), nil, 0)
		c.Write([]byte{mqttwire.Connack << 4, 2, 0, 5}) // not authorised
	}()
	_, err = Dial(context.Background(), config(l.Addr().String(), 1, 1))
	if err == nil || !strings.Contains(err.Error(), "return code 5") {
		t.Errorf("Dial() to a refusing broker = %v, want the return code", err)
	}
}

// numbered records, per client, the numbers its messages carry in front
// of the fixed payload.
type numbered struct {
	mqtt.HookBase
	mu   sync.Mutex
	nums map[string][]uint64
	bad  atomic.Int64
}

func (r *numbered) ID() string { return "numbered" }

func (r *numbered) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish
}

func (r *numbered) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (r *numbered) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

func (r *numbered) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	num, rest, ok := strings.Cut(string(pk.Payload), ":")
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || !ok || rest != "payload of "+cl.ID || pk.TopicName != "t/"+cl.ID {
		r.bad.Add(1)
		return pk, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nums[cl.ID] = append(r.nums[cl.ID], n)
	return pk, nil
}

func TestPrefixNumbersMessages(t *testing.T) {
	hook := &numbered{nums: map[string][]uint64{}}
	cfg := config(broker(t, hook, nil), 3, 8)
	cfg.Prefix = func(_ string, n uint64, dst []byte) []byte {
		// Long prefixes now and then move the remaining length across
		// its one-byte encoding (127).
		if n%50 == 0 {
			dst = append(dst, strings.Repeat("0", 200)...)
		}
		return append(strconv.AppendUint(dst, n, 10), ':')
	}
	p, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, total := range []int{300, 150} {
		if res, err := p.Publish(context.Background(), total); err != nil || res.Acked != total {
			t.Fatalf("Publish(%d) = %+v, %v", total, res, err)
		}
	}
	if got := hook.bad.Load(); got != 0 {
		t.Errorf("%d messages did not carry prefix and payload", got)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for i := range 3 {
		node := NodeID(i)
		var want []uint64
		for n := range uint64(150) {
			want = append(want, n+1)
		}
		if got := hook.nums[node]; !slices.Equal(got, want) {
			t.Errorf("numbers of %s = %v, want 1..150 in order over both runs", node, got)
		}
	}
}
