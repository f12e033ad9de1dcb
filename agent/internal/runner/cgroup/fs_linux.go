//go:build linux

package cgroup

import "golang.org/x/sys/unix"

// isCgroup2 reports whether dir is on a cgroup2 file system.
func isCgroup2(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}
