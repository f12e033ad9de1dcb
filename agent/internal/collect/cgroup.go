package collect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Default locations of the cgroup v2 files.
const (
	DefaultCgroupRoot     = "/sys/fs/cgroup"
	DefaultProcSelfCgroup = "/proc/self/cgroup"
)

// cgroupReader reads the limits of the agent's own cgroup v2. Inside a
// container, mem.VirtualMemory and cpu counts describe the host; these
// files say what the agent may really use.
type cgroupReader struct {
	root     string // cgroup2 mount point
	selfFile string // /proc/self/cgroup
}

// limits returns the effective limits of the agent's cgroup: the
// tightest of its own and its ancestors' (a limit on a parent slice binds
// the child too). It returns nil when no limit is set or when the host has
// no cgroup v2 hierarchy, which is not an error.
func (r cgroupReader) limits() (*pb.ContainerLimits, error) {
	raw, err := os.ReadFile(r.selfFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cgroup: %w", err)
	}
	rel, ok := parseProcCgroup(raw)
	if !ok {
		return nil, nil // cgroup v1 only
	}
	own := filepath.Join(r.root, rel)
	var (
		cpuMilli uint32
		memKiB   uint64
	)
	for dir := own; ; dir = filepath.Dir(dir) {
		if b, err := readSmall(filepath.Join(dir, "cpu.max")); err != nil {
			return nil, err
		} else if b != "" {
			m, limited, err := parseCPUMax(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "cpu.max"), err)
			}
			if limited && (cpuMilli == 0 || m < cpuMilli) {
				cpuMilli = m
			}
		}
		if b, err := readSmall(filepath.Join(dir, "memory.max")); err != nil {
			return nil, err
		} else if b != "" {
			k, limited, err := parseMemoryMax(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "memory.max"), err)
			}
			if limited && (memKiB == 0 || k < memKiB) {
				memKiB = k
			}
		}
		if dir == r.root || len(dir) <= len(r.root) {
			break
		}
	}
	if cpuMilli == 0 && memKiB == 0 {
		return nil, nil
	}
	lim := &pb.ContainerLimits{CpuMaxMilli: cpuMilli, MemoryMaxKib: memKiB}
	if b, err := readSmall(filepath.Join(own, "memory.current")); err != nil {
		return nil, err
	} else if b != "" {
		cur, err := strconv.ParseUint(b, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a byte count", filepath.Join(own, "memory.current"), b)
		}
		lim.MemoryCurrentKib = cur / 1024
	}
	return lim, nil
}

// parseProcCgroup returns the cgroup v2 path ("0::/path" line) of
// /proc/self/cgroup, cleaned so that it can never leave the cgroup mount
// (a process outside its cgroup namespace sees "0::/../..").
func parseProcCgroup(b []byte) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return filepath.Clean("/" + rest), true
		}
	}
	return "", false
}

// parseCPUMax parses cpu.max, "$QUOTA $PERIOD" or "max $PERIOD", into
// thousandths of a CPU.
func parseCPUMax(s string) (milli uint32, limited bool, err error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, fmt.Errorf("cpu.max %q: want \"$QUOTA $PERIOD\"", s)
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cpu.max %q: bad quota", s)
	}
	period := uint64(100000) // the kernel's default when only the quota is written
	if len(f) == 2 {
		if period, err = strconv.ParseUint(f[1], 10, 64); err != nil || period == 0 {
			return 0, false, fmt.Errorf("cpu.max %q: bad period", s)
		}
	}
	m := (quota*1000 + period/2) / period
	if m == 0 {
		m = 1 // a quota too small to round to a thousandth is still a limit
	}
	return uint32(min(m, math.MaxUint32)), true, nil
}

// parseMemoryMax parses memory.max, "max" or a byte count, into KiB.
func parseMemoryMax(s string) (kib uint64, limited bool, err error) {
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("memory.max %q: want \"max\" or a byte count", s)
	}
	return max(n/1024, 1), true, nil
}

// readSmall reads a one-line control file; a missing file reads as "".
func readSmall(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}
