// Package cgroup applies CPU and memory limits to workload processes
// through cgroup v2.
//
// Every workload gets a leaf cgroup under one root, by default
// /sys/fs/cgroup/skyedge.slice/<workload>, with cpu.max and memory.max
// written and its processes moved in through cgroup.procs. The root must
// sit on a cgroup2 mount whose parent delegates the cpu and memory
// controllers to the agent (as root on a unified hierarchy, or under a
// systemd unit with Delegate=yes). Where that is not so (cgroup v1,
// hybrid mounts without controllers, a read-only /sys in a container),
// Open reports why and the caller runs workloads without limits.
//
// Moving a process out of the agent's own cgroup also keeps it alive when
// systemd stops the agent's unit.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultRoot is the parent of the workloads' cgroups.
const DefaultRoot = "/sys/fs/cgroup/skyedge.slice"

// ErrUnavailable is wrapped by Open's error when limits cannot be applied
// on this host.
var ErrUnavailable = errors.New("cgroup v2 limits unavailable")

// period is the cpu.max period in microseconds (the kernel's default).
const period = 100_000

// Limits are a workload's hard limits; zero means unlimited.
type Limits struct {
	MilliCPU    int64
	MemoryBytes int64
}

// Manager creates and fills workload cgroups under one root.
type Manager struct {
	root string
}

// Open prepares root: it must be on a cgroup2 file system whose parent
// offers the cpu and memory controllers; Open creates root and enables
// both controllers for its children. The error wraps ErrUnavailable and
// says what is missing.
func Open(root string) (*Manager, error) {
	return open(root, isCgroup2)
}

func open(root string, isV2 func(string) (bool, error)) (*Manager, error) {
	parent := filepath.Dir(root)
	ok, err := isV2(parent)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, parent, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a cgroup2 mount (cgroup v1 or hybrid host)", ErrUnavailable, parent)
	}
	ctrl, err := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, c := range []string{"cpu", "memory"} {
		if !hasWord(string(ctrl), c) {
			return nil, fmt.Errorf("%w: controller %s not delegated to %s", ErrUnavailable, c, parent)
		}
	}
	if err := enable(parent); err != nil {
		return nil, err
	}
	if err := os.Mkdir(root, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := enable(root); err != nil {
		return nil, err
	}
	return &Manager{root: root}, nil
}

// enable turns on the cpu and memory controllers for dir's children.
func enable(dir string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	cur, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if hasWord(string(cur), "cpu") && hasWord(string(cur), "memory") {
		return nil
	}
	if err := os.WriteFile(file, []byte("+cpu +memory"), 0); err != nil {
		return fmt.Errorf("%w: enable cpu and memory in %s: %w", ErrUnavailable, dir, err)
	}
	return nil
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// Path returns the cgroup directory of workload name.
func (m *Manager) Path(name string) string { return filepath.Join(m.root, name) }

// Setup creates the cgroup of workload name (or reuses it) and writes its
// limits.
func (m *Manager) Setup(name string, l Limits) error {
	dir := m.Path(name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", name, err)
	}
	cpu := "max " + strconv.Itoa(period)
	if l.MilliCPU > 0 {
		// At least the kernel's minimum quota of 1 ms.
		cpu = strconv.FormatInt(max(l.MilliCPU*period/1000, 1000), 10) + " " + strconv.Itoa(period)
	}
	mem := "max"
	if l.MemoryBytes > 0 {
		mem = strconv.FormatInt(l.MemoryBytes, 10)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(cpu), 0); err != nil {
		return fmt.Errorf("cgroup %s cpu.max: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(mem), 0); err != nil {
		return fmt.Errorf("cgroup %s memory.max: %w", name, err)
	}
	return nil
}

// Add moves process pid into the cgroup of workload name.
func (m *Manager) Add(name string, pid int) error {
	err := os.WriteFile(filepath.Join(m.Path(name), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
	if err != nil {
		return fmt.Errorf("move pid %d to cgroup %s: %w", pid, name, err)
	}
	return nil
}

// Remove deletes the cgroup of workload name; it fails while processes
// are still in it. A missing cgroup is not an error.
func (m *Manager) Remove(name string) error {
	err := os.Remove(m.Path(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", name, err)
	}
	return nil
}
