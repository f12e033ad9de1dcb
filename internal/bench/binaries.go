package bench

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

const module = "github.com/skyedge/skyedge"

// FindAgentBinary returns the skyedge-agent executable the footprint
// scenario runs: the one next to this program (where `make build` puts
// both), or else one built from the source tree the working directory is
// in, as `make build` builds it (static, stripped), into the benchmark
// cache.
func FindAgentBinary(ctx context.Context) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "skyedge-agent")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("bench: no skyedge-agent next to this program and %w; give its path with --agent-bin", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	out := filepath.Join(cache, "skyedge-bench", "bin", "skyedge-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./agent/cmd/skyedge-agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: go build skyedge-agent: %w\n%s", err, msg)
	}
	return out, nil
}

// moduleRoot finds the SkyEdge source tree above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("module "+module)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the working directory is not in the SkyEdge source tree")
		}
		dir = parent
	}
}

// stripped reports whether an ELF executable has no symbol table.
func stripped(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return f.Section(".symtab") == nil, nil
}
