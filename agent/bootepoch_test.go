package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBootEpochIncrements(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created on first use
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	for want := uint64(1); want <= 3; want++ {
		got, corrupt, err := nextBootEpoch(dir, now)
		if err != nil || corrupt != nil {
			t.Fatalf("nextBootEpoch() = %d, %v, %v", got, corrupt, err)
		}
		if got != want {
			t.Errorf("nextBootEpoch() = %d, want %d", got, want)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, BootEpochFile))
	if err != nil || string(raw) != "3\n" {
		t.Errorf("epoch file = %q, %v, want \"3\\n\"", raw, err)
	}
	if _, err := os.Stat(filepath.Join(dir, BootEpochFile+".tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestBootEpochCorrupt(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	for _, content := range []string{"", "garbage\n", "0\n", "-4\n", "\x00\x00\x00"} {
		t.Run(content, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, BootEpochFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, corrupt, err := nextBootEpoch(dir, now)
			if err != nil {
				t.Fatalf("nextBootEpoch() error = %v", err)
			}
			if got != uint64(now.Unix()) || corrupt == nil {
				t.Errorf("nextBootEpoch() over %q = %d, %v; want %d and a note that the file was corrupt", content, got, corrupt, now.Unix())
			}
			if next, _, _ := nextBootEpoch(dir, now); next != got+1 {
				t.Errorf("nextBootEpoch() after recovery = %d, want %d", next, got+1)
			}
		})
	}
}

func TestBootEpochUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nextBootEpoch(file, time.Now()); err == nil {
		t.Errorf("nextBootEpoch(a file) = nil error, want one")
	}
}
