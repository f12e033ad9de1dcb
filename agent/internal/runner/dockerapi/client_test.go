package dockerapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// frame builds one frame of the multiplexed log stream.
func frame(stream byte, s string) []byte {
	h := make([]byte, 8, 8+len(s))
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(s)))
	return append(h, s...)
}

func TestDemux(t *testing.T) {
	tests := []struct {
		name string
		in   [][]byte
		want []string
	}{
		{name: "empty", want: nil},
		{name: "one line per frame", in: [][]byte{frame(1, "a\n"), frame(2, "b\n")}, want: []string{"a", "b"}},
		{name: "several lines in a frame", in: [][]byte{frame(1, "a\nb\r\nc\n")}, want: []string{"a", "b", "c"}},
		{name: "line split over frames", in: [][]byte{frame(1, "hel"), frame(2, "err\n"), frame(1, "lo\n")}, want: []string{"err", "hello"}},
		{name: "unterminated last line", in: [][]byte{frame(1, "a\nlast")}, want: []string{"a", "last"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Demux(bytes.NewReader(bytes.Join(tt.in, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Demux() (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Demux(bytes.NewReader(frame(1, "abc")[:9])); err == nil {
		t.Error("Demux(truncated frame) = nil error")
	}
	if _, err := Demux(bytes.NewReader(frame(7, "x"))); err == nil {
		t.Error("Demux(unknown stream) = nil error")
	}
}

func TestSplitRef(t *testing.T) {
	tests := []struct{ ref, repo, tag string }{
		{"skyedge/hello-docker:1", "skyedge/hello-docker", "1"},
		{"alpine", "alpine", "latest"},
		{"registry.local:5000/app", "registry.local:5000/app", "latest"},
		{"registry.local:5000/app:2", "registry.local:5000/app", "2"},
		{"app@sha256:abcd", "app", "sha256:abcd"},
	}
	for _, tt := range tests {
		repo, tag := splitRef(tt.ref)
		if repo != tt.repo || tag != tt.tag {
			t.Errorf("splitRef(%q) = %q, %q; want %q, %q", tt.ref, repo, tag, tt.repo, tt.tag)
		}
	}
}

// fakeEngine serves h on a unix socket and returns a client for it.
func fakeEngine(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	c := New(sock)
	t.Cleanup(c.Close)
	return c
}

func TestRequestsAndErrors(t *testing.T) {
	var got []string
	c := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		switch {
		case strings.HasSuffix(r.URL.Path, "/containers/missing/json"):
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"No such container: missing"}`))
		case strings.HasSuffix(r.URL.Path, "/containers/create"):
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"message":"name in use"}`))
		case strings.HasSuffix(r.URL.Path, "/stop"):
			w.WriteHeader(http.StatusNotModified)
		case strings.HasSuffix(r.URL.Path, "/containers/json"):
			w.Write([]byte(`[{"Id":"c1","Labels":{"skyedge.workload":"w"},"State":"running"}]`))
		case strings.HasSuffix(r.URL.Path, "/images/create"):
			w.Write([]byte(`{"status":"Pulling"}` + "\n" + `{"errorDetail":{"message":"connection refused"},"error":"connection refused"}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("plain failure"))
		}
	})
	ctx := context.Background()

	if _, err := c.Inspect(ctx, "missing"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "No such container") {
		t.Errorf("Inspect(missing) = %v, want ErrNotFound with the daemon's message", err)
	}
	if _, err := c.Create(ctx, "w", &ContainerConfig{Image: "x"}); !errors.Is(err, ErrConflict) {
		t.Errorf("Create() = %v, want ErrConflict", err)
	}
	if err := c.Stop(ctx, "c1", 1500*time.Millisecond); err != nil {
		t.Errorf("Stop() of a stopped container = %v, want nil", err)
	}
	list, err := c.List(ctx, "skyedge.managed=true", "skyedge.workload=w")
	if err != nil || len(list) != 1 || list[0].ID != "c1" {
		t.Errorf("List() = %+v, %v; want [c1]", list, err)
	}
	if err := c.Pull(ctx, "localhost:1/nothing:1"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Pull() = %v, want the progress stream's error", err)
	}
	var e *Error
	if err := c.Start(ctx, "c1"); !errors.As(err, &e) || e.Status != 500 || e.Message != "plain failure" {
		t.Errorf("Start() = %v, want *Error 500 plain failure", err)
	}
	want := []string{
		"GET /v1.41/containers/missing/json?",
		"POST /v1.41/containers/create?name=w",
		"POST /v1.41/containers/c1/stop?t=2",
		`GET /v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22skyedge.managed%3Dtrue%22%2C%22skyedge.workload%3Dw%22%5D%7D`,
		"POST /v1.41/images/create?fromImage=localhost%3A1%2Fnothing&tag=1",
		"POST /v1.41/containers/c1/start?",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestUnavailable(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "absent.sock"))
	defer c.Close()
	err := c.Ping(context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "absent.sock") {
		t.Errorf("Ping() without a daemon = %v, want ErrUnavailable naming the socket", err)
	}
}
