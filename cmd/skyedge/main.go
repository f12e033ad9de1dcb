// Command skyedge is the operator CLI of SkyEdge: certificates for a
// fleet, and the fleet's state as the bridge sees it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/skyedge/skyedge/internal/cli"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{Args: os.Args[1:], Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Version: version})
	stop()
	os.Exit(code)
}
