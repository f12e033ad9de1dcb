package bench

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The JSON keys of every scenario are a contract: runs compare across
// machines and over time.
func TestResultJSONKeys(t *testing.T) {
	for _, c := range []struct {
		name string
		res  Result
		want []string
	}{
		{"ingest", IngestResult{}, []string{"scenario", "agents", "processed_per_sec", "raw_per_sec", "ratio", "p50_ms", "p99_ms", "bridge_rss_mb", "bridge_cpu_percent"}},
		{"storm", StormResult{}, []string{"scenario", "agents", "reconnect_s", "drain_s", "buffered", "lost", "duplicates"}},
		{"outbox", OutboxResult{}, []string{"scenario", "enqueue_per_sec", "raw_badger_per_sec", "drain_per_sec"}},
		{"footprint", FootprintResult{}, []string{"scenario", "rss_mb", "cpu_percent", "uplink_kbit_s", "downlink_kbit_s", "binary_mb"}},
		{"schedule", ScheduleResult{}, []string{"scenario", "nodes", "regions", "placements_per_sec", "p50_ms", "p99_ms"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkKeys(t, c.res, c.want)
		})
	}
}

// checkKeys checks that res marshals to exactly the keys want.
func checkKeys(t *testing.T, res Result, want []string) {
	t.Helper()
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("JSON keys of %T mismatch (-want +got):\n%s", res, diff)
	}
}

func TestMarkdown(t *testing.T) {
	m := Machine{CPU: "Test CPU", Cores: 2, MemoryGB: 3.5, Kernel: "Linux 6.1", Go: "go1.26 linux/amd64"}
	at := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	md := Markdown(m, at, []Run{
		{Command: "skyedge bench outbox --messages 10", Result: OutboxResult{Scenario: "outbox", EnqueuePerSec: 12345.6, RawBadgerPerSec: 54321, DrainPerSec: 9.87654}},
		{Command: "skyedge bench schedule", Err: ErrNoPlacementEngine},
	})
	for _, want := range []string{
		"2026-01-02 03:04 UTC",
		"| CPU | Test CPU |", "| cores | 2 |", "| memory | 3.5 GiB |", "| kernel | Linux 6.1 |",
		"`skyedge bench outbox --messages 10`",
		"| scenario | enqueue_per_sec | raw_badger_per_sec | drain_per_sec |",
		"| outbox | 12346 | 54321 | 9.877 |",
		"`skyedge bench schedule`\n\nNot measured: " + ErrNoPlacementEngine.Error(),
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown() lacks %q:\n%s", want, md)
		}
	}
}

func TestRewriteSection(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "BENCHMARKS.md")

	if err := RewriteSection(path, "first\n"); err != nil {
		t.Fatalf("RewriteSection(new file): %v", err)
	}
	got, _ := os.ReadFile(path)
	if want := "# Benchmarks\n\n" + MarkBegin + "\nfirst\n" + MarkEnd + "\n"; string(got) != want {
		t.Errorf("new file = %q, want %q", got, want)
	}

	lead := "# Benchmarks\n\nWritten by hand.\n\n" + MarkBegin + "\nold figures\n" + MarkEnd + "\n\nMore prose.\n"
	if err := os.WriteFile(path, []byte(lead), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RewriteSection(path, "new figures\n"); err != nil {
		t.Fatalf("RewriteSection: %v", err)
	}
	got, _ = os.ReadFile(path)
	if want := strings.Replace(lead, "old figures", "new figures", 1); string(got) != want {
		t.Errorf("rewritten file = %q, want %q", got, want)
	}

	if err := os.WriteFile(path, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RewriteSection(path, "x\n"); !errors.Is(err, ErrNoMarkers) {
		t.Errorf("RewriteSection(file without markers) = %v, want ErrNoMarkers", err)
	}
}
