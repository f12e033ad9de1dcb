// Command cloudcore-bridge runs the SkyEdge cloud bridge: the MQTT endpoint
// edge agents report to, the fleet registry, workload placement and its
// HTTP API.
//
//	cloudcore-bridge -config /etc/skyedge/bridge.yaml
//	cloudcore-bridge -data-dir ./data -cert bridge.crt -key bridge.key -ca ca.crt
//
// Flags override the file. Exit status: 2 for a bad configuration, 1 when
// the bridge fails while running.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/skyedge/skyedge/cloudcore-bridge/bridge"
)

func main() {
	fs := flag.NewFlagSet("cloudcore-bridge", flag.ExitOnError)
	path := fs.String("config", "", "YAML configuration file (apiVersion "+bridge.APIVersion+", kind "+bridge.Kind+")")
	d := bridge.DefaultFileConfig()
	for _, f := range [][3]string{
		{"data-dir", d.DataDir, "directory of the bridge's store"},
		{"mode", d.Mode, "MQTT endpoint: embedded (broker inside the bridge) or external"},
		{"mqtt", d.Embedded.Listen, "embedded broker's mutual-TLS listen address"},
		{"mqtt-plain", "", "plaintext MQTT listen address (development only; identities unauthenticated)"},
		{"cert", "", "bridge certificate (server certificate embedded, client certificate external)"},
		{"key", "", "key of -cert"},
		{"ca", "", "CA certificate of the fleet (embedded) or of the broker (external)"},
		{"broker", "", "external broker URL, e.g. tls://broker:8883"},
		{"share-group", d.External.ShareGroup, "shared-subscription group of the bridge replicas"},
		{"http", d.HTTP.Listen, `HTTP API listen address ("" disables it)`},
		{"http-token", "", "bearer token of the HTTP API (required off loopback)"},
		{"catalog", "", "cloud catalog of the regions workloads may run in (e.g. examples/clouds.yaml)"},
		{"log-level", d.Log.Level, "debug, info, warn or error"},
		{"log-format", d.Log.Format, "text or json"},
	} {
		fs.String(f[0], f[1], f[2])
	}
	_ = fs.Parse(os.Args[1:])

	fc := d
	if *path != "" {
		var err error
		if fc, err = bridge.LoadFile(*path); err != nil {
			fail(2, err)
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "config" {
			_ = fc.Set(f.Name, f.Value.String())
		}
	})
	cfg, err := fc.Config(os.Stderr)
	if err != nil {
		fail(2, err)
	}
	b, err := bridge.New(cfg)
	if err != nil {
		fail(2, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := b.Run(ctx); err != nil {
		cfg.Logger.Error("bridge stopped", "error", err)
		os.Exit(1)
	}
}

func fail(code int, err error) {
	fmt.Fprintf(os.Stderr, "cloudcore-bridge: %v\n", err)
	os.Exit(code)
}
