package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), Env{Args: args, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Version: "test"})
	return code, out.String(), errb.String()
}

func TestCerts(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		{"no dir", []string{"certs", "init"}, 2, "--dir is required"},
		{"issue before init", []string{"certs", "issue", "--dir", dir, "--name", "n1"}, 1, "certs init"},
		{"init", []string{"certs", "init", "--dir", dir}, 0, "created CA"},
		{"init again", []string{"certs", "init", "--dir", dir}, 1, "already exists"},
		{"node", []string{"certs", "issue", "--dir", dir, "--name", "truck-042"}, 0, "truck-042.crt"},
		{"node again", []string{"certs", "issue", "--dir", dir, "--name", "truck-042"}, 1, "already exists"},
		{"bad name", []string{"certs", "issue", "--dir", dir, "--name", "Truck/42"}, 1, "invalid node ID"},
		{"no name", []string{"certs", "issue", "--dir", dir}, 2, "--name is required"},
		{"server", []string{"certs", "issue", "--dir", dir, "--name", "bridge", "--server", "--host", "localhost,127.0.0.1"}, 0, "bridge.crt"},
		{"server no host", []string{"certs", "issue", "--dir", dir, "--name", "b2", "--server"}, 1, "no hosts"},
		{"bad host", []string{"certs", "issue", "--dir", dir, "--name", "b3", "--server", "--host", "bad host"}, 1, "not allowed"},
		{"unknown sub", []string{"certs", "rotate"}, 2, "unknown subcommand"},
		{"unknown flag", []string{"certs", "init", "--nope"}, 2, "not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Fatalf("skyedge %v = %d (stdout %q, stderr %q), want %d with %q", tc.args, code, out, errs, tc.code, tc.want)
			}
		})
	}
	for _, f := range []string{"ca.crt", "ca.key", "truck-042.crt", "truck-042.key", "bridge.crt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestNodes(t *testing.T) {
	seen := time.Now().Add(-3 * time.Second).UTC().Format(time.RFC3339Nano)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/nodes":
			if r.URL.Query().Get("selector") != "role=vehicle" && r.URL.RawQuery != "" {
				t.Errorf("selector = %q", r.URL.RawQuery)
			}
			w.Write([]byte(`{"items":[{"id":"sat-7","online":false,"offlineReason":"will","lastSeen":"` + seen + `"},
				{"id":"truck-042","online":true,"lastSeen":"` + seen + `","agentVersion":"1.0","labels":{"role":"vehicle"},
				 "facts":{"arch":"arm64","cpuCores":4},"lastReport":{"cpuPermille":125,"memTotalKiB":4194304,"memUsedKiB":1048576,"load1Centi":42}}]}`))
		case "/api/v1/nodes/truck-042":
			w.Write([]byte(`{"id":"truck-042","online":true}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"node \"nope\" not found"}`))
		}
	}))
	defer srv.Close()

	code, out, errs := run(t, "nodes", "list", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("nodes list = %d: %s", code, errs)
	}
	for _, want := range []string{"truck-042", "online", "12.5% of 4", "1.0Gi/4.0Gi", "0.42", "role=vehicle", "sat-7", "offline (will)", "arm64"} {
		if !strings.Contains(out, want) {
			t.Errorf("nodes list output lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ := run(t, "nodes", "list", "--server", srv.URL, "-l", "role=vehicle", "-o", "json"); code != 0 || !strings.Contains(out, "\"id\": \"truck-042\"") {
		t.Errorf("nodes list -o json = %d:\n%s", code, out)
	}
	if code, out, _ := run(t, "nodes", "get", "truck-042", "--server", srv.URL); code != 0 || !strings.Contains(out, "truck-042") {
		t.Errorf("nodes get = %d:\n%s", code, out)
	}
	if code, _, errs := run(t, "nodes", "get", "nope", "--server", srv.URL); code != 1 || !strings.Contains(errs, `node "nope" not found`) {
		t.Errorf("nodes get nope = %d, stderr %q; want 1 with the API's error", code, errs)
	}
	if code, _, errs := run(t, "nodes", "list", "--server", "http://127.0.0.1:1"); code != 1 || !strings.Contains(errs, "is the bridge running") {
		t.Errorf("nodes list against nothing = %d, %q", code, errs)
	}
	if code, _, _ := run(t, "nodes", "list", "-o", "yaml"); code != 2 {
		t.Errorf("nodes list -o yaml = %d, want 2", code)
	}
}
