package badgerq

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/skyedge/skyedge/sync/outbox"
)

// Pressure implements engine.Store: the disk guard. Badger's own size
// figures are refreshed once a minute and only with metrics on, so the
// database's size is measured from its directory.
func (s *store) Pressure() (outbox.Pressure, int64, error) {
	used, err := dirBytes(s.opts.Dir)
	if err != nil {
		return outbox.PressureNone, 0, fmt.Errorf("measure %s: %w", s.opts.Dir, err)
	}
	free, total, err := s.opts.DiskFree(s.opts.Dir)
	if err != nil {
		return outbox.PressureNone, used, fmt.Errorf("free space of %s: %w", s.opts.Dir, err)
	}
	return judge(s.opts, free, total, used), used, nil
}

// judge is the disk guard's rule.
func judge(o Options, free, total uint64, used int64) outbox.Pressure {
	floor := max(o.MinFreeBytes, uint64(float64(total)*o.MinFreePercent/100))
	switch {
	case free < floor || used >= o.MaxDiskBytes:
		return outbox.PressureHard
	case free < 2*floor || used >= o.MaxDiskBytes/10*8:
		return outbox.PressureSoft
	}
	return outbox.PressureNone
}

// dirBytes is the space the files directly in dir occupy.
func dirBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		info, err := e.Info()
		if os.IsNotExist(err) {
			continue // removed by a compaction meanwhile
		}
		if err != nil {
			return 0, err
		}
		total += allocated(filepath.Join(dir, e.Name()), info)
	}
	return total, nil
}
