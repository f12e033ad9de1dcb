//go:build !linux

package proc

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// errUnsupported explains that exec workloads need Linux: the identity
// check and the watch rely on /proc and pidfds.
var errUnsupported = fmt.Errorf("exec workloads on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Process is a started or adopted process; only Linux has them.
type Process struct{ id Identity }

// Start fails: exec workloads need Linux.
func Start(*exec.Cmd) (*Process, error) { return nil, errUnsupported }

// Adopt fails: exec workloads need Linux.
func Adopt(Identity) (*Process, error) { return nil, errUnsupported }

// ReadIdentity fails: exec workloads need Linux.
func ReadIdentity(int) (Identity, error) { return Identity{}, errUnsupported }

// BootID fails: exec workloads need Linux.
func BootID() (string, error) { return "", errUnsupported }

// Identity returns the process's identity.
func (p *Process) Identity() Identity { return p.id }

// Child reports false.
func (p *Process) Child() bool { return false }

// Wait fails.
func (p *Process) Wait(context.Context) (Exit, error) { return Exit{}, errUnsupported }

// Signal fails.
func (p *Process) Signal(syscall.Signal) error { return errUnsupported }

// Close does nothing.
func (p *Process) Close() {}

// Session is a session leader found by FindSessions.
type Session struct {
	Identity
	Env map[string]string
}

// FindSessions fails: exec workloads need Linux.
func FindSessions(...string) ([]Session, error) { return nil, errUnsupported }

// StartTime fails: exec workloads need Linux.
func StartTime(Identity) (time.Time, error) { return time.Time{}, errUnsupported }
