package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// Env is what every scenario shares: where the cached PKI and scratch data
// go, how to start the bridge's child process, and the progress log.
type Env struct {
	// PKIDir caches the development CA and every certificate issued for
	// the benchmarks; DefaultPKIDir when empty.
	PKIDir string
	// WorkDir holds the scenario's data directories; a new temporary
	// directory, removed afterwards, when empty.
	WorkDir string
	// ChildCommand is the command line that re-executes this program as a
	// benchmark child process (see RunChild); the child's flags are
	// appended to it. Empty means this executable with "bench child".
	ChildCommand []string
	// AgentBinary is the skyedge-agent executable the footprint scenario
	// runs; empty means FindAgentBinary.
	AgentBinary string
	// Logger receives progress: phases, counts, where time goes. Nil
	// discards it.
	Logger *slog.Logger
	// ProfileDir, when set, receives CPU profiles of the bridge
	// (bridge.cpu.pprof) and of the load processes (load-N.cpu.pprof)
	// over the measured window: ingest's window, storm's recovery.
	ProfileDir string
}

// ChildEnvVar names, in the environment of a benchmark child process, the
// role it plays ("bridge" or "load"). A test binary that starts children
// checks it in TestMain and runs RunChild instead of its tests.
const ChildEnvVar = "SKYEDGE_BENCH_CHILD"

// DefaultPKIDir is $XDG_CACHE_HOME/skyedge-bench/pki (or the user cache
// directory's equivalent).
func DefaultPKIDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("bench: no cache directory for the PKI (set --pki-dir): %w", err)
	}
	return filepath.Join(dir, "skyedge-bench", "pki"), nil
}

func (e Env) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e Env) pkiDir() (string, error) {
	if e.PKIDir != "" {
		return e.PKIDir, nil
	}
	return DefaultPKIDir()
}

// workDir returns a scratch directory for one scenario and the function
// that removes it.
func (e Env) workDir(scenario string) (string, func(), error) {
	if e.WorkDir != "" {
		if err := os.MkdirAll(e.WorkDir, 0o700); err != nil {
			return "", nil, fmt.Errorf("bench: work dir: %w", err)
		}
	}
	dir, err := os.MkdirTemp(e.WorkDir, "skyedge-bench-"+scenario+"-")
	if err != nil {
		return "", nil, fmt.Errorf("bench: work dir: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// agentDir returns a scratch directory for the simulated agents' state
// (each runs its own Badger outbox) and the function that removes it.
// Unless WorkDir is set it is on /dev/shm when that exists: thousands of
// outboxes syncing on one disk would measure the disk, while each real
// node has its own.
func (e Env) agentDir(scenario string) (string, func(), error) {
	if e.WorkDir == "" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			if dir, err := os.MkdirTemp("/dev/shm", "skyedge-bench-"+scenario+"-agents-"); err == nil {
				return dir, func() { os.RemoveAll(dir) }, nil
			}
		}
	}
	return e.workDir(scenario + "-agents")
}

func (e Env) childCommand() ([]string, error) {
	if len(e.ChildCommand) > 0 {
		return e.ChildCommand, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: cannot re-execute this program as a child process: %w", err)
	}
	return []string{self, "bench", "child"}, nil
}

// RaiseFileLimit raises this process's open-file limit (RLIMIT_NOFILE) to
// want, raising the hard limit too when the process may (root, or
// CAP_SYS_RESOURCE); child processes inherit it. It returns the soft limit
// in force afterwards. Every simulated agent holds a socket, and so does
// the proxy or bridge end of it.
func RaiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	next := lim
	next.Cur = want
	if next.Max < want {
		next.Max = want
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err == nil {
		return want, nil
	} else if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EINVAL) {
		return lim.Cur, fmt.Errorf("setrlimit nofile %d: %w", want, err)
	}
	// Not allowed past the hard limit: take what there is.
	next = lim
	next.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		return lim.Cur, fmt.Errorf("setrlimit nofile %d: %w", lim.Max, err)
	}
	return lim.Max, nil
}

// ensureFiles raises the file limit, which child processes inherit, and
// fails early, with the remedy, when one process could not hold conns
// connections: the bridge holds one socket per node.
func ensureFiles(conns int, log *slog.Logger) error {
	want := uint64(conns) + fdReserve
	got, err := RaiseFileLimit(max(want, 1<<16))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	log.Info("open-file limit", "rlimit_nofile", got)
	if got < want {
		return fmt.Errorf("bench: the bridge needs about %d open files for %d connections but RLIMIT_NOFILE is at most %d here (hard limit; raising it needs root with CAP_SYS_RESOURCE, e.g. `ulimit -Hn 1048576` or LimitNOFILE=): run at most %d nodes",
			want, conns, got, int(got)-fdReserve)
	}
	return nil
}
