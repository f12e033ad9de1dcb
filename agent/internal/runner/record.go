package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/skyedge/skyedge/agent/internal/runner/proc"
	"github.com/skyedge/skyedge/protocol/spec"
)

// recordVersion is the layout of state.json; a later agent reads older
// versions.
const recordVersion = 1

// record is what the runner keeps on disk about one workload, so a
// restarted agent adopts what runs instead of starting it twice.
type record struct {
	Version    int          `json:"version"`
	Name       string       `json:"name"`
	Generation uint64       `json:"generation"`
	Runtime    spec.Runtime `json:"runtime"`
	// Hash is the instance hash of what Process or ContainerID runs.
	Hash        string         `json:"specHash"`
	Process     *proc.Identity `json:"process,omitempty"`
	ContainerID string         `json:"containerId,omitempty"`
	StartedAt   time.Time      `json:"startedAt,omitzero"`
	// Restarts and Crashes carry the restart count and the backoff step
	// over an agent restart.
	Restarts int `json:"restarts,omitempty"`
	Crashes  int `json:"crashes,omitempty"`
	// Grace is the stop grace period, to stop an orphan whose spec is
	// gone.
	Grace spec.Duration `json:"grace,omitempty"`
	// Final is set when the instance ended for good (policy never, restart
	// limit): a restarted agent does not run it again.
	Final *final `json:"final,omitempty"`
}

// final is the terminal status of a workload that does not restart.
type final struct {
	State    State  `json:"state"`
	ExitCode *int   `json:"exitCode,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

const recordFile = "state.json"

// loadRecord reads dir's record; a missing one is (nil, nil).
func loadRecord(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read workload state: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read workload state %s: %w", filepath.Join(dir, recordFile), err)
	}
	return &r, nil
}

// saveRecord writes r atomically: a temporary file, fsync, rename, and an
// fsync of the directory, so a crash leaves the old or the new record.
func saveRecord(dir string, r *record) error {
	r.Version = recordVersion
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write workload state: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, recordFile), b); err != nil {
		return fmt.Errorf("write workload state: %w", err)
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
