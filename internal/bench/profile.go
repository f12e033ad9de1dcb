package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
)

// Profiling commands a child process obeys: "cpuprofile PATH" starts a
// CPU profile written to PATH, "stopprofile" ends it. Scenarios profile
// their measured window when Env.ProfileDir is set.
const (
	opCPUProfile  = "cpuprofile"
	opStopProfile = "stopprofile"
)

// profiler runs one CPU profile at a time on command.
type profiler struct {
	f *os.File
}

// isProfileOp reports whether line is a profiling command.
func isProfileOp(line string) bool {
	op, _, _ := strings.Cut(line, " ")
	return op == opCPUProfile || op == opStopProfile
}

func (p *profiler) do(line string) error {
	op, path, _ := strings.Cut(line, " ")
	switch op {
	case opCPUProfile:
		if p.f != nil {
			return errors.New("a CPU profile is already running")
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		p.f = f
		return nil
	case opStopProfile:
		return p.stop()
	}
	return fmt.Errorf("unknown command %q", line)
}

func (p *profiler) stop() error {
	if p.f == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := p.f.Close()
	p.f = nil
	return err
}

// startProfiles starts CPU profiles of the bridge and the load processes
// when env.ProfileDir is set, and returns the function that stops them.
func startProfiles(ctx context.Context, env Env, br *bridgeProc, g *loadGroup) (stop func() error, err error) {
	if env.ProfileDir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(env.ProfileDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: profile dir: %w", err)
	}
	if err := br.Profile(ctx, filepath.Join(env.ProfileDir, "bridge.cpu.pprof")); err != nil {
		return nil, err
	}
	if err := g.Profile(ctx, env.ProfileDir); err != nil {
		return nil, errors.Join(err, br.StopProfile(ctx))
	}
	return func() error {
		_, lerr := g.Do(ctx, opStopProfile)
		err := errors.Join(br.StopProfile(ctx), lerr)
		if err == nil {
			env.logger().Info("CPU profiles written", "dir", env.ProfileDir,
				"see", "go tool pprof -top "+filepath.Join(env.ProfileDir, "bridge.cpu.pprof"))
		}
		return err
	}, nil
}
