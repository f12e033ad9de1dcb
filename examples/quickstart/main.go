// Command quickstart runs a small SkyEdge fleet on this machine: it makes a
// development PKI (kept in the data directory and reused), starts the
// cloud bridge with its embedded MQTT broker and the cloud catalog of
// examples/clouds.yaml, and four agents connected over mutual TLS: a
// vehicle, a satellite and a factory node, plus cloud-gwc, the agent that
// runs the workloads placed in the azure-germanywestcentral region. Once
// the nodes are online it applies the workloads of examples/workloads
// (hello-exec, hello-docker, sky-residency) through the bridge's API.
//
// It runs until interrupted; it then deletes every workload through the
// API, so that no workload process or container is left on this machine
// (agents leave workloads running when they stop, by design), and stops
// every process it started. A second interrupt skips the deletion. `make
// demo` runs it.
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

// defaultHTTP is the bridge API address the skyedge CLI uses by default.
const defaultHTTP = "127.0.0.1:8080"

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory holding skyedge-agent, cloudcore-bridge and skyedge")
	flag.StringVar(&o.dir, "dir", ".demo", "data directory: PKI, bridge store, agent state, logs")
	flag.StringVar(&o.http, "http", defaultHTTP, "bridge HTTP API address")
	flag.StringVar(&o.mqtt, "mqtt", "127.0.0.1:8883", "bridge MQTT-over-TLS address")
	flag.StringVar(&o.examples, "examples", "examples", "the repository's examples directory: clouds.yaml and workloads/")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
