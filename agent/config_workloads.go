package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/skyedge/skyedge/agent/internal/runner"
	"github.com/skyedge/skyedge/agent/internal/runner/cgroup"
	"github.com/skyedge/skyedge/agent/internal/runner/dockerapi"
)

// WorkloadsConfig configures the workloads the node runs for the cloud
// (agent/internal/runner): exec processes and Docker containers, kept
// running from the last desired set stored, with or without the cloud.
type WorkloadsConfig struct {
	// Disabled turns workloads off: the node takes no assignments (it
	// acknowledges none, so the cloud sees generation 0) and answers logs
	// requests with an error.
	Disabled bool
	// StateDir is where workloads keep their state and output, in
	// StateDir/workloads/<name>; empty means DataDir.
	StateDir string
	// DockerSocket is the Docker daemon's socket; empty means
	// /var/run/docker.sock. Docker is optional: without it docker
	// workloads fail with a status that says so, and are retried.
	DockerSocket string
	// CgroupRoot is the cgroup v2 directory under which each exec
	// workload gets its own cgroup with cpu.max and memory.max; empty
	// means /sys/fs/cgroup/skyedge.slice.
	CgroupRoot string
	// DisableLimits runs exec workloads without cgroup limits.
	DisableLimits bool
	// LogMaxBytes and LogFiles bound each workload's output: the live
	// file rotates at LogMaxBytes and LogFiles files are kept (zero: 1 MiB
	// and 3).
	LogMaxBytes int64
	LogFiles    int
	// CheckInterval is how often disconnect.stopAfter and log sizes are
	// checked (zero: 1 s).
	CheckInterval time.Duration
}

// Bounds of logs requests from the cloud.
const (
	// DefaultLogTail is the number of lines sent when a request asks for
	// none in particular, MaxLogTail the most a request gets.
	DefaultLogTail = 100
	MaxLogTail     = 5000
)

// runnerConfig is the runner's configuration for c in dataDir, without
// the callbacks.
func (c WorkloadsConfig) runnerConfig(dataDir string) runner.Config {
	dir := c.StateDir
	if dir == "" {
		dir = dataDir
	}
	return runner.Config{
		StateDir:      dir,
		DockerSocket:  c.DockerSocket,
		CgroupRoot:    c.CgroupRoot,
		DisableLimits: c.DisableLimits,
		LogMaxBytes:   c.LogMaxBytes,
		LogFiles:      c.LogFiles,
		CheckInterval: c.CheckInterval,
	}
}

// defaultWorkloads is WorkloadsConfig with its defaults spelt out.
func defaultWorkloads() WorkloadsConfig {
	return WorkloadsConfig{
		DockerSocket: dockerapi.DefaultSocket,
		CgroupRoot:   cgroup.DefaultRoot,
		LogMaxBytes:  runner.DefaultLogMaxBytes,
		LogFiles:     runner.DefaultLogFiles,
	}
}

// validate fills c's zero values and reports what is wrong.
func (c *WorkloadsConfig) validate() []error {
	d := defaultWorkloads()
	setZero(&c.DockerSocket, d.DockerSocket)
	setZero(&c.CgroupRoot, d.CgroupRoot)
	setZero(&c.LogMaxBytes, d.LogMaxBytes)
	setZero(&c.LogFiles, d.LogFiles)
	var errs []error
	for _, p := range []struct{ field, path string }{
		{"Workloads.StateDir", c.StateDir}, {"Workloads.DockerSocket", c.DockerSocket}, {"Workloads.CgroupRoot", c.CgroupRoot},
	} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			errs = append(errs, fmt.Errorf("%s %q: must be an absolute path", p.field, p.path))
		}
	}
	if c.LogMaxBytes < 0 || c.LogFiles < 0 || c.CheckInterval < 0 {
		errs = append(errs, errors.New("Workloads.LogMaxBytes, LogFiles and CheckInterval must not be negative"))
	}
	return errs
}
