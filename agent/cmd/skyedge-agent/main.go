// Command skyedge-agent is the SkyEdge edge agent: it reports the node's
// resources to the cloud over MQTT with mutual TLS, keeping what it must
// say in its outbox until the cloud acknowledges it, and runs the
// workloads the cloud assigns, with or without a link. Configure it with
// a file (-config) and override any setting with flags, or with flags
// only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/skyedge/skyedge/agent"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("skyedge-agent", flag.ContinueOnError)
	configPath := fs.String("config", "", "configuration file (YAML); flags override it")
	showVersion := fs.Bool("version", false, "print the version and exit")
	flags := agent.RegisterFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println("skyedge-agent", version)
		return 0
	}
	// Small devices: keep the heap, and so RSS, low unless told otherwise.
	// Most of the live heap is the outbox's memtable arena, which is
	// mostly untouched; the default GOGC would let garbage grow to its
	// size again before collecting. A quarter keeps idle RSS near the
	// live data at a GC every minute or so.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(24 << 20)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}

	fc := agent.DefaultFileConfig()
	if *configPath != "" {
		var err error
		if fc, err = agent.LoadFile(*configPath); err != nil {
			fmt.Fprintln(os.Stderr, "skyedge-agent:", err)
			return 2
		}
	}
	flags.Apply(fc)
	cfg, err := fc.ToConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "skyedge-agent: invalid configuration:\n%v\n", err)
		return 2
	}
	cfg.Logger = fc.NewLogger(os.Stderr)
	cfg.Version = version
	a, err := agent.New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "skyedge-agent: invalid configuration:\n%v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		cfg.Logger.Error("agent failed", "error", err)
		return 1
	}
	return 0
}
