package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BootEpochFile is the file in the data directory that counts the
// agent's starts.
const BootEpochFile = "boot_epoch"

// nextBootEpoch reads the boot epoch in dir, increments it and stores it
// durably (write a temporary file, fsync, rename, fsync the directory) so
// that an epoch is never handed out twice, even across a power cut.
//
// A file that cannot be parsed (a corrupt flash cell, a hand edit) is
// replaced by the current Unix time in seconds, which is far above any
// count of restarts, so epochs keep increasing; corrupt then says what was
// replaced, for the caller to log.
func nextBootEpoch(dir string, now time.Time) (epoch uint64, corrupt error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("boot epoch: create data directory: %w", err)
	}
	path := filepath.Join(dir, BootEpochFile)
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		epoch = 1
	case err != nil:
		return 0, nil, fmt.Errorf("boot epoch: %w", err)
	default:
		prev, perr := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		if perr != nil || prev == 0 {
			epoch = max(uint64(now.Unix()), 1)
			corrupt = fmt.Errorf("boot epoch file %s holds %q, not a positive number: restarting the count from %d", path, truncate(string(raw), 32), epoch)
		} else {
			epoch = prev + 1
		}
	}
	if err := writeFileSync(path, []byte(strconv.FormatUint(epoch, 10)+"\n")); err != nil {
		return 0, nil, fmt.Errorf("boot epoch: %w", err)
	}
	return epoch, corrupt, nil
}

// writeFileSync replaces path with data atomically and durably.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
