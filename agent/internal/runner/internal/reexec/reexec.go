// Package reexec runs the current binary again as a child, which is how
// the runner's tests get their workload processes (the os/exec
// TestHelperProcess pattern). Under qemu-user without binfmt_misc, as
// when an arm64 test binary is run with qemu-aarch64-static on an x86
// host, the kernel cannot execute the binary itself: the child is then
// started through the same emulator.
package reexec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// qemuArch maps GOARCH to qemu-user's name for it.
var qemuArch = map[string]string{
	"386": "i386", "amd64": "x86_64", "arm": "arm", "arm64": "aarch64",
	"loong64": "loongarch64", "ppc64le": "ppc64le", "riscv64": "riscv64", "s390x": "s390x",
}

var (
	once sync.Once
	argv []string
	err  error
)

// Argv returns the argv prefix that runs the current binary: [exe], or
// [qemu-<arch>[-static], exe] when the kernel cannot execute exe. The
// environment variable SKYEDGE_QEMU names the emulator explicitly.
func Argv() ([]string, error) {
	once.Do(func() { argv, err = detect() })
	return append([]string(nil), argv...), err
}

// Command is exec.Command for the current binary with args.
func Command(args ...string) (*exec.Cmd, error) {
	a, err := Argv()
	if err != nil {
		return nil, err
	}
	a = append(a, args...)
	return exec.Command(a[0], a[1:]...), nil
}

func detect() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	probe := exec.Command(exe, "-test.run=^$")
	err = probe.Start()
	if err == nil {
		_ = probe.Process.Kill()
		_ = probe.Wait()
		return []string{exe}, nil
	}
	if !errors.Is(err, syscall.ENOEXEC) {
		return nil, fmt.Errorf("re-execute %s: %w", exe, err)
	}
	if q := os.Getenv("SKYEDGE_QEMU"); q != "" {
		return []string{q, exe}, nil
	}
	arch := qemuArch[runtime.GOARCH]
	for _, name := range []string{"qemu-" + arch + "-static", "qemu-" + arch} {
		if q, err := exec.LookPath(name); err == nil {
			return []string{q, exe}, nil
		}
	}
	return nil, fmt.Errorf("re-execute %s: the kernel cannot run it and no qemu-%s is in PATH (set SKYEDGE_QEMU)", exe, arch)
}
