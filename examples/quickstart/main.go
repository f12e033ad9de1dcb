// Command quickstart runs a small SkyEdge fleet on this machine: it makes a
// development PKI (kept in the data directory and reused), starts the
// cloud bridge with its embedded MQTT broker, and three agents — a
// vehicle, a satellite and a factory node — connected over mutual TLS. It
// runs until interrupted and then stops every process cleanly. `make demo`
// runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory holding skyedge-agent, cloudcore-bridge and skyedge")
	flag.StringVar(&o.dir, "dir", ".demo", "data directory: PKI, bridge store, agent state, logs")
	flag.StringVar(&o.http, "http", "127.0.0.1:8080", "bridge HTTP API address")
	flag.StringVar(&o.mqtt, "mqtt", "127.0.0.1:8883", "bridge MQTT-over-TLS address")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
