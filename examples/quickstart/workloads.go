package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
)

// demoWorkloads are the files of examples/workloads the demo applies.
var demoWorkloads = []string{"hello-exec.yaml", "hello-docker.yaml", "sky-residency.yaml"}

// removeTimeout bounds the deletion of the workloads when the demo stops.
const removeTimeout = 30 * time.Second

// examples is what the demo reads from the repository's examples.
type examples struct {
	catalog   string // absolute path of clouds.yaml
	workloads []workloadFile
}

type workloadFile struct {
	path string
	doc  []byte
}

// loadExamples finds the catalog and reads the workloads under dir, so a
// missing file stops the demo before it starts anything.
func loadExamples(dir string) (examples, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return examples{}, err
	}
	ex := examples{catalog: filepath.Join(abs, "clouds.yaml")}
	if _, err := os.Stat(ex.catalog); err != nil {
		return examples{}, fmt.Errorf("cloud catalog: %w (run from the repository root or pass -examples)", err)
	}
	for _, name := range demoWorkloads {
		path := filepath.Join(abs, "workloads", name)
		doc, err := os.ReadFile(path)
		if err != nil {
			return examples{}, fmt.Errorf("workload: %w (run from the repository root or pass -examples)", err)
		}
		ex.workloads = append(ex.workloads, workloadFile{path: path, doc: doc})
	}
	return ex, nil
}

// apiClient talks to the bridge's HTTP API.
type apiClient struct {
	base   string
	client *http.Client
}

func newAPI(addr string) *apiClient {
	return &apiClient{base: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}}
}

// statusError is an error answer of the API.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.msg) }

// do sends a request with an optional YAML body and decodes a JSON answer
// into out when out is not nil.
func (a *apiClient) do(ctx context.Context, method, path string, yamlBody []byte, out any) error {
	var body io.Reader
	if yamlBody != nil {
		body = bytes.NewReader(yamlBody)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if yamlBody != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e apiv1.Error
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return fmt.Errorf("%s %s: %w", method, path, &statusError{resp.StatusCode, e.Error})
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return nil
}

// waitOnline waits until every node of the fleet is online, or a process
// of the demo exits, or timeout passes. An interrupt returns nil: run
// then stops the demo.
func (a *apiClient) waitOnline(ctx context.Context, exit <-chan *proc, timeout time.Duration) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		missing, err := a.offline(ctx)
		if err == nil && len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case p := <-exit:
			return fmt.Errorf("%s exited unexpectedly: %v (see %s)", p.name, p.err, p.logPath)
		case <-deadline:
			if err != nil {
				return fmt.Errorf("nodes not online after %v: %w", timeout, err)
			}
			return fmt.Errorf("nodes %s not online after %v: see their logs", strings.Join(missing, ", "), timeout)
		case <-tick.C:
		}
	}
}

// offline lists the nodes of the fleet the bridge does not see online.
func (a *apiClient) offline(ctx context.Context) ([]string, error) {
	var list struct {
		Items []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		} `json:"items"`
	}
	if err := a.do(ctx, http.MethodGet, "/api/v1/nodes", nil, &list); err != nil {
		return nil, err
	}
	online := make(map[string]bool, len(list.Items))
	for _, n := range list.Items {
		online[n.ID] = n.Online
	}
	var missing []string
	for _, n := range fleet {
		if !online[n.name] {
			missing = append(missing, n.name)
		}
	}
	return missing, nil
}

// apply applies one workload document. The bridge places it right after
// answering; `skyedge workloads list` shows where.
func (a *apiClient) apply(ctx context.Context, f workloadFile, log *slog.Logger) error {
	var w apiv1.Workload
	if err := a.do(ctx, http.MethodPost, "/api/v1/workloads", f.doc, &w); err != nil {
		return fmt.Errorf("apply %s: %w", f.path, err)
	}
	log.Info("workload applied", "workload", w.Name, "replicas", w.Wanted, "revision", w.Revision)
	return nil
}

// removeWorkloads deletes every workload through the API and waits until
// the bridge has let them go, that is until their nodes have stopped
// them: agents leave workloads running when they stop, so without this
// the demo's processes and containers would outlive it. It gives up after
// removeTimeout, or at once on a second interrupt.
func removeWorkloads(a *apiClient, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	names, err := a.workloadNames(ctx)
	if err != nil {
		log.Warn("cannot list the workloads to delete them; their processes may outlive the demo", "error", err)
		return
	}
	if len(names) == 0 {
		return
	}
	begin := time.Now()
	log.Info("deleting the workloads, so that nothing keeps running on this machine (interrupt again to skip)", "workloads", names)
	for _, name := range names {
		err := a.do(ctx, http.MethodDelete, "/api/v1/workloads/"+url.PathEscape(name), nil, nil)
		var se *statusError
		if err != nil && !(errors.As(err, &se) && se.code == http.StatusNotFound) {
			log.Warn("delete workload", "workload", name, "error", err)
		}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		left, err := a.workloadNames(ctx)
		if err == nil && len(left) == 0 {
			log.Info("workloads deleted", "took", time.Since(begin).Round(time.Millisecond))
			return
		}
		if err == nil {
			names = left
		}
		select {
		case <-ctx.Done():
			log.Warn("workloads not stopped in time; their processes may outlive the demo", "workloads", names, "error", context.Cause(ctx))
			return
		case <-tick.C:
		}
	}
}

func (a *apiClient) workloadNames(ctx context.Context) ([]string, error) {
	var list apiv1.WorkloadList
	if err := a.do(ctx, http.MethodGet, "/api/v1/workloads", nil, &list); err != nil {
		return nil, err
	}
	names := make([]string, len(list.Items))
	for i, w := range list.Items {
		names[i] = w.Name
	}
	return names, nil
}
