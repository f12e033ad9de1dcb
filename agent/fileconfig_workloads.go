package agent

import (
	"fmt"
	"path/filepath"
)

// WorkloadsFileConfig is the file's workloads section: the workloads the
// node runs for the cloud.
//
//	workloads:
//	  enabled: true
//	  stateDir: ""                             # default: dataDir; state in <stateDir>/workloads/<name>
//	  dockerSocket: /var/run/docker.sock
//	  cgroupRoot: /sys/fs/cgroup/skyedge.slice # exec workloads' cpu.max and memory.max
//	  disableLimits: false
//	  logMaxSize: 1Mi                          # a workload's output rotates at this size
//	  logFiles: 3                              # files kept per workload, the live one included
//
// Every field is optional; the values above are the defaults.
type WorkloadsFileConfig struct {
	Enabled       bool   `yaml:"enabled"`
	StateDir      string `yaml:"stateDir"`
	DockerSocket  string `yaml:"dockerSocket"`
	CgroupRoot    string `yaml:"cgroupRoot"`
	DisableLimits bool   `yaml:"disableLimits"`
	LogMaxSize    Size   `yaml:"logMaxSize"`
	LogFiles      int    `yaml:"logFiles"`
}

// Bounds of the workloads section.
const (
	MinWorkloadLogSize  = 64 * KiB
	MaxWorkloadLogSize  = GiB
	MaxWorkloadLogFiles = 100
)

// defaultWorkloadsFileConfig is the workloads section's defaults, taken
// from the library configuration's.
func defaultWorkloadsFileConfig() WorkloadsFileConfig {
	d := defaultWorkloads()
	return WorkloadsFileConfig{
		Enabled:      true,
		DockerSocket: d.DockerSocket,
		CgroupRoot:   d.CgroupRoot,
		LogMaxSize:   Size(d.LogMaxBytes),
		LogFiles:     d.LogFiles,
	}
}

func (w *WorkloadsFileConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, p := range []struct{ field, path string }{
		{"workloads.stateDir", w.StateDir}, {"workloads.dockerSocket", w.DockerSocket}, {"workloads.cgroupRoot", w.CgroupRoot},
	} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			add("%s %q: must be an absolute path", p.field, p.path)
		}
	}
	if w.LogMaxSize < MinWorkloadLogSize || w.LogMaxSize > MaxWorkloadLogSize {
		add("workloads.logMaxSize %s: must be between %s and %s", w.LogMaxSize, MinWorkloadLogSize, MaxWorkloadLogSize)
	}
	if w.LogFiles < 1 || w.LogFiles > MaxWorkloadLogFiles {
		add("workloads.logFiles %d: must be between 1 and %d", w.LogFiles, MaxWorkloadLogFiles)
	}
	return errs
}

// apply writes the section into cfg; w must be valid.
func (w *WorkloadsFileConfig) apply(cfg *Config) {
	cfg.Workloads.Disabled = !w.Enabled
	cfg.Workloads.StateDir = w.StateDir
	if w.DockerSocket != "" {
		cfg.Workloads.DockerSocket = w.DockerSocket
	}
	if w.CgroupRoot != "" {
		cfg.Workloads.CgroupRoot = w.CgroupRoot
	}
	cfg.Workloads.DisableLimits = w.DisableLimits
	cfg.Workloads.LogMaxBytes = int64(w.LogMaxSize)
	cfg.Workloads.LogFiles = w.LogFiles
}
