package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// TestMain doubles as the child processes of the scenarios under
// test: the tests start this binary again with ChildEnvVar set.
func TestMain(m *testing.M) {
	if os.Getenv(ChildEnvVar) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := RunChild(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: errors on successful test run:", err)
			code = 1
		}
	}
	if sharedPKIDir != "" {
		os.RemoveAll(sharedPKIDir)
	}
	os.Exit(code)
}

var (
	sharedPKIOnce sync.Once
	sharedPKIDir  string
)

// testEnv is an Env whose bridge child is this test binary, with one PKI
// cache for every test of the run.
func testEnv(t *testing.T) Env {
	t.Helper()
	sharedPKIOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skyedge-bench-test-pki-")
		if err != nil {
			panic(err)
		}
		sharedPKIDir = dir
	})
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
	} else {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return Env{
		PKIDir:       filepath.Join(sharedPKIDir, "pki"),
		WorkDir:      t.TempDir(),
		ChildCommand: []string{os.Args[0]},
		Logger:       log,
	}
}
