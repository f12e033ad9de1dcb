package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// fakeWorkloads keeps workloads in memory; logs come from logsErr or
// answer with the node and tail asked for.
type fakeWorkloads struct {
	mu      sync.Mutex
	items   map[string]apiv1.Workload
	logsErr error
	asked   []string
}

func (f *fakeWorkloads) Apply(w *spec.Workload) (apiv1.Workload, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.items == nil {
		f.items = map[string]apiv1.Workload{}
	}
	_, exists := f.items[w.Metadata.Name]
	v := apiv1.Workload{Name: w.Metadata.Name, Spec: w.Spec, Wanted: w.Spec.Placement.Replicas, Replicas: []apiv1.Replica{}}
	f.items[w.Metadata.Name] = v
	return v, !exists, nil
}

func (f *fakeWorkloads) List() apiv1.WorkloadList {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out apiv1.WorkloadList
	for _, v := range f.items {
		out.Items = append(out.Items, v)
	}
	slices.SortFunc(out.Items, func(a, b apiv1.Workload) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (f *fakeWorkloads) Get(name string) (apiv1.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.items[name]
	if !ok {
		return apiv1.Workload{}, fmt.Errorf("workload %q: %w", name, ErrNotFound)
	}
	return v, nil
}

func (f *fakeWorkloads) Delete(name string) (apiv1.Workload, error) {
	v, err := f.Get(name)
	if err != nil {
		return v, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v.Deleting = true
	f.items[name] = v
	return v, nil
}

func (f *fakeWorkloads) Logs(_ context.Context, name, node string, tail int) (apiv1.Logs, error) {
	if _, err := f.Get(name); err != nil {
		return apiv1.Logs{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, fmt.Sprintf("%s@%s tail %d", name, node, tail))
	if f.logsErr != nil {
		return apiv1.Logs{}, f.logsErr
	}
	return apiv1.Logs{Workload: name, Node: node, Lines: []string{"hello"}}, nil
}

func do(t *testing.T, h http.Handler, method, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, rec.Body)
	}
	return rec.Code, out
}

const webYAML = `apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: web}
spec:
  runtime: exec
  exec: {command: /bin/sleep, args: ["60"]}
  resources: {cpu: 100m, memory: 16Mi}
`

func TestWorkloadRoutes(t *testing.T) {
	fw := &fakeWorkloads{}
	h := New(Config{Nodes: nodes, Workloads: fw}).Handler()

	code, body := do(t, h, "POST", "/api/v1/workloads", "application/yaml", webYAML)
	if code != http.StatusCreated || body["name"] != "web" || body["wanted"] != 1.0 {
		t.Fatalf("POST (new) = %d %v, want 201 and the workload", code, body)
	}
	// The same workload as JSON: an update.
	asJSON := `{"apiVersion":"skyedge.io/v1alpha1","kind":"Workload","metadata":{"name":"web"},
		"spec":{"runtime":"exec","exec":{"command":"/bin/sleep"},"resources":{"cpu":"100m","memory":"16Mi"},"placement":{"replicas":2}}}`
	if code, body = do(t, h, "POST", "/api/v1/workloads", "application/json; charset=utf-8", asJSON); code != http.StatusOK || body["wanted"] != 2.0 {
		t.Errorf("POST (update, JSON) = %d %v, want 200", code, body)
	}
	// Without a Content-Type the document is sniffed.
	if code, _ = do(t, h, "POST", "/api/v1/workloads", "", strings.Replace(webYAML, "name: web", "name: db", 1)); code != http.StatusCreated {
		t.Errorf("POST without Content-Type = %d, want 201", code)
	}

	code, body = do(t, h, "GET", "/api/v1/workloads", "", "")
	if items, _ := body["items"].([]any); code != 200 || len(items) != 2 {
		t.Errorf("GET list = %d %v, want two items", code, body)
	}
	if code, body = do(t, h, "GET", "/api/v1/workloads/web", "", ""); code != 200 || body["name"] != "web" {
		t.Errorf("GET web = %d %v", code, body)
	}
	if code, body = do(t, h, "GET", "/api/v1/workloads/web/logs?node=n1&tail=20", "", ""); code != 200 || body["node"] != "n1" {
		t.Errorf("GET logs = %d %v", code, body)
	}
	if code, _ = do(t, h, "GET", "/api/v1/workloads/web/logs", "", ""); code != 200 {
		t.Errorf("GET logs without node = %d, want 200", code)
	}
	if want := []string{"web@n1 tail 20", "web@ tail 0"}; !slices.Equal(fw.asked, want) {
		t.Errorf("logs asked %v, want %v", fw.asked, want)
	}
	if code, body = do(t, h, "DELETE", "/api/v1/workloads/web", "", ""); code != 200 || body["deleting"] != true {
		t.Errorf("DELETE web = %d %v, want 200 and deleting", code, body)
	}
}

func TestWorkloadRouteErrors(t *testing.T) {
	fw := &fakeWorkloads{}
	h := New(Config{Nodes: nodes, Workloads: fw}).Handler()
	if code, _ := do(t, h, "POST", "/api/v1/workloads", "", webYAML); code != http.StatusCreated {
		t.Fatalf("POST = %d", code)
	}
	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		wantErr                         string
	}{
		{"bad YAML", "POST", "/api/v1/workloads", "application/yaml", "spec: [unclosed", 400, "parse workload"},
		{"unknown field", "POST", "/api/v1/workloads", "", strings.Replace(webYAML, "runtime: exec", "runtime: exec\n  colour: red", 1), 400, "colour"},
		{"invalid field", "POST", "/api/v1/workloads", "", strings.Replace(webYAML, "memory: 16Mi", "memory: 16MB", 1), 400, "spec.resources.memory"},
		{"oversize", "POST", "/api/v1/workloads", "", webYAML + "#" + strings.Repeat("x", spec.MaxDocumentSize), 413, "limit"},
		{"empty", "POST", "/api/v1/workloads", "application/json", "", 400, "empty"},
		{"wrong type", "POST", "/api/v1/workloads", "multipart/form-data", webYAML, 415, "Content-Type"},
		{"unknown name", "GET", "/api/v1/workloads/nope", "", "", 404, "nope"},
		{"delete unknown", "DELETE", "/api/v1/workloads/nope", "", "", 404, "nope"},
		{"logs of unknown", "GET", "/api/v1/workloads/nope/logs", "", "", 404, "nope"},
		{"bad tail", "GET", "/api/v1/workloads/web/logs?tail=lots", "", "", 400, "tail"},
		{"tail too large", "GET", "/api/v1/workloads/web/logs?tail=99999999", "", "", 400, "tail"},
	}
	for _, tc := range tests {
		code, body := do(t, h, tc.method, tc.path, tc.ctype, tc.body)
		msg, _ := body["error"].(string)
		if code != tc.code || !strings.Contains(msg, tc.wantErr) {
			t.Errorf("%s: %s %s = %d %q, want %d mentioning %q", tc.name, tc.method, tc.path, code, msg, tc.code, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: node n1 offline", ErrConflict), 409},
		{fmt.Errorf("%w: no answer in 10s", ErrTimeout), 504},
		{fmt.Errorf("%w: too many waiting", ErrUnavailable), 503},
		{fmt.Errorf("%w: no log file", ErrBadGateway), 502},
		{fmt.Errorf("workload web has no replica on n9: %w", ErrNotFound), 404},
		{fmt.Errorf("something broke"), 500},
	} {
		fw.logsErr = tc.err
		if code, body := do(t, h, "GET", "/api/v1/workloads/web/logs?node=n1", "", ""); code != tc.code || body["error"] != tc.err.Error() {
			t.Errorf("logs failing with %q = %d %v, want %d", tc.err, code, body, tc.code)
		}
	}
}

func TestWorkloadRoutesNeedTokenAndConfig(t *testing.T) {
	h := New(Config{Nodes: nodes, Workloads: &fakeWorkloads{}, Token: "s3cret-token-0123456789"}).Handler()
	for _, path := range []string{"/api/v1/workloads", "/api/v1/workloads/web", "/api/v1/workloads/web/logs"} {
		if code, _ := do(t, h, "GET", path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token = %d, want 401", path, code)
		}
	}
	h = New(Config{Nodes: nodes}).Handler()
	if code, _ := do(t, h, "GET", "/api/v1/workloads", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("GET /api/v1/workloads without Workloads = %d, want 503", code)
	}
}
