// Package api is the bridge's HTTP API: health and readiness probes,
// Prometheus metrics, and the fleet registry as JSON.
//
//	GET /healthz              200 while the process serves HTTP
//	GET /readyz               200 once the MQTT endpoint is bound and the store open
//	GET /metrics              Prometheus exposition format
//	GET /api/v1/nodes         {"items": [Node...]} sorted by ID;
//	                          ?online=true|false, ?selector=k=v,k2=v2
//	GET /api/v1/nodes/{id}    one Node, or 404 {"error": "..."}
//	POST /api/v1/plan, GET /api/v1/workloads/{name}/explain, GET /api/v1/sites,
//	GET /api/v1/placements    placement (plan.go; documents in apiv1)
//	POST, GET /api/v1/workloads, GET, DELETE /api/v1/workloads/{name},
//	GET /api/v1/workloads/{name}/logs   workloads (workloads.go)
//
// When a token is configured, every path but the probes requires
// "Authorization: Bearer <token>".
package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
)

// Nodes is the part of the registry the API reads.
type Nodes interface {
	List() []registry.Node
	Get(id string) (registry.Node, bool)
}

// Config configures a Server.
type Config struct {
	// Addr is the listen address, e.g. "127.0.0.1:8080".
	Addr string
	// Token, when set, is the bearer token required on every path but the
	// probes.
	Token string
	// TLS, when set, serves HTTPS (with client certificates if it says so).
	TLS   *tls.Config
	Nodes Nodes
	// Planner answers the placement routes (plan, explain, sites,
	// placements); nil answers them 503.
	Planner Planner
	// Workloads answers the workload routes (workloads.go); nil answers
	// them 503.
	Workloads Workloads
	// Ready returns nil when the bridge is ready to serve nodes.
	Ready func() error
	// Metrics serves /metrics.
	Metrics http.Handler
	Logger  *slog.Logger
}

// Server is the HTTP API server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	srv   *http.Server
	ready chan struct{}
	addr  string // set before ready is closed
}

// New returns a Server; Run serves it.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = func() error { return nil }
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), ready: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         cfg.TLS,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler is the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.cfg.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.auth(s.cfg.Metrics))
	}
	mux.Handle("GET /api/v1/nodes", s.auth(http.HandlerFunc(s.listNodes)))
	mux.Handle("GET /api/v1/nodes/{id}", s.auth(http.HandlerFunc(s.getNode)))
	s.planRoutes(mux)
	s.workloadRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q", r.URL.Path))
	})
	return mux
}

// auth requires the bearer token, when one is configured.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="skyedge"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// NodeList is the body of GET /api/v1/nodes.
type NodeList struct {
	Items []registry.Node `json:"items"`
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var online *bool
	if v := q.Get("online"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("online=%q: want true or false", v))
			return
		}
		online = &b
	}
	sel, err := ParseSelector(q.Get("selector"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := make([]registry.Node, 0)
	for _, n := range s.cfg.Nodes.List() {
		if (online == nil || n.Online == *online) && sel.Matches(n.Labels) {
			items = append(items, n)
		}
	}
	writeJSON(w, http.StatusOK, NodeList{Items: items})
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, ok := s.cfg.Nodes.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("node %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// Selector is a conjunction of label equalities.
type Selector map[string]string

// ParseSelector parses "k=v,k2=v2"; "" selects everything.
func ParseSelector(s string) (Selector, error) {
	sel := Selector{}
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for _, term := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(term, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, "!=") || strings.Contains(v, "=") {
			return nil, fmt.Errorf("selector term %q: want key=value (terms separated by commas)", term)
		}
		sel[k] = v
	}
	return sel, nil
}

// Matches reports whether labels satisfy every term.
func (sel Selector) Matches(labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// Run listens on Addr and serves until ctx is cancelled, then shuts down
// gracefully (at most 5 s).
func (s *Server) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.cfg.Addr, err)
	}
	s.addr = l.Addr().String()
	close(s.ready)
	s.log.Info("HTTP API listening", "address", s.addr, "tls", s.cfg.TLS != nil, "token", s.cfg.Token != "")
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLS != nil {
			errc <- s.srv.ServeTLS(l, "", "")
		} else {
			errc <- s.srv.Serve(l)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}

// Ready is closed once the listener is bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the bound address, once Ready.
func (s *Server) Addr() string { return s.addr }
