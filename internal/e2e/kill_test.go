package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/internal/pki"
)

// agentProcess starts the real agent binary.
func agentProcess(t *testing.T, bin string, p *fleetPKI, node, broker, dataDir, interval string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cert, key := p.files(t, node)
	cmd := exec.Command(filepath.Join(bin, "skyedge-agent"),
		"-node", node, "-broker", "tls://"+broker, "-ca", filepath.Join(p.dir, pki.CACertFile),
		"-cert", cert, "-key", key, "-data-dir", dataDir, "-interval", interval, "-drain-profile", "unlimited")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// TestNoLossAcrossAgentKills kills the real agent process with SIGKILL
// at random moments while it reports ten times a second, twenty times,
// restarting it each time on the same data directory; then lets it drain
// and checks that every message it ever sequenced was applied exactly
// once.
func TestNoLossAcrossAgentKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the agent binary twenty times")
	}
	bin := t.TempDir()
	buildBinaries(t, bin)
	p := newPKI(t)
	b := startBridge(t, p, t.TempDir(), nil)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	const kills = 20
	for i := range kills {
		cmd, out := agentProcess(t, bin, p, "truck-042", b.MQTTAddr(), dir, "100ms")
		// Between 0.3 and 1.8 s: sometimes before the link is up, sometimes
		// mid-batch, sometimes between an append and its sync.
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v\n%s", i, err, out)
		}
		if err := cmd.Wait(); err == nil {
			t.Fatalf("run %d exited cleanly before the kill:\n%s", i, out)
		}
	}
	// A last run that produces nothing new drains what is left, then stops
	// cleanly.
	cmd, out := agentProcess(t, bin, p, "truck-042", b.MQTTAddr(), dir, "1h")
	var last, stableSince = uint64(0), time.Now()
	eventually(t, 60*time.Second, func() (bool, string) {
		w := deliveryOf(t, b.HTTPAddr(), "truck-042").Applied.Watermark
		if w != last {
			last, stableSince = w, time.Now()
		}
		// Longer than the drainer's resume jitter (up to 5 s after a connect).
		return w > 0 && time.Since(stableSince) > 8*time.Second, fmt.Sprintf("the bridge's watermark to settle (at %d)", w)
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	n := checkExactlyOnce(t, b.HTTPAddr(), "truck-042", dir)
	if st := outboxState(t, dir, "truck-042"); st.FirstSeq != 0 {
		t.Errorf("the last run left %d..%d undelivered", st.FirstSeq, st.LastSeq)
	}
	if n < kills*2 {
		t.Errorf("only %d messages over %d runs: the agent was not under load", n, kills)
	}
}
