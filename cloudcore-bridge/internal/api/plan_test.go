package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// fakePlanner records what it was asked and answers from its fields.
type fakePlanner struct {
	planned    *spec.Workload
	planErr    error
	explained  string
	placedFor  string
	sites      apiv1.SiteList
	placements apiv1.PlacementList
}

func (f *fakePlanner) Plan(w *spec.Workload) (apiv1.Plan, error) {
	f.planned = w
	if f.planErr != nil {
		return apiv1.Plan{}, f.planErr
	}
	return apiv1.Plan{Workload: w.Metadata.Name, Wanted: w.Spec.Placement.Replicas, Summary: "1/1 sites",
		Chosen: []apiv1.PlannedReplica{{Site: "aws-eu-central-1", Kind: "cloud"}}}, nil
}

func (f *fakePlanner) Explain(name string) (apiv1.Plan, error) {
	f.explained = name
	switch name {
	case "known":
		return apiv1.Plan{Workload: name, Summary: "2/3 sites: 1 wrong tier"}, nil
	case "broken":
		return apiv1.Plan{}, errors.New("snapshot: placement \"p1\": listed twice")
	}
	return apiv1.Plan{}, fmt.Errorf("workload %s: %w", name, ErrNotFound)
}

func (f *fakePlanner) Sites() apiv1.SiteList { return f.sites }

func (f *fakePlanner) Placements(workload string) apiv1.PlacementList {
	f.placedFor = workload
	return f.placements
}

const planYAML = `apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: hello}
spec:
  runtime: exec
  exec: {command: /bin/true}
  resources: {cpu: 100m, memory: 16Mi}
  placement: {replicas: 2}
`

func planDo(t *testing.T, h http.Handler, method, path, body, token string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return rec.Code, rec.Body.String()
}

func TestPlanRoutes(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	fp := &fakePlanner{
		sites: apiv1.SiteList{Items: []apiv1.Site{{ID: "truck-042", Kind: "edge", Link: "online"}}},
		placements: apiv1.PlacementList{Items: []apiv1.PlacementRecord{{At: at, Workload: "hello", Site: "truck-042",
			Action: "place", Cause: "pending"}}},
	}
	h := New(Config{Nodes: nodes, Planner: fp, Token: "s3cret"}).Handler()
	planJSON := `{"apiVersion":"skyedge.io/v1alpha1","kind":"Workload","metadata":{"name":"hello-json"},
		"spec":{"runtime":"exec","exec":{"command":"/bin/true"},"resources":{"cpu":"100m","memory":"16Mi"}}}`
	tests := []struct {
		name         string
		method, path string
		body         string
		token        string
		code         int
		want         string // in the body
	}{
		{"plan yaml", "POST", "/api/v1/plan", planYAML, "s3cret", 200, `"workload": "hello"`},
		{"plan json", "POST", "/api/v1/plan", planJSON, "s3cret", 200, `"workload": "hello-json"`},
		{"plan without token", "POST", "/api/v1/plan", planYAML, "", 401, "bearer token"},
		{"plan empty", "POST", "/api/v1/plan", "", "s3cret", 400, "empty document"},
		{"plan unknown field", "POST", "/api/v1/plan", strings.Replace(planYAML, "runtime: exec", "runtime: exec\n  color: red", 1),
			"s3cret", 400, "field color not found"},
		{"plan invalid field", "POST", "/api/v1/plan", strings.Replace(planYAML, "16Mi", "16MB", 1),
			"s3cret", 400, "spec.resources.memory"},
		{"plan too big", "POST", "/api/v1/plan", planYAML + "# " + strings.Repeat("x", spec.MaxDocumentSize), "s3cret", 413, "limit"},
		{"plan wrong method", "GET", "/api/v1/plan", "", "s3cret", 404, "no such path"},
		{"explain", "GET", "/api/v1/workloads/known/explain", "", "s3cret", 200, `"summary": "2/3 sites: 1 wrong tier"`},
		{"explain unknown", "GET", "/api/v1/workloads/nope/explain", "", "s3cret", 404, `workload \"nope\" not found`},
		{"explain failing", "GET", "/api/v1/workloads/broken/explain", "", "s3cret", 500, "listed twice"},
		{"sites", "GET", "/api/v1/sites", "", "s3cret", 200, `"id": "truck-042"`},
		{"sites without token", "GET", "/api/v1/sites", "", "wrong", 401, "bearer token"},
		{"placements", "GET", "/api/v1/placements?workload=hello", "", "s3cret", 200, `"cause": "pending"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := planDo(t, h, tc.method, tc.path, tc.body, tc.token)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s = %d %s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
			}
		})
	}
	if fp.planned == nil || fp.planned.Metadata.Name != "hello-json" || fp.planned.Spec.Placement.Replicas != 1 {
		t.Errorf("Plan got %+v, want hello-json with the default of 1 replica", fp.planned)
	}
	if fp.explained != "broken" || fp.placedFor != "hello" {
		t.Errorf("Explain(%q), Placements(%q); want broken, hello", fp.explained, fp.placedFor)
	}

	// The plan answer decodes into the apiv1 document.
	_, body := planDo(t, h, "POST", "/api/v1/plan", planYAML, "s3cret")
	var plan apiv1.Plan
	if err := json.Unmarshal([]byte(body), &plan); err != nil {
		t.Fatal(err)
	}
	want := apiv1.Plan{Workload: "hello", Wanted: 2, Summary: "1/1 sites", Chosen: []apiv1.PlannedReplica{{Site: "aws-eu-central-1", Kind: "cloud"}}}
	if diff := cmp.Diff(want, plan); diff != "" {
		t.Errorf("POST /api/v1/plan (-want +got):\n%s", diff)
	}
}

func TestPlanErrors(t *testing.T) {
	fp := &fakePlanner{planErr: fmt.Errorf("workload \"hello\": %w", &spec.FieldError{Field: "spec.placement.nodeName", Value: "x", Fix: "no such site"})}
	h := New(Config{Nodes: nodes, Planner: fp}).Handler()
	if code, body := planDo(t, h, "POST", "/api/v1/plan", planYAML, ""); code != 400 || !strings.Contains(body, "spec.placement.nodeName") {
		t.Errorf("POST /api/v1/plan with an invalid request = %d %s, want 400 naming the field", code, body)
	}
	fp.planErr = errors.New("catalog not loaded")
	if code, body := planDo(t, h, "POST", "/api/v1/plan", planYAML, ""); code != 500 || !strings.Contains(body, "catalog not loaded") {
		t.Errorf("POST /api/v1/plan with a failing planner = %d %s, want 500", code, body)
	}
	// Empty lists are [] rather than null.
	if code, body := planDo(t, h, "GET", "/api/v1/sites", "", ""); code != 200 || !strings.Contains(body, `"items": []`) {
		t.Errorf("GET /api/v1/sites = %d %s, want an empty list", code, body)
	}
	if code, body := planDo(t, h, "GET", "/api/v1/placements", "", ""); code != 200 || !strings.Contains(body, `"items": []`) ||
		fp.placedFor != "" {
		t.Errorf("GET /api/v1/placements = %d %s (workload %q), want an empty list of every workload", code, body, fp.placedFor)
	}
}

func TestPlanNotConfigured(t *testing.T) {
	h := New(Config{Nodes: nodes}).Handler()
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/api/v1/plan", planYAML},
		{"GET", "/api/v1/workloads/x/explain", ""},
		{"GET", "/api/v1/sites", ""},
		{"GET", "/api/v1/placements", ""},
	} {
		if code, body := planDo(t, h, r.method, r.path, r.body, ""); code != 503 || !strings.Contains(body, "placement is not configured") {
			t.Errorf("%s %s without a planner = %d %s, want 503", r.method, r.path, code, body)
		}
	}
}
