package bridge

import (
	"context"
	"crypto/tls"
	"slices"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/internal/loadgen"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// BenchmarkIngestTLS measures resource reports per second through the
// embedded broker over mutual TLS, QoS 1, from benchConns nodes with
// benchWindow unacknowledged messages each, side by side:
//
//   - raw: NoopIngest, the broker, TLS and the bridge's auth/ACL hook only;
//   - bridge: full ingest (decode, validate, registry update, write-behind
//     to Badger).
//
// Both bridges run in the same process and publish the same encoded
// envelopes (a report as an agent sends it, static quantities left to the
// hello), each with the next sequence number of its node, so that the
// bridge applies every one (and acknowledges them after each flush) instead
// of dropping repeats as duplicates. The b.N messages of each mode are sent in alternating rounds, so
// whatever else the machine does weighs on both alike; the figures are
// medians over rounds. cpu-ratio compares the process CPU time per message
// (publisher included in both), which other load does not distort:
//
//	go test ./cloudcore-bridge/bridge -run '^$' -bench IngestTLS -benchtime 400000x
func BenchmarkIngestTLS(b *testing.B) {
	const benchConns, benchWindow, rounds = 64, 32, 8
	p := newPKI(b)
	tlsOf := make(map[string]*tls.Config, benchConns)
	payloadOf := make(map[string][]byte, benchConns)
	helloOf := make(map[string]*pb.Envelope, benchConns)
	for i := range benchConns {
		node := loadgen.NodeID(i)
		tlsOf[node] = p.clientTLS(b, node)
		env := report(node, 250)
		env.SentAtMs = 0 // the same bytes for every run; latency is not measured here
		env.Seq = 0      // numbered per message by seqPrefix
		h := hello(node, nil)
		h.GetHello().BootTimeS = 1
		protocol.SetHelloStatics(h.GetHello(), env.GetReport())
		protocol.CompactReport(env.GetReport(), h.GetHello())
		helloOf[node] = h
		raw, err := proto.Marshal(env)
		if err != nil {
			b.Fatal(err)
		}
		payloadOf[node] = raw
	}
	type side struct {
		name  string
		br    *testBridge
		pool  *loadgen.Pool
		rates []float64
		cpu   time.Duration
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var sides []*side
	for _, noop := range []bool{true, false} {
		cfg := embeddedConfig(b, p)
		cfg.NoopIngest = noop
		cfg.FlushInterval = 0 // the production default
		s := &side{name: map[bool]string{true: "raw", false: "bridge"}[noop], br: start(b, cfg)}
		// Each node says hello first, as an agent does: the hello carries the
		// static quantities the reports leave out.
		for node, conf := range tlsOf {
			sim, err := dial(b, "tls://"+s.br.MQTTAddr(), node, conf)
			if err != nil {
				b.Fatal(err)
			}
			sim.send(b, helloOf[node])
			sim.client.Disconnect(100)
		}
		pool, err := loadgen.Dial(ctx, loadgen.Config{
			Addr: s.br.MQTTAddr(), Conns: benchConns, Window: benchWindow,
			TLS:     func(node string) (*tls.Config, error) { return tlsOf[node], nil },
			Topic:   func(node string) string { return protocol.UpTopic(node, protocol.StreamReport) },
			Payload: func(node string) ([]byte, error) { return payloadOf[node], nil },
			Prefix:  seqPrefix,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		s.pool = pool
		sides = append(sides, s)
	}
	perRound := max(b.N/rounds, 1)
	b.ResetTimer()
	var ratios []float64
	for range rounds {
		for _, s := range sides {
			before := cpuTime()
			res, err := s.pool.Publish(ctx, perRound)
			if err != nil {
				b.Fatalf("%s: Publish(%d) = %+v, %v", s.name, perRound, res, err)
			}
			s.cpu += cpuTime() - before
			s.rates = append(s.rates, res.Rate())
		}
		ratios = append(ratios, sides[1].rates[len(sides[1].rates)-1]/sides[0].rates[len(sides[0].rates)-1])
	}
	b.StopTimer()
	raw, full := sides[0], sides[1]
	b.ReportMetric(median(raw.rates), "raw-msgs/s")
	b.ReportMetric(median(full.rates), "bridge-msgs/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(float64(raw.cpu)/float64(full.cpu), "cpu-ratio")
	b.ReportMetric(float64(full.cpu.Nanoseconds())/float64(perRound*rounds), "bridge-cpu-ns/msg")

	// Everything acknowledged was applied.
	want := float64(perRound * rounds)
	if got := metric(b, full.br, `skyedge_bridge_messages_total{stream="report"}`); got != want {
		b.Fatalf("bridge applied %v reports, want %v", got, want)
	}
	if n, _ := getNode(b, full.br, loadgen.NodeID(0)); n.LastReport == nil || n.LastReport.CPUPermille != 250 || n.LastReport.MemTotalKiB == 0 {
		b.Fatalf("node %s last report = %+v, want the benchmark's, expanded", loadgen.NodeID(0), n.LastReport)
	}
	if got := full.br.logs.count("rejected"); got != 0 {
		b.Fatalf("%d rejections logged during the benchmark", got)
	}
	// Every message was new, and each node's set is one contiguous run.
	if got := metric(b, full.br, "skyedge_bridge_duplicates_total"); got != 0 {
		b.Fatalf("%v duplicates, want none: every message has its own sequence number", got)
	}
	var applied uint64
	for i := range benchConns {
		n, _ := getNode(b, full.br, loadgen.NodeID(i))
		if n.Applied.Watermark != n.Counters.Applied || len(n.Applied.Ranges) != 0 {
			b.Fatalf("node %s: applied %d, watermark %d, ranges %v; want one run from 1", n.ID, n.Counters.Applied, n.Applied.Watermark, n.Applied.Ranges)
		}
		applied += n.Counters.Applied
	}
	if applied != uint64(want) {
		b.Fatalf("nodes applied %d durable messages, want %v", applied, want)
	}
}

// seqPrefix numbers a node's n-th message as its outbox does: the
// envelope's seq field, placed before the rest of the encoded envelope
// (protobuf fields may come in any order).
func seqPrefix(_ string, n uint64, dst []byte) []byte {
	return protowire.AppendVarint(protowire.AppendTag(dst, seqField, protowire.VarintType), n)
}

// seqField is the field number of Envelope.seq.
var seqField = new(pb.Envelope).ProtoReflect().Descriptor().Fields().ByName("seq").Number()

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
