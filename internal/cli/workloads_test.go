package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// request is what the fake bridge received.
type request struct {
	Method, Path, Query, ContentType, Auth, Body string
}

// fakeBridge answers each "METHOD /path" with a canned status and
// document, and records the requests.
type fakeBridge struct {
	t       *testing.T
	answers map[string]answer
	mu      sync.Mutex
	got     []request
}

type answer struct {
	code int
	body any // marshalled to JSON; a string is sent as is
}

func newFakeBridge(t *testing.T, answers map[string]answer) (*fakeBridge, string) {
	f := &fakeBridge{t: t, answers: answers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.got = append(f.got, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(body)})
	f.mu.Unlock()
	a, ok := f.answers[r.Method+" "+r.URL.Path]
	if !ok {
		a = answer{http.StatusNotFound, apiv1.Error{Error: "no such path " + r.URL.Path}}
	}
	raw, ok := a.body.(string)
	if !ok {
		b, err := json.Marshal(a.body)
		if err != nil {
			f.t.Errorf("marshal %T: %v", a.body, err)
		}
		raw = string(b)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.code)
	io.WriteString(w, raw)
}

// last returns the last request received.
func (f *fakeBridge) last(t *testing.T) request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		t.Fatal("the bridge received no request")
	}
	return f.got[len(f.got)-1]
}

func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

const helloYAML = `apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: hello}
spec:
  runtime: docker
  docker: {image: skyedge/hello:1}
  resources: {cpu: 100m, memory: 64Mi}
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func exitCode(n int) *int { return &n }

func sampleWorkload(now time.Time) apiv1.Workload {
	return apiv1.Workload{
		Name: "hello", Revision: "9f86d081884c7d65", CreatedAt: now.Add(-90 * time.Minute), UpdatedAt: now.Add(-5 * time.Minute),
		Spec:   spec.WorkloadSpec{Runtime: spec.RuntimeDocker, Docker: &spec.DockerSpec{Image: "skyedge/hello:1"}},
		Wanted: 3, Running: 1, CostPerHour: 0.11705,
		Unschedulable: "0/12 sites: 9 wrong jurisdiction, 3 over CPU",
		Replicas: []apiv1.Replica{
			{Slot: 0, Site: "truck-042", Node: "truck-042", Desired: "run", State: "running", Restarts: 2, Generation: 4, AckedGeneration: 4},
			{Slot: 1, Site: "aws-eu-central-1", Node: "runner-a", Desired: "run", State: "failed", ExitCode: exitCode(3),
				Reason: "crash-loop", LastError: "exit status 3", Generation: 2, AckedGeneration: 2},
			{Slot: 1, Site: "sat-7", Node: "sat-7", Desired: "stop", State: "unknown", Generation: 7, AckedGeneration: 6},
		},
	}
}

func TestWorkloadsApply(t *testing.T) {
	f, url := newFakeBridge(t, map[string]answer{
		"POST /api/v1/workloads": {200, apiv1.Workload{Name: "hello", Revision: "9f86d081884c7d65"}},
	})
	file := writeFile(t, "hello.yaml", helloYAML)
	code, out, errs := run(t, "workloads", "apply", "-f", file, "--server", url, "--token", "s3cret")
	if code != 0 || out != "workload hello applied (revision 9f86d081884c7d65)\n" {
		t.Fatalf("workloads apply = %d, stdout %q, stderr %q", code, out, errs)
	}
	want := request{Method: "POST", Path: "/api/v1/workloads", ContentType: "application/yaml", Auth: "Bearer s3cret", Body: helloYAML}
	if got := f.last(t); got != want {
		t.Errorf("request = %+v, want %+v", got, want)
	}

	// JSON goes as JSON.
	jsonFile := writeFile(t, "hello.json", `{"apiVersion":"skyedge.io/v1alpha1"}`)
	if code, _, errs := run(t, "workloads", "apply", "-f", jsonFile, "--server", url); code != 0 {
		t.Fatalf("workloads apply (json) = %d: %s", code, errs)
	}
	if got := f.last(t); got.ContentType != "application/json" || got.Body != `{"apiVersion":"skyedge.io/v1alpha1"}` {
		t.Errorf("request = %+v, want the JSON as is", got)
	}
}

func TestWorkloadsApplyRejected(t *testing.T) {
	msg := "workload \"hello\": spec.resources.memory \"64MB\": use a quantity like 64Mi or 64M\nspec.placement.tier \"sky\": use edge, cloud or any"
	_, url := newFakeBridge(t, map[string]answer{"POST /api/v1/workloads": {400, apiv1.Error{Error: msg}}})
	file := writeFile(t, "hello.yaml", helloYAML)
	code, out, errs := run(t, "workloads", "apply", "-f", file, "--server", url)
	if code != 1 || out != "" {
		t.Fatalf("workloads apply (invalid) = %d, stdout %q, want 1 and nothing on stdout", code, out)
	}
	contains(t, "stderr", errs, file+": rejected by the bridge (400 Bad Request):",
		"\n  workload \"hello\": spec.resources.memory \"64MB\"", "\n  spec.placement.tier \"sky\"")

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"workloads", "apply"}, 2, "-f FILE is required"},
		{[]string{"workloads", "apply", "-f", filepath.Join(t.TempDir(), "nope.yaml")}, 1, "no such file"},
		{[]string{"workloads", "apply", "-f", file, "extra"}, 2, "unexpected arguments"},
		{[]string{"workloads", "scale"}, 2, "unknown subcommand"},
		{[]string{"workloads", "get"}, 2, "workloads get NAME"},
		{[]string{"workloads", "get", "a", "b"}, 2, "workloads get NAME"},
		{[]string{"workloads", "list", "-o", "yaml"}, 2, "want table or json"},
	} {
		code, _, errs := run(t, append(tc.args, "--server", url)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("skyedge %v = %d, stderr %q; want %d with %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

func TestWorkloadsListGetDelete(t *testing.T) {
	now := time.Now()
	w := sampleWorkload(now)
	idle := apiv1.Workload{Name: "idle", Wanted: 1, CreatedAt: now.Add(-3 * 24 * time.Hour), Replicas: []apiv1.Replica{}, Deleting: true}
	f, url := newFakeBridge(t, map[string]answer{
		"GET /api/v1/workloads":              {200, apiv1.WorkloadList{Items: []apiv1.Workload{idle, w}}},
		"GET /api/v1/workloads/hello":        {200, w},
		"DELETE /api/v1/workloads/hello":     {200, w},
		"GET /api/v1/workloads/hello/status": {500, "not json"},
	})

	code, out, errs := run(t, "workloads", "list", "--server", url)
	if code != 0 {
		t.Fatalf("workloads list = %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "hello") {
		t.Fatalf("workloads list:\n%s", out)
	}
	contains(t, "workloads list", lines[1], "1/3", "truck-042:running,runner-a:failed,sat-7:unknown", "$0.11705", "1h30m")
	contains(t, "workloads list", lines[2], "idle", "0/1 (deleting)", " - ", "3d")

	code, out, errs = run(t, "workloads", "get", "hello", "--server", url)
	if code != 0 {
		t.Fatalf("workloads get = %d: %s", code, errs)
	}
	contains(t, "workloads get", out, "Name:      hello", "Revision:  9f86d081884c7d65", "docker skyedge/hello:1",
		"1/3 running", "Unplaced:  0/12 sites", "SLOT  NODE")
	rows := strings.Split(out[strings.Index(out, "SLOT"):], "\n")
	for k, want := range [][]string{
		{"0", "truck-042", "running", "2", "-", "-"},
		{"1", "runner-a (aws-eu-central-1)", "failed", "0", "3", "crash-loop: exit status 3"},
		{"1", "sat-7", "unknown (stopping) (not yet acked)", "0", "-", "-"},
	} {
		contains(t, "workloads get row", rows[k+1], want...)
	}

	code, out, _ = run(t, "workloads", "get", "--server", url, "-o", "json", "hello")
	var back apiv1.Workload
	if code != 0 || json.Unmarshal([]byte(out), &back) != nil || back.Name != "hello" || len(back.Replicas) != 3 ||
		*back.Replicas[1].ExitCode != 3 {
		t.Errorf("workloads get -o json = %d:\n%s", code, out)
	}

	code, out, _ = run(t, "workloads", "delete", "hello", "--server", url)
	if code != 0 || out != "workload hello deleted; 3 replica(s) stopping\n" {
		t.Errorf("workloads delete = %d, %q", code, out)
	}
	if got := f.last(t); got.Method != "DELETE" || got.Path != "/api/v1/workloads/hello" {
		t.Errorf("request = %+v", got)
	}
	code, _, errs = run(t, "workloads", "delete", "nope", "--server", url)
	if code != 1 || !strings.Contains(errs, "404 Not Found: no such path /api/v1/workloads/nope") {
		t.Errorf("workloads delete nope = %d, %q", code, errs)
	}
}
