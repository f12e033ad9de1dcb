package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTree builds a directory shaped like a cgroup2 mount: the kernel
// creates the interface files in every new directory; here Setup writes
// them as plain files.
func fakeTree(t *testing.T, controllers, subtree string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"cgroup.controllers":     controllers,
		"cgroup.subtree_control": subtree,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// onV2 stands in for statfs on a cgroup2 mount.
func onV2(string) (bool, error) { return true, nil }

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestOpenSetupAdd(t *testing.T) {
	mount := fakeTree(t, "cpuset cpu io memory pids", "")
	root := filepath.Join(mount, "skyedge.slice")
	// The kernel would create the root's interface files on mkdir.
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := open(root, onV2)
	if err != nil {
		t.Fatalf("open() = %v", err)
	}
	if got := read(t, filepath.Join(mount, "cgroup.subtree_control")); got != "+cpu +memory" {
		t.Errorf("parent subtree_control = %q, want +cpu +memory", got)
	}
	if got := read(t, filepath.Join(root, "cgroup.subtree_control")); got != "+cpu +memory" {
		t.Errorf("root subtree_control = %q, want +cpu +memory", got)
	}

	tests := []struct {
		name   string
		limits Limits
		cpu    string
		memory string
	}{
		{name: "quarter core, 64Mi", limits: Limits{MilliCPU: 250, MemoryBytes: 64 << 20}, cpu: "25000 100000", memory: "67108864"},
		{name: "two cores", limits: Limits{MilliCPU: 2000}, cpu: "200000 100000", memory: "max"},
		{name: "tiny cpu gets the minimum quota", limits: Limits{MilliCPU: 1, MemoryBytes: 1 << 20}, cpu: "1000 100000", memory: "1048576"},
		{name: "unlimited", cpu: "max 100000", memory: "max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Setup("w1", tt.limits); err != nil {
				t.Fatal(err)
			}
			if got := read(t, filepath.Join(m.Path("w1"), "cpu.max")); got != tt.cpu {
				t.Errorf("Setup(%+v): cpu.max = %q, want %q", tt.limits, got, tt.cpu)
			}
			if got := read(t, filepath.Join(m.Path("w1"), "memory.max")); got != tt.memory {
				t.Errorf("Setup(%+v): memory.max = %q, want %q", tt.limits, got, tt.memory)
			}
		})
	}
	if err := m.Add("w1", 4242); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(m.Path("w1"), "cgroup.procs")); got != "4242" {
		t.Errorf("cgroup.procs = %q, want 4242", got)
	}
	if err := m.Remove("absent"); err != nil {
		t.Errorf("Remove(absent) = %v, want nil", err)
	}
}

func TestOpenUnavailable(t *testing.T) {
	tests := []struct {
		name        string
		controllers string
		isV2        func(string) (bool, error)
		want        string
	}{
		{name: "cgroup v1 or hybrid", controllers: "cpu memory", isV2: func(string) (bool, error) { return false, nil }, want: "not a cgroup2 mount"},
		{name: "no memory controller", controllers: "cpu io pids", isV2: onV2, want: "controller memory not delegated"},
		{name: "statfs fails", controllers: "cpu memory", isV2: func(string) (bool, error) { return false, errors.New("permission denied") }, want: "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mount := fakeTree(t, tt.controllers, "")
			_, err := open(filepath.Join(mount, "skyedge.slice"), tt.isV2)
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("open() = %v, want ErrUnavailable saying %q", err, tt.want)
			}
		})
	}
}

func TestOpenReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes to read-only directories; the permission case needs an unprivileged user")
	}
	mount := fakeTree(t, "cpu memory", "cpu memory")
	if err := os.Chmod(mount, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(mount, 0o755)
	if _, err := open(filepath.Join(mount, "skyedge.slice"), onV2); !errors.Is(err, ErrUnavailable) {
		t.Errorf("open() on a read-only mount = %v, want ErrUnavailable", err)
	}
}
