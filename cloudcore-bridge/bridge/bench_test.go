package bridge

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/internal/loadgen"
	"github.com/skyedge/skyedge/protocol"
)

// BenchmarkIngestTLS measures resource reports per second through the
// embedded broker over mutual TLS, QoS 1, from benchConns nodes with
// benchWindow unacknowledged messages each:
//
//   - raw: NoopIngest, the broker, TLS and the bridge's auth/ACL hook only;
//   - bridge: full ingest (decode, validate, registry update, write-behind
//     to Badger).
//
// Both publish the same encoded envelopes. Run both in one invocation:
//
//	go test ./cloudcore-bridge/bridge -run '^$' -bench IngestTLS -benchtime 200000x
func BenchmarkIngestTLS(b *testing.B) {
	const benchConns, benchWindow = 64, 32
	p := newPKI(b)
	tlsOf := make(map[string]*tls.Config, benchConns)
	payloadOf := make(map[string][]byte, benchConns)
	for i := range benchConns {
		node := loadgen.NodeID(i)
		tlsOf[node] = p.clientTLS(b, node)
		env := report(node, 250)
		env.SentAtMs = 0 // the same bytes for every run; latency is not measured here
		raw, err := proto.Marshal(env)
		if err != nil {
			b.Fatal(err)
		}
		payloadOf[node] = raw
	}
	for _, mode := range []struct {
		name string
		noop bool
	}{{"raw", true}, {"bridge", false}} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := embeddedConfig(b, p)
			cfg.NoopIngest = mode.noop
			cfg.FlushInterval = 0 // the production default
			br := start(b, cfg)
			ctx := context.Background()
			pool, err := loadgen.Dial(ctx, loadgen.Config{
				Addr: br.MQTTAddr(), Conns: benchConns, Window: benchWindow,
				TLS:     func(node string) (*tls.Config, error) { return tlsOf[node], nil },
				Topic:   func(node string) string { return protocol.UpTopic(node, protocol.StreamReport) },
				Payload: func(node string) ([]byte, error) { return payloadOf[node], nil },
			})
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()

			b.ResetTimer()
			res, err := pool.Publish(ctx, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatalf("Publish(%d) = %+v, %v", b.N, res, err)
			}
			b.ReportMetric(res.Rate(), "msgs/s")

			if mode.noop {
				return
			}
			// Everything acknowledged was applied.
			if got := metric(b, br, `skyedge_bridge_messages_total{stream="report"}`); got != float64(b.N) {
				b.Fatalf("bridge applied %v reports, want %d", got, b.N)
			}
			if n, _ := getNode(b, br, loadgen.NodeID(0)); n.LastReport == nil || n.LastReport.CPUPermille != 250 {
				b.Fatalf("node %s last report = %+v, want the benchmark's", loadgen.NodeID(0), n.LastReport)
			}
			if got := br.logs.count("rejected"); got != 0 {
				b.Fatalf("%d rejections logged during the benchmark", got)
			}
		})
	}
}
