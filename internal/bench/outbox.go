package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// OutboxConfig configures the outbox scenario.
type OutboxConfig struct {
	// Messages is the number of resource reports enqueued (100,000 when
	// 0; the default telemetry quota holds about 240,000).
	Messages int
	// Producers is the number of goroutines appending at once (1 when 0:
	// an agent's reporter).
	Producers int
	// Page is the most items one drain step reads before acknowledging
	// them (256 when 0).
	Page int
}

// OutboxResult is the outcome of the outbox scenario.
type OutboxResult struct {
	Scenario string `json:"scenario"`
	// EnqueuePerSec is the rate of outbox Appends of reports on Badger
	// (sync/outbox/badgerq), until they are synced to disk.
	EnqueuePerSec float64 `json:"enqueue_per_sec"`
	// RawBadgerPerSec writes the same encoded reports straight into
	// Badger with the same options, one transaction each, synced once at
	// the end: what the outbox's bookkeeping costs on top.
	RawBadgerPerSec float64 `json:"raw_badger_per_sec"`
	// DrainPerSec is the rate of reading the backlog in pages (Pending)
	// and acknowledging each page (Ack), as a drainer does.
	DrainPerSec float64 `json:"drain_per_sec"`

	Messages, Producers, Page int `json:"-"`
	PayloadBytes              int `json:"-"` // mean encoded report
}

// WriteText prints the result for people.
func (r OutboxResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "outbox: %d reports of %d bytes, %d producer(s), drained %d at a time\n", r.Messages, r.PayloadBytes, r.Producers, r.Page)
	fmt.Fprintf(w, "  enqueue    %10.0f reports/s (outbox Append on Badger, until synced)\n", r.EnqueuePerSec)
	fmt.Fprintf(w, "  raw Badger %10.0f reports/s (one transaction each, synced at the end)\n", r.RawBadgerPerSec)
	fmt.Fprintf(w, "  drain      %10.0f reports/s (Pending + Ack)\n", r.DrainPerSec)
}

// Outbox runs the outbox scenario in a scratch directory.
func Outbox(ctx context.Context, env Env, cfg OutboxConfig) (OutboxResult, error) {
	if cfg.Messages <= 0 {
		cfg.Messages = 100_000
	}
	cfg.Producers = max(cfg.Producers, 1)
	if cfg.Page <= 0 {
		cfg.Page = 256
	}
	res := OutboxResult{Scenario: "outbox", Messages: cfg.Messages, Producers: cfg.Producers, Page: cfg.Page}
	log := env.logger().With("scenario", "outbox")
	dir, cleanup, err := env.workDir("outbox")
	if err != nil {
		return res, err
	}
	defer cleanup()
	envs := reportEnvelopes(cfg.Messages)
	for _, e := range envs {
		res.PayloadBytes += proto.Size(e)
	}
	res.PayloadBytes /= len(envs)

	log.Info("raw Badger", "messages", cfg.Messages)
	if res.RawBadgerPerSec, err = rawBadger(ctx, filepath.Join(dir, "raw"), envs, cfg.Producers); err != nil {
		return res, err
	}
	log.Info("outbox enqueue and drain", "messages", cfg.Messages)
	if err := outboxRates(ctx, filepath.Join(dir, "outbox"), envs, cfg, &res); err != nil {
		return res, err
	}
	return res, nil
}

// reportEnvelopes makes n reports as one node's agent sends them.
func reportEnvelopes(n int) []*pb.Envelope {
	var prod production
	src := newSimSource("outbox-bench", &prod)
	hello, _ := src.Facts(context.Background())
	now := time.Now()
	first, _ := src.Sample(context.Background(), now)
	protocol.SetHelloStatics(hello, first)
	out := make([]*pb.Envelope, n)
	for i := range out {
		at := now.Add(time.Duration(i) * time.Second)
		r, _ := src.Sample(context.Background(), at)
		out[i] = &pb.Envelope{
			NodeId: "outbox-bench", BootEpoch: 1, SentAtMs: at.UnixMilli(), Capability: protocol.CapabilityVersion,
			Body: &pb.Envelope_Report{Report: protocol.CompactReport(r, hello)},
		}
	}
	return out
}

// split calls fn for each of p goroutines with its share of envs.
func split(ctx context.Context, envs []*pb.Envelope, p int, fn func(ctx context.Context, part []*pb.Envelope) error) error {
	g, ctx := errgroup.WithContext(ctx)
	for k := range p {
		lo, hi := k*len(envs)/p, (k+1)*len(envs)/p
		g.Go(func() error { return fn(ctx, envs[lo:hi]) })
	}
	return g.Wait()
}

// rawBadger writes the reports into Badger with the outbox's edge
// profile, one transaction each, and syncs at the end.
func rawBadger(ctx context.Context, dir string, envs []*pb.Envelope, producers int) (float64, error) {
	o := badgerq.DefaultOptions(dir)
	db, err := badger.Open(badger.DefaultOptions(dir).
		WithMemTableSize(o.MemTableSize).WithNumMemtables(2).
		WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4).
		WithBlockCacheSize(0).WithIndexCacheSize(0).WithCompression(options.None).
		WithValueLogFileSize(o.ValueLogFileSize).WithValueThreshold(1 << 10).
		WithNumCompactors(2).WithMetricsEnabled(false).
		WithSyncWrites(false).WithDetectConflicts(false).WithLogger(nil))
	if err != nil {
		return 0, fmt.Errorf("bench outbox: open badger: %w", err)
	}
	var (
		mu  sync.Mutex
		seq uint64
	)
	start := time.Now()
	err = split(ctx, envs, producers, func(ctx context.Context, part []*pb.Envelope) error {
		var key [8]byte
		for _, e := range part {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			seq++
			binary.BigEndian.PutUint64(key[:], seq)
			e.Seq = seq
			mu.Unlock()
			val, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key[:], val) }); err != nil {
				return fmt.Errorf("bench outbox: badger write: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		err = db.Sync()
	}
	elapsed := time.Since(start)
	for _, e := range envs {
		e.Seq = 0
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return float64(len(envs)) / elapsed.Seconds(), nil
}

// outboxRates appends the reports to a Badger outbox, then drains it.
func outboxRates(ctx context.Context, dir string, envs []*pb.Envelope, cfg OutboxConfig, res *OutboxResult) error {
	ocfg := outbox.DefaultConfig()
	ocfg.NodeID, ocfg.BootEpoch = "outbox-bench", 1
	q, err := badgerq.Open(badgerq.DefaultOptions(dir), ocfg)
	if err != nil {
		return fmt.Errorf("bench outbox: %w", err)
	}
	rctx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- q.Run(rctx) }()
	err = func() error {
		start := time.Now()
		err := split(ctx, envs, cfg.Producers, func(ctx context.Context, part []*pb.Envelope) error {
			for _, e := range part {
				if _, err := q.Append(ctx, e); err != nil {
					return fmt.Errorf("bench outbox: append: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Pending hands out only what is synced, syncing first: the
		// reports are durable once it returns.
		if _, _, err := q.Pending(ctx, outbox.Cursor{}, 1, 1); err != nil {
			return fmt.Errorf("bench outbox: pending: %w", err)
		}
		res.EnqueuePerSec = float64(len(envs)) / time.Since(start).Seconds()
		if st := q.State(); st.Classes[outbox.Telemetry].Count != int64(len(envs)) {
			return fmt.Errorf("bench outbox: %d reports queued of %d appended (drops: quota %d, ttl %d, disk %d)",
				st.Classes[outbox.Telemetry].Count, len(envs), st.Classes[outbox.Telemetry].DroppedQuota,
				st.Classes[outbox.Telemetry].DroppedTTL, st.Classes[outbox.Telemetry].DroppedDisk)
		}

		start = time.Now()
		var cur outbox.Cursor
		drained := 0
		for {
			items, next, err := q.Pending(ctx, cur, cfg.Page, protocol.MaxPayload)
			if err != nil {
				return fmt.Errorf("bench outbox: pending: %w", err)
			}
			if len(items) == 0 {
				break
			}
			if err := q.Ack(ctx, items[len(items)-1].Seq, nil); err != nil {
				return fmt.Errorf("bench outbox: ack: %w", err)
			}
			drained += len(items)
			cur = next
		}
		res.DrainPerSec = float64(drained) / time.Since(start).Seconds()
		if drained != len(envs) {
			return fmt.Errorf("bench outbox: drained %d of %d reports", drained, len(envs))
		}
		return nil
	}()
	stop()
	if rerr := <-runDone; err == nil && rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = rerr
	}
	if cerr := q.Close(); err == nil {
		err = cerr
	}
	return err
}
