// Package bridge is the SkyEdge cloud bridge: the one type that builds and
// owns every subsystem of the cloudcore-bridge binary — the MQTT endpoint
// (an embedded broker, or a shared subscription on an external one),
// ingest, the fleet registry and its Badger store, the workload store,
// the placement controller, desired-state dispatch, the logs broker,
// metrics and the HTTP API — and runs them until its context is
// cancelled.
package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sync/errgroup"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/api"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/controller"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/dispatch"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/endpoint"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/ingest"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logonce"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/logs"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/metrics"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/scheduler/catalog"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/store"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/workloads"
	"github.com/skyedge/skyedge/internal/pki"
)

// Bridge is a configured cloud bridge.
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	mqttTLS *tls.Config
	catalog *catalog.Catalog
	started atomic.Bool
	ready   chan struct{}

	// Set before ready is closed.
	mqttAddr, plainAddr, httpAddr string
}

// New checks cfg and loads its certificates. It binds nothing; Run does.
func New(cfg Config) (*Bridge, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bridge config: %w", err)
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger.With("component", "bridge"), ready: make(chan struct{})}
	var err error
	switch cfg.Mode {
	case ModeEmbedded:
		b.mqttTLS = cfg.Embedded.TLS
		if b.mqttTLS == nil {
			b.mqttTLS, err = pki.ServerTLS(cfg.Embedded.CertFile, cfg.Embedded.KeyFile, cfg.Embedded.CAFile)
		}
	case ModeExternal:
		b.mqttTLS = cfg.External.TLS
		if b.mqttTLS == nil {
			b.mqttTLS, err = pki.ClientTLS(cfg.External.CertFile, cfg.External.KeyFile, cfg.External.CAFile, "")
		}
		if err == nil && b.cfg.External.ClientID == "" {
			b.cfg.External.ClientID, err = commonName(b.mqttTLS)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bridge config: %w", err)
	}
	b.catalog = cfg.Catalog
	if b.catalog == nil && cfg.CatalogFile != "" {
		data, err := os.ReadFile(cfg.CatalogFile)
		if err == nil {
			b.catalog, err = catalog.LoadCatalog(data)
		}
		if err != nil {
			return nil, fmt.Errorf("bridge config: workloads.catalogFile: %w", err)
		}
	}
	return b, nil
}

// commonName is the common name of the first certificate of c.
func commonName(c *tls.Config) (string, error) {
	if len(c.Certificates) == 0 || len(c.Certificates[0].Certificate) == 0 {
		return "", errors.New("external.clientID: not set and the TLS config has no certificate to take it from")
	}
	cert, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil {
		return "", fmt.Errorf("external.clientID: parse the bridge certificate: %w", err)
	}
	if cert.Subject.CommonName == "" {
		return "", errors.New("external.clientID: not set and the bridge certificate has no common name")
	}
	return cert.Subject.CommonName, nil
}

// Run opens the store, starts every subsystem and serves until ctx is
// cancelled. It then stops the endpoint and the API, flushes the registry
// and closes the store; cancellation returns nil. A Bridge runs once.
func (b *Bridge) Run(ctx context.Context) (err error) {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice")
	}
	cfg := b.cfg
	db, err := store.Open(cfg.DataDir, cfg.Logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
	}()

	m := metrics.New()
	// Nodes are acknowledged from what each registry flush committed; the
	// first flush runs after in is set.
	var in *ingest.Ingester
	reg, err := registry.Open(registry.Config{
		DB: db, Logger: cfg.Logger, Clock: cfg.Clock, FlushInterval: cfg.FlushInterval,
		ObserveFlush: func(d time.Duration) { m.RegistryFlush.Observe(d.Seconds()) },
		Durable:      func(ds []registry.Durable) { in.Acknowledge(ds) },
	})
	if err != nil {
		return err
	}
	if cfg.Mode == ModeEmbedded {
		// Nothing is connected to a broker that has just started.
		if n := reg.MarkAllOffline(endpoint.ReasonBridgeRestart); n > 0 {
			b.log.Info("nodes marked offline until they reconnect", "nodes", n)
		}
	}

	var ep endpoint.Endpoint
	pub := publishFunc(func(topic string, p []byte) error { return ep.Publish(topic, p) })
	ctl, disp, broker, err := b.workloads(db, reg, pub, m)
	if err != nil {
		return err
	}
	in = ingest.New(ingest.Config{
		Registry:  reg,
		Publisher: pub,
		Workloads: disp,
		Logs:      broker,
		Metrics:   m,
		Logger:    cfg.Logger,
		Clock:     cfg.Clock,
	})
	var h endpoint.Handler = in
	if cfg.NoopIngest {
		h = discard{}
		b.log.Warn("ingest disabled: every message is accepted and discarded (benchmark mode)")
	}
	ep, epReady, connected, err := b.endpoint(h, in, m)
	if err != nil {
		return err
	}

	var srv *api.Server
	if cfg.HTTPAddr != "" {
		srv = api.New(api.Config{
			Addr: cfg.HTTPAddr, Token: cfg.HTTPToken, TLS: cfg.HTTPTLS,
			Nodes: reg, Planner: ctl, Workloads: ctl, Metrics: m.Handler(), Logger: cfg.Logger,
			Ready: func() error {
				select {
				case <-b.ready:
				default:
					return errors.New("starting")
				}
				if db.IsClosed() {
					return errors.New("store closed")
				}
				if !connected() {
					return endpoint.ErrNotConnected
				}
				return nil
			},
		})
	}

	// The registry flushes until everything that writes to it has stopped.
	flushCtx, stopFlush := context.WithCancel(context.Background())
	flushDone := make(chan error, 1)
	go func() { flushDone <- reg.Run(flushCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ep.Run(gctx) })
	g.Go(func() error { return store.RunGC(gctx, db, cfg.Clock, cfg.Logger.With("component", "store")) })
	g.Go(func() error { return ctl.Run(gctx) })
	g.Go(func() error { return disp.Run(gctx) })
	if srv != nil {
		g.Go(func() error { return srv.Run(gctx) })
	}
	g.Go(func() error {
		for _, c := range []<-chan struct{}{epReady, apiReady(srv)} {
			select {
			case <-c:
			case <-gctx.Done():
				return nil
			}
		}
		if e, ok := ep.(*endpoint.Embedded); ok {
			b.mqttAddr, b.plainAddr = e.Addr(), e.PlainAddr()
		}
		if srv != nil {
			b.httpAddr = srv.Addr()
		}
		close(b.ready)
		b.log.Info("bridge ready", "mode", cfg.Mode, "mqtt", b.mqttAddr, "http", b.httpAddr, "nodes", reg.Len())
		return nil
	})
	err = g.Wait()
	stopFlush()
	return errors.Join(err, <-flushDone)
}

// workloads builds the workload side: the store, the dispatcher that
// syncs desired state, the logs broker and the placement controller.
func (b *Bridge) workloads(db *badger.DB, reg *registry.Registry, pub publishFunc, m *metrics.Metrics) (
	*controller.Controller, *dispatch.Dispatcher, *logs.Broker, error,
) {
	cfg := b.cfg
	st, err := workloads.Open(workloads.Config{DB: db, Logger: cfg.Logger, Clock: cfg.Clock})
	if err != nil {
		return nil, nil, nil, err
	}
	online := func(node string) bool {
		online := false
		reg.View(node, func(n *registry.Node) { online = n.Online })
		return online
	}
	// The dispatcher and the controller call each other; neither runs
	// before both exist.
	var ctl *controller.Controller
	disp := dispatch.New(dispatch.Config{
		Store: st, Publisher: pub, Online: online, Metrics: m, Logger: cfg.Logger, Clock: cfg.Clock,
		Trigger:       func() { ctl.Notify() },
		CapacityError: func(site string) { ctl.CapacityError(site) },
	})
	broker := logs.New(logs.Config{
		Publisher: pub, Online: online, Clock: cfg.Clock, Logger: cfg.Logger,
		Timeout: cfg.LogsTimeout, Requests: m.LogsRequests,
	})
	ctl, err = controller.New(controller.Config{
		Store: st, Nodes: reg, Catalog: b.catalog, Sender: disp, Logs: broker, Metrics: m,
		Logger: cfg.Logger, Clock: cfg.Clock, Interval: cfg.ReconcileInterval, NodeLostAfter: cfg.NodeLostAfter,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return ctl, disp, broker, nil
}

// endpoint builds the configured MQTT endpoint. connected reports whether
// it can currently reach nodes.
func (b *Bridge) endpoint(h endpoint.Handler, in *ingest.Ingester, m *metrics.Metrics) (
	ep endpoint.Endpoint, ready <-chan struct{}, connected func() bool, err error,
) {
	cfg := b.cfg
	if cfg.Mode == ModeExternal {
		x, err := endpoint.NewExternal(endpoint.ExternalConfig{
			Broker: cfg.External.Broker, ClientID: cfg.External.ClientID, ShareGroup: cfg.External.ShareGroup,
			TLS: b.mqttTLS, KeepAlive: cfg.External.KeepAlive, Workers: cfg.External.Workers,
			Handler: h, Refused: in.Refused, Logger: cfg.Logger, Clock: cfg.Clock,
		})
		if err != nil {
			return nil, nil, nil, err
		}
		return x, x.Ready(), x.Connected, nil
	}
	once := logonce.New(ingest.LogEvery, 10000)
	e, err := endpoint.NewEmbedded(endpoint.EmbeddedConfig{
		ListenAddr: cfg.Embedded.ListenAddr, PlainAddr: cfg.Embedded.PlainAddr, TLS: b.mqttTLS,
		Handler: h, Refused: in.Refused, Logger: cfg.Logger,
		HandshakeFailed: func(remote net.Addr, err error) {
			m.HandshakeFailures.Inc()
			host, _, _ := net.SplitHostPort(remote.String())
			if once.Allow(host, cfg.Clock.Now()) {
				b.log.Warn("TLS handshake failed; further failures from this host are only counted for an hour",
					"remote", remote.String(), "error", err)
			}
		},
		HandshakeDone: func(resumed bool) { m.Handshakes.WithLabelValues(strconv.FormatBool(resumed)).Inc() },
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return e, e.Ready(), func() bool { return true }, nil
}

func apiReady(s *api.Server) <-chan struct{} {
	if s == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.Ready()
}

// Ready is closed once the listeners are bound (in external mode: the
// broker subscription is in place) and the store is open.
func (b *Bridge) Ready() <-chan struct{} { return b.ready }

// MQTTAddr is the bound address of the embedded broker's TLS listener,
// once Ready; "" in external mode.
func (b *Bridge) MQTTAddr() string { return b.readyField(&b.mqttAddr) }

// PlainAddr is the bound address of the plaintext MQTT listener, once
// Ready; "" when there is none.
func (b *Bridge) PlainAddr() string { return b.readyField(&b.plainAddr) }

// HTTPAddr is the bound address of the HTTP API, once Ready; "" when it is
// disabled.
func (b *Bridge) HTTPAddr() string { return b.readyField(&b.httpAddr) }

func (b *Bridge) readyField(f *string) string {
	select {
	case <-b.ready:
		return *f
	default:
		return ""
	}
}

type publishFunc func(topic string, payload []byte) error

func (f publishFunc) Publish(topic string, payload []byte) error { return f(topic, payload) }

// discard is the handler of NoopIngest.
type discard struct{}

func (discard) Message(string, string, []byte) error { return nil }
func (discard) Connected(string)                     {}
func (discard) Disconnected(string, string)          {}
