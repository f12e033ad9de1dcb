//go:build linux

package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often a process is checked when the kernel has no
// pidfd.
const pollInterval = 200 * time.Millisecond

// Process is a started or adopted process. Its methods are safe for
// concurrent use, but only one Wait may run at a time.
type Process struct {
	id    Identity
	child bool     // started by this process: its exit status can be reaped
	fd    *os.File // pidfd registered with the runtime poller; nil: poll /proc

	mu   sync.Mutex // guards exit
	exit *Exit
}

// Start starts cmd in a new session and returns its process. Stdout and
// Stderr should be *os.File values so the child writes to them directly:
// a pipe through the caller would break when the caller dies. The caller
// must not call cmd.Wait; it uses Process.Wait instead.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	// The child is not reaped before Process.Wait, so its pid cannot be
	// reused meanwhile and the identity read here is its own.
	_ = cmd.Process.Release()
	p := &Process{child: true, fd: openPidfd(pid)}
	id, err := ReadIdentity(pid)
	if err != nil {
		// Not expected for an unreaped child; kill it rather than run
		// something that cannot be recognised later.
		_ = unix.Kill(-pid, unix.SIGKILL)
		_, _ = p.reap(pid)
		p.close()
		return nil, fmt.Errorf("identify started process %d: %w", pid, err)
	}
	p.id = id
	return p, nil
}

// Adopt returns the process recorded as id when it is still that process.
// It returns an error wrapping ErrGone when the process has exited (and
// was reaped) or the pid belongs to another process, or the node rebooted.
func Adopt(id Identity) (*Process, error) {
	boot, err := BootID()
	if err != nil {
		return nil, err
	}
	if id.BootID != boot {
		return nil, fmt.Errorf("%w: %v is from an earlier boot", ErrGone, id)
	}
	if err := same(id); err != nil {
		return nil, err
	}
	p := &Process{id: id, fd: openPidfd(id.PID)}
	// Check again with the pidfd held: it pins the process it was opened
	// for, so if the identity still matches, the pidfd is the workload's.
	if err := same(id); err != nil {
		p.close()
		return nil, err
	}
	// The caller may be its parent after all (an agent restarting
	// in-process, or running as PID 1): then its exit code is known.
	if st, err := readStat(id.PID); err == nil && st.ppid == os.Getpid() {
		p.child = true
	}
	return p, nil
}

// same checks that pid id.PID is still the process of id.
func same(id Identity) error {
	st, err := readStat(id.PID)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v has exited", ErrGone, id)
	}
	if err != nil {
		return err
	}
	if st.startTicks != id.StartTicks {
		return fmt.Errorf("%w: pid %d now belongs to another process", ErrGone, id.PID)
	}
	return nil
}

// Identity returns the process's identity.
func (p *Process) Identity() Identity { return p.id }

// Child reports whether the process is a child of the caller, whose exit
// code Wait can collect.
func (p *Process) Child() bool { return p.child }

// Wait blocks until the process exits or ctx is done; it then returns
// ctx's error and the process keeps running. After an exit, Wait returns
// the same Exit again.
func (p *Process) Wait(ctx context.Context) (Exit, error) {
	p.mu.Lock()
	if p.exit != nil {
		defer p.mu.Unlock()
		return *p.exit, nil
	}
	p.mu.Unlock()
	var err error
	if p.fd != nil {
		err = p.waitPidfd(ctx)
	} else {
		err = p.waitPoll(ctx)
	}
	if err != nil {
		return Exit{}, err
	}
	e, err := p.reap(p.id.PID)
	if err != nil {
		return Exit{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exit = &e
	p.close()
	return e, nil
}

// waitPidfd waits for the pidfd to become readable, which it does when
// the process exits.
func (p *Process) waitPidfd(ctx context.Context) error {
	if err := p.fd.SetReadDeadline(time.Time{}); err != nil {
		return p.waitPoll(ctx)
	}
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return p.waitPoll(ctx)
	}
	stop := context.AfterFunc(ctx, func() { _ = p.fd.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("wait for %v: %w", p.id, err)
	}
	return nil
}

// waitPoll checks /proc until the process has exited.
func (p *Process) waitPoll(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if p.exited() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (p *Process) exited() bool {
	st, err := readStat(p.id.PID)
	return err != nil || st.startTicks != p.id.StartTicks || st.state == 'Z' || st.state == 'X'
}

// reap collects the exit status of a child; for other processes it is
// unknown.
func (p *Process) reap(pid int) (Exit, error) {
	if !p.child {
		return Exit{}, nil
	}
	var ws unix.WaitStatus
	for {
		got, err := unix.Wait4(pid, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return Exit{}, nil // reaped elsewhere
		case err != nil:
			return Exit{}, fmt.Errorf("reap %v: %w", p.id, err)
		case got != pid:
			continue
		}
		if ws.Signaled() {
			return Exit{Known: true, Code: -1, Signal: ws.Signal()}, nil
		}
		return Exit{Known: true, Code: ws.ExitStatus()}, nil
	}
}

// Signal sends sig to the process and to every process of its group. A
// process group that is already empty is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	exited := p.exit != nil
	if !exited && p.fd != nil {
		// Through the pidfd: never a recycled pid.
		_ = unix.PidfdSendSignal(int(p.fd.Fd()), sig, nil, 0)
	}
	p.mu.Unlock()
	// The group outlives its leader while any member runs, and its id
	// cannot be reused meanwhile.
	if err := unix.Kill(-p.id.PID, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %v group: %w", p.id, err)
	}
	return nil
}

// Close releases the pidfd without touching the process.
func (p *Process) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.close()
}

func (p *Process) close() {
	if p.fd != nil {
		_ = p.fd.Close()
		p.fd = nil
	}
}

// openPidfd returns a pidfd for pid registered with the runtime poller,
// or nil when the kernel has none (before 5.3) or it cannot be polled.
func openPidfd(pid int) *os.File {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
}

// ReadIdentity returns the identity of the running process pid.
func ReadIdentity(pid int) (Identity, error) {
	st, err := readStat(pid)
	if err != nil {
		return Identity{}, err
	}
	boot, err := BootID()
	if err != nil {
		return Identity{}, err
	}
	return Identity{PID: pid, StartTicks: st.startTicks, BootID: boot}, nil
}

var (
	bootOnce sync.Once
	bootID   string
	bootErr  error
)

// BootID returns the kernel's random ID of the current boot.
func BootID() (string, error) {
	bootOnce.Do(func() {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			bootErr = fmt.Errorf("read boot id: %w", err)
			return
		}
		bootID = strings.TrimSpace(string(b))
	})
	return bootID, bootErr
}

type stat struct {
	state      byte
	ppid       int
	startTicks uint64
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// parseStat reads /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("malformed /proc stat: no command")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return stat{}, fmt.Errorf("malformed /proc stat: %d fields", len(f)+2)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, fmt.Errorf("malformed /proc stat ppid %q", f[1])
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("malformed /proc stat starttime %q", f[19])
	}
	return stat{state: f[0][0], ppid: ppid, startTicks: start}, nil
}
