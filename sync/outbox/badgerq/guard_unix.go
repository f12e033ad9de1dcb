//go:build unix

package badgerq

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// statfsFree is the default DiskFree: the bytes available to an
// unprivileged user and the file system's size.
func statfsFree(path string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	return uint64(st.Bavail) * bs, uint64(st.Blocks) * bs, nil
}

// allocated is the space a file occupies: Badger's memtable and value-log
// files are sparse, so their length overstates it.
func allocated(_ string, info os.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}

// errInUse is returned when another process or queue holds the database.
var errInUse = errors.New("database in use")

// checkUsable fails when dir cannot hold a database for reasons that
// moving it aside would not fix: another holder of Badger's lock, or a
// directory that cannot be written. Only then is an open failure taken
// for corruption.
func checkUsable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Badger flocks the directory itself.
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s is locked by another process or queue", errInUse, dir)
		}
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return probeWrite(dir)
}
