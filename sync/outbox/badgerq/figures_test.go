package badgerq

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/skyedge/skyedge/sync/acks"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/internal/engine"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

// withDB opens the closed queue's database directly.
func withDB(t *testing.T, dir string, fn func(db *badger.DB)) {
	t.Helper()
	db, err := badger.Open(badgerOptions(testOptions(dir), slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("badger.Open(%s) error = %v", dir, err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// A database written before the class figures were kept (records and
// "m/next" only), or written since by such a version, or with figures
// that do not decode, is counted once at open and has figures from then
// on.
func TestOpenCountsDatabaseWithoutFigures(t *testing.T) {
	tests := []struct {
		name   string
		change func(txn *badger.Txn) error
	}{
		{"no figures", func(txn *badger.Txn) error { return txn.Delete(figuresKey) }},
		{"an ack by an older version", func(txn *badger.Txn) error {
			// What an older version's Ack of sequence number 40 commits.
			if err := txn.Delete(recordKey(outbox.Telemetry, 40)); err != nil {
				return err
			}
			it, err := txn.Get(nextKey)
			if err != nil {
				return err
			}
			next, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			return txn.Set(nextKey, next)
		}},
		{"unreadable figures", func(txn *badger.Txn) error { return txn.Set(figuresKey, []byte{figuresV1, 1}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, clk := filled(t, 40)
			q := openTest(t, dir, outboxtest.Config(t, clk))
			if err := q.Ack(context.Background(), 5, []acks.Range{{First: 30, Last: 32}}); err != nil {
				t.Fatal(err)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			withDB(t, dir, func(db *badger.DB) {
				if err := db.Update(tt.change); err != nil {
					t.Fatal(err)
				}
			})
			// What the records say, counted by hand.
			var want [outbox.NumClasses]outbox.ClassState
			withDB(t, dir, func(db *badger.DB) {
				err := db.View(func(txn *badger.Txn) error {
					it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{recordPrefix}})
					defer it.Close()
					for it.Rewind(); it.Valid(); it.Next() {
						k := it.Item().Key()
						c, seq := outbox.Class(k[1]), binary.BigEndian.Uint64(k[2:])
						w := &want[c]
						if w.FirstSeq == 0 {
							w.FirstSeq = seq
						}
						w.LastSeq = seq
						w.Count++
						w.Bytes += int64(len(k)) + it.Item().ValueSize()
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
			q = openTest(t, dir, outboxtest.Config(t, clk))
			got := q.State()
			q.Close()
			for _, c := range outbox.Classes {
				g, w := got.Classes[c], want[c]
				if g.Count != w.Count || g.Bytes != w.Bytes || g.FirstSeq != w.FirstSeq || g.LastSeq != w.LastSeq {
					t.Errorf("%s after counting = %+v, want %+v", c, g, w)
				}
			}
			if got.NextSeq != 42 {
				t.Errorf("NextSeq after counting = %d, want 42", got.NextSeq)
			}
			withDB(t, dir, func(db *badger.DB) {
				if f, ok, err := (&store{db: db, log: outboxtest.TestLogger(t)}).LoadFigures(); !ok || err != nil {
					t.Errorf("figures after counting = %+v, %v, %v; want them saved", f, ok, err)
				}
			})
		})
	}
}

func TestFiguresEncoding(t *testing.T) {
	var f engine.Figures
	f.Next = 1 << 40
	f.Classes[outbox.Control] = engine.ClassFigures{Count: 3, Bytes: 300, First: 7, Last: 1 << 40, Oldest: outboxtest.Start.UnixMilli()}
	f.Classes[outbox.Telemetry] = engine.ClassFigures{Count: 1, Bytes: 19, First: 9, Last: 9, Oldest: -1}
	b := encodeFigures(f)
	var got engine.Figures
	got.Next = f.Next
	if err := decodeFigures(b, &got); err != nil || got != f {
		t.Fatalf("decodeFigures(encodeFigures(%+v)) = %+v, %v", f, got, err)
	}
	for _, bad := range [][]byte{nil, {0}, {figuresV1}, b[:len(b)-1], append(bytes.Clone(b), 0)} {
		if err := decodeFigures(bad, &got); err == nil {
			t.Errorf("decodeFigures(%x) = nil error, want one", bad)
		}
	}
}

// A drained backlog leaves tombstones over tables of dead records; the
// queue reclaims them, so the database shrinks back to almost nothing.
func TestReclaimAfterDrain(t *testing.T) {
	h := outboxtest.NewHarness(t, outboxtest.Impl{Open: openTest}, func(c *outbox.Config) {
		c.Policies[outbox.Telemetry].Quota, c.Policies[outbox.Telemetry].TTL = 64<<20, 0
	})
	// About 6 MiB of reports: past the 4 MiB of deletes that trigger it.
	for i := range 50_000 {
		h.Append(outboxtest.Report(h.Clk.Now(), i))
	}
	if err := h.Q.Ack(context.Background(), h.Q.State().LastSeq, nil); err != nil {
		t.Fatal(err)
	}
	drained, err := dirBytes(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	h.StartRun()
	h.Eventually("the database shrinks after the drain", h.Cfg.MaintainInterval, func() bool {
		n, err := dirBytes(h.Dir)
		return err == nil && n < 2<<20
	})
	after, _ := dirBytes(h.Dir)
	t.Logf("database %d bytes after the drain, %d after reclaiming", drained, after)
	// The queue carries on.
	seq := h.Append(outboxtest.Event(h.Clk.Now(), "e", false))
	if items := h.All(); len(items) != 1 || items[0].Seq != seq {
		t.Errorf("pending after reclaiming = %v, want the new event %d", outboxtest.Seqs(items), seq)
	}
}

// Tables larger than the table builder's first buffer were written with
// their first blocks overwritten on 32-bit platforms (see fitTables):
// records written through several memtables must read back intact.
func TestTablesReadBack(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir) // 8 MB memtables: flushed tables of 6 MB, over 2 * 2 MB
	db, err := badger.Open(badgerOptions(o, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	value := func(i int) []byte {
		return []byte(fmt.Sprintf("%0120d", i)) // a report's size, kept in the LSM tree
	}
	const n = 200_000 // about 4 memtables
	wb := db.NewWriteBatch()
	for i := range n {
		if err := wb.Set(recordKey(outbox.Telemetry, uint64(i+1)), value(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // flushes the last memtable
		t.Fatal(err)
	}
	db, err = badger.Open(badgerOptions(o, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if len(db.Tables()) < 2 {
		t.Fatalf("%d tables, want the records in several", len(db.Tables()))
	}
	i := 0
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{recordPrefix, byte(outbox.Telemetry)}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if want := recordKey(outbox.Telemetry, uint64(i+1)); !bytes.Equal(it.Item().Key(), want) {
				return fmt.Errorf("key %d = %x, want %x", i, it.Item().Key(), want)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if !bytes.Equal(v, value(i)) {
				return fmt.Errorf("value %d = %q, want %q", i, v, value(i))
			}
			i++
		}
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("read back %d of %d records: %v", i, n, err)
	}
}

func TestFitTables(t *testing.T) {
	for _, tt := range []struct {
		intSize        int
		base, multiple int64
	}{
		{64, 2 << 20, 2}, // Badger's defaults
		{32, 6 << 20, 1}, // every table the size of a memtable
	} {
		bo := fitTables(badger.DefaultOptions(t.TempDir()).WithMemTableSize(6<<20), tt.intSize)
		if bo.BaseTableSize != tt.base || int64(bo.TableSizeMultiplier) != tt.multiple {
			t.Errorf("fitTables(%d-bit) = base table %d, multiplier %d; want %d, %d",
				tt.intSize, bo.BaseTableSize, bo.TableSizeMultiplier, tt.base, tt.multiple)
		}
	}
}
