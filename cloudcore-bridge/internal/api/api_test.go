package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fleet is a fixed set of nodes.
type fleet []registry.Node

func (f fleet) List() []registry.Node { return f }

func (f fleet) Get(id string) (registry.Node, bool) {
	for _, n := range f {
		if n.ID == id {
			return n, true
		}
	}
	return registry.Node{}, false
}

var nodes = fleet{
	{ID: "a", Online: true, Labels: map[string]string{"fleet": "trucks", "region": "eu"}},
	{ID: "b", Online: false, Labels: map[string]string{"fleet": "trucks", "region": "us"}},
	{ID: "c", Online: true, Labels: map[string]string{"fleet": "sats"}},
}

func get(t *testing.T, h http.Handler, path, token string) (int, map[string]any, []string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil && rec.Header().Get("Content-Type") == "application/json" {
		t.Fatalf("GET %s: body is not JSON: %v\n%s", path, err, rec.Body)
	}
	var ids []string
	if items, ok := body["items"].([]any); ok {
		for _, it := range items {
			ids = append(ids, it.(map[string]any)["id"].(string))
		}
	}
	return rec.Code, body, ids
}

func TestNodes(t *testing.T) {
	h := New(Config{Nodes: nodes}).Handler()
	tests := []struct {
		path     string
		wantCode int
		wantIDs  []string
	}{
		{"/api/v1/nodes", 200, []string{"a", "b", "c"}},
		{"/api/v1/nodes?online=true", 200, []string{"a", "c"}},
		{"/api/v1/nodes?online=false", 200, []string{"b"}},
		{"/api/v1/nodes?selector=fleet=trucks", 200, []string{"a", "b"}},
		{"/api/v1/nodes?selector=fleet=trucks,region=eu", 200, []string{"a"}},
		{"/api/v1/nodes?selector=fleet=trucks&online=false", 200, []string{"b"}},
		{"/api/v1/nodes?selector=fleet=boats", 200, nil},
		{"/api/v1/nodes?online=maybe", 400, nil},
		{"/api/v1/nodes?selector=fleet", 400, nil},
		{"/api/v1/nodes?selector=fleet!=trucks", 400, nil},
	}
	for _, tt := range tests {
		code, body, ids := get(t, h, tt.path, "")
		if code != tt.wantCode {
			t.Errorf("GET %s = %d, want %d (%v)", tt.path, code, tt.wantCode, body)
			continue
		}
		if code != 200 {
			if _, ok := body["error"].(string); !ok {
				t.Errorf("GET %s = %v, want an error message", tt.path, body)
			}
			continue
		}
		if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
			t.Errorf("GET %s IDs (-want +got):\n%s", tt.path, diff)
		}
	}

	code, body, _ := get(t, h, "/api/v1/nodes/b", "")
	if code != 200 || body["id"] != "b" || body["online"] != false {
		t.Errorf("GET /api/v1/nodes/b = %d %v, want node b", code, body)
	}
	code, body, _ = get(t, h, "/api/v1/nodes/zz", "")
	if code != 404 || body["error"] != `node "zz" not found` {
		t.Errorf("GET /api/v1/nodes/zz = %d %v, want 404 with an error", code, body)
	}
}

func TestToken(t *testing.T) {
	notReady := errors.New("store closed")
	ready := error(nil)
	h := New(Config{
		Nodes: nodes, Token: "s3cret-token-0123456789",
		Ready:   func() error { return ready },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("m 1\n")) }),
	}).Handler()
	tests := []struct {
		path, token string
		want        int
	}{
		{"/api/v1/nodes", "", 401},
		{"/api/v1/nodes", "wrong", 401},
		{"/api/v1/nodes", "s3cret-token-0123456789", 200},
		{"/api/v1/nodes/a", "", 401},
		{"/api/v1/nodes/a", "s3cret-token-0123456789", 200},
		{"/metrics", "", 401},
		{"/metrics", "s3cret-token-0123456789", 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
	}
	for _, tt := range tests {
		if code, _, _ := get(t, h, tt.path, tt.token); code != tt.want {
			t.Errorf("GET %s with token %q = %d, want %d", tt.path, tt.token, code, tt.want)
		}
	}
	ready = notReady
	if code, body, _ := get(t, h, "/readyz", ""); code != 503 || body["error"] != "not ready: store closed" {
		t.Errorf("GET /readyz while not ready = %d %v, want 503 with the reason", code, body)
	}
}

func TestRunShutsDown(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0", Nodes: nodes})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz = %d, want 200", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() after cancel = %v, want nil", err)
	}
	http.DefaultClient.CloseIdleConnections()
}
