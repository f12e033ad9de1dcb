//go:build !unix

package badgerq

import (
	"errors"
	"os"
)

func statfsFree(string) (free, total uint64, err error) {
	return 0, 0, errors.New("free disk space is not measured on this platform; set Options.DiskFree")
}

func allocated(_ string, info os.FileInfo) int64 { return info.Size() }

func checkUsable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return probeWrite(dir)
}
