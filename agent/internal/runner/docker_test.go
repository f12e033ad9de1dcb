package runner

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/runner/dockerapi"
	"github.com/skyedge/skyedge/protocol/spec"
)

// needDocker returns a client of the local Docker daemon, or skips the
// test: in -short mode (these tests also run under qemu) and when there is
// no daemon, except under CI=true where a missing daemon fails.
func needDocker(t *testing.T) *dockerapi.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker tests are skipped in -short mode")
	}
	c := dockerapi.New("")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		c.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker is required under CI=true: %v", err)
		}
		t.Skipf("no Docker daemon at %s, skipping: %v", dockerapi.DefaultSocket, err)
	}
	t.Cleanup(c.Close)
	return c
}

// buildImage builds the Go program in pkgDir (static, CGO_ENABLED=0) and
// an image FROM scratch around it, tagged tag, through the Engine API's
// /build with env baked in. The image is removed at the end of the test.
func buildImage(t *testing.T, c *dockerapi.Client, pkgDir, tag string, env map[string]string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "app")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir = pkgDir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkgDir, err, out)
	}
	app, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch\nCOPY app /app\n"
	for _, k := range envList(env) {
		dockerfile += "ENV " + strings.Replace(k, "=", " ", 1) + "\n"
	}
	dockerfile += "ENTRYPOINT [\"/app\"]\n"
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"app", 0o755, app}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Build(ctx, &ctxTar, tag); err != nil {
		t.Fatalf("build image %s: %v", tag, err)
	}
	t.Cleanup(func() {
		if err := c.RemoveImage(context.Background(), tag); err != nil {
			t.Errorf("remove image %s: %v", tag, err)
		}
	})
}

// cleanupContainers removes the containers of workload at the end of the
// test, whatever happened to the runner. Register it before start, so it
// runs after the harness has stopped its workloads.
func cleanupContainers(t *testing.T, c *dockerapi.Client, workloads ...string) {
	t.Cleanup(func() {
		for _, w := range workloads {
			list, err := c.List(context.Background(), LabelWorkload+"="+w)
			if err != nil {
				t.Errorf("list containers of %s: %v", w, err)
			}
			for _, ct := range list {
				t.Errorf("container %s of %s left behind", shortID(ct.ID), w)
				c.Remove(context.Background(), ct.ID)
			}
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testName makes workload and image names unique to this test process on
// a shared daemon.
func testName(base string) string { return fmt.Sprintf("%s-%d", base, os.Getpid()) }

func dockerSpec(image string, env map[string]string) spec.WorkloadSpec {
	return spec.WorkloadSpec{
		Runtime:   spec.RuntimeDocker,
		Docker:    &spec.DockerSpec{Image: image, Env: env},
		Resources: spec.Resources{CPU: "250m", Memory: "64Mi"},
		Restart: spec.Restart{
			Policy:       spec.RestartAlways,
			InitialDelay: spec.Duration(100 * time.Millisecond),
			MaxDelay:     spec.Duration(time.Second),
		},
		StopGracePeriod: spec.Duration(2 * time.Second),
	}
}

func inspect(t *testing.T, c *dockerapi.Client, id string) *dockerapi.Container {
	t.Helper()
	ct, err := c.Inspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func TestDockerLifecycle(t *testing.T) {
	c := needDocker(t)
	tag1, tag2 := "skyedge-test/dockerapp:"+testName("v1"), "skyedge-test/dockerapp:"+testName("v2")
	buildImage(t, c, "testdata/dockerapp", tag1, map[string]string{"VERSION": "1"})
	buildImage(t, c, "testdata/dockerapp", tag2, map[string]string{"VERSION": "2"})
	name := testName("dk-life")
	cleanupContainers(t, c, name)
	dir := t.TempDir()

	port := freePort(t)
	s := dockerSpec(tag1, map[string]string{"MODE": "serve"})
	s.Docker.Ports = []spec.Port{{Container: 8080, Host: port}}
	s.Health = &spec.Health{
		HTTP:             &spec.HTTPProbe{URL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port)},
		Interval:         spec.Duration(200 * time.Millisecond),
		Timeout:          spec.Duration(200 * time.Millisecond),
		FailureThreshold: 2,
	}
	h1 := start(t, dir, nil)
	h1.r.Apply([]Assignment{{Name: name, Generation: 1, Spec: s}})
	st := h1.waitState(name, StateRunning, 60*time.Second)
	if st.ContainerID == "" || st.PID == 0 {
		t.Fatalf("running status = %+v, want a container and its pid", st)
	}

	// Limits, labels and the restart policy as created.
	ct := inspect(t, c, st.ContainerID)
	hc := ct.HostConfig
	if hc.NanoCpus != 250_000_000 || hc.Memory != 64<<20 || hc.RestartPolicy.Name != "no" {
		t.Errorf("HostConfig = NanoCpus %d, Memory %d, RestartPolicy %q; want 250000000, %d, no", hc.NanoCpus, hc.Memory, hc.RestartPolicy.Name, 64<<20)
	}
	if hc.LogConfig.Type != "json-file" || hc.LogConfig.Config["max-size"] != "1048576" || hc.LogConfig.Config["max-file"] != "3" {
		t.Errorf("LogConfig = %+v, want json-file 1048576 x 3", hc.LogConfig)
	}
	if l := ct.Config.Labels; l[LabelManaged] != "true" || l[LabelWorkload] != name || l[LabelSpecHash] == "" {
		t.Errorf("labels = %v, want managed, workload and spec hash", l)
	}
	h1.waitLog(name, "serving on :8080", 10*time.Second)

	// Unhealthy: stopped and restarted in place, healthy again.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/fail", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	st = h1.waitFor(name, "a restart after failing health checks", 30*time.Second, func(s Status) bool {
		return s.Restarts == 1 && s.State == StateRunning
	})
	if !slices.Contains(h1.rec.states(name), StateUnhealthy) {
		t.Errorf("states %v, want unhealthy among them", h1.rec.states(name))
	}
	id := st.ContainerID

	// Adoption: a new runner takes the running container over.
	h1.drop()
	if ct := inspect(t, c, id); !ct.State.Running {
		t.Fatal("the container stopped with its runner")
	}
	h2 := start(t, dir, nil)
	h2.r.Apply([]Assignment{{Name: name, Generation: 1, Spec: s}})
	st = h2.waitState(name, StateRunning, 30*time.Second)
	if st.ContainerID != id || !st.Adopted || st.Restarts != 1 {
		t.Errorf("after a new runner: %+v; want container %s adopted with its restart count", st, shortID(id))
	}

	// Update to a new image: a new container, the old one gone.
	s2 := s
	s2.Docker = &spec.DockerSpec{Image: tag2, Env: s.Docker.Env, Ports: s.Docker.Ports}
	h2.r.Apply([]Assignment{{Name: name, Generation: 2, Spec: s2}})
	st = h2.waitFor(name, "the new image", 60*time.Second, func(s Status) bool {
		return s.Generation == 2 && s.State == StateRunning && s.ContainerID != id
	})
	if img := inspect(t, c, st.ContainerID).Config.Image; img != tag2 {
		t.Errorf("updated container runs %s, want %s", img, tag2)
	}
	if _, err := c.Inspect(context.Background(), id); err == nil {
		t.Errorf("the replaced container %s still exists", shortID(id))
	}
	h2.waitLog(name, "version 2", 10*time.Second)
	id = st.ContainerID

	// Adoption by label alone (state lost): the same spec is adopted, a
	// changed one replaces the stale container.
	h2.drop()
	wipe(t, dir)
	h3 := start(t, dir, nil)
	h3.r.Apply([]Assignment{{Name: name, Generation: 2, Spec: s2}})
	st = h3.waitState(name, StateRunning, 30*time.Second)
	if st.ContainerID != id || !st.Adopted {
		t.Errorf("adoption by label: %+v; want container %s adopted", st, shortID(id))
	}
	h3.drop()
	s3 := s2
	s3.Docker = &spec.DockerSpec{Image: tag2, Env: map[string]string{"MODE": "serve", "EXTRA": "1"}, Ports: s2.Docker.Ports}
	wipe(t, dir)
	h4 := start(t, dir, nil)
	h4.r.Apply([]Assignment{{Name: name, Generation: 3, Spec: s3}})
	st = h4.waitState(name, StateRunning, 60*time.Second)
	if st.ContainerID == id || st.Adopted {
		t.Errorf("stale container: %+v; want it replaced by a new one", st)
	}
	if _, err := c.Inspect(context.Background(), id); err == nil {
		t.Errorf("the stale container %s still exists", shortID(id))
	}

	// A runner of another state directory leaves the container alone; the
	// next runner of this one, without the workload, removes it.
	id = st.ContainerID
	h4.drop()
	other := start(t, t.TempDir(), nil)
	other.r.Apply(nil)
	h5 := start(t, dir, nil)
	h5.r.Apply(nil)
	eventually(t, "the orphaned container to go", 30*time.Second, func() bool {
		_, err := c.Inspect(context.Background(), id)
		return errors.Is(err, dockerapi.ErrNotFound)
	})
	if _, ok := other.status(name); ok || len(other.rec.of(name)) > 0 {
		t.Errorf("a runner of another state directory touched %s", name)
	}
}

// wipe empties a state directory, as a lost or corrupted disk would.
func wipe(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
}

func TestDockerCrashRestartAndStopGrace(t *testing.T) {
	c := needDocker(t)
	tag := "skyedge-test/dockerapp:" + testName("crash")
	buildImage(t, c, "testdata/dockerapp", tag, nil)
	crash, trap, ignore := testName("dk-crash"), testName("dk-trap"), testName("dk-ignore")
	cleanupContainers(t, c, crash, trap, ignore)
	h := start(t, "", nil)

	sc := dockerSpec(tag, map[string]string{"MODE": "crash"})
	sc.Restart.MaxRestarts = 2
	st := dockerSpec(tag, map[string]string{"MODE": "trap"})
	st.StopGracePeriod = spec.Duration(20 * time.Second)
	si := dockerSpec(tag, map[string]string{"MODE": "ignore"})
	si.StopGracePeriod = spec.Duration(time.Second)
	h.r.Apply([]Assignment{
		{Name: crash, Generation: 1, Spec: sc},
		{Name: trap, Generation: 1, Spec: st},
		{Name: ignore, Generation: 1, Spec: si},
	})

	failed := h.waitState(crash, StateFailed, 60*time.Second)
	if failed.Restarts != 2 || failed.ExitCode == nil || *failed.ExitCode != 3 {
		t.Errorf("crashing container: %+v; want 2 restarts, exit code 3", failed)
	}
	ids := map[string]bool{}
	for _, s := range h.rec.of(crash) {
		if s.ContainerID != "" {
			ids[s.ContainerID] = true
		}
	}
	if len(ids) != 1 {
		t.Errorf("crashing container ran as %d containers, want 1 restarted in place", len(ids))
	}
	lines, err := h.r.Logs(crash, 0)
	if err != nil || len(lines) != 3 {
		t.Errorf("Logs(crash) = %q, %v; want one line per run, 3", lines, err)
	}

	h.waitState(trap, StateRunning, 30*time.Second)
	h.waitState(ignore, StateRunning, 30*time.Second)
	h.waitLog(trap, "trapping SIGTERM", 10*time.Second)
	h.waitLog(ignore, "ignoring SIGTERM", 10*time.Second)
	begin := time.Now()
	h.r.Apply([]Assignment{{Name: crash, Generation: 1, Spec: sc}})
	var trapTook time.Duration
	eventually(t, "both containers to stop", 60*time.Second, func() bool {
		if trapTook == 0 && h.rec.last(trap).State == StateStopped {
			trapTook = time.Since(begin)
		}
		return h.rec.last(trap).State == StateStopped && h.rec.last(ignore).State == StateStopped
	})
	ignoreTook := time.Since(begin)
	if code := h.rec.last(trap).ExitCode; code == nil || *code != 0 || trapTook > 10*time.Second {
		t.Errorf("trapping container: exit code %v after %v; want 0, well before its 20s grace", code, trapTook)
	}
	if code := h.rec.last(ignore).ExitCode; code == nil || *code != 137 || ignoreTook < time.Second {
		t.Errorf("ignoring container: exit code %v after %v; want 137 (SIGKILL) after its 1s grace", code, ignoreTook)
	}
}

func TestDockerMissingImage(t *testing.T) {
	c := needDocker(t)
	name := testName("dk-noimage")
	cleanupContainers(t, c, name)
	h := start(t, "", nil)
	h.r.Apply([]Assignment{{Name: name, Generation: 1, Spec: dockerSpec("localhost:1/skyedge-absent:1", nil)}})
	st := h.waitState(name, StateFailed, 60*time.Second)
	if !strings.Contains(st.LastError, "pulling it failed") || !strings.Contains(st.Reason, "retrying in") {
		t.Errorf("missing image: %+v; want a failed pull that is retried", st)
	}
}

func TestDockerUnavailable(t *testing.T) {
	h := start(t, "", func(c *Config) { c.DockerSocket = filepath.Join(t.TempDir(), "no-docker.sock") })
	h.r.Apply([]Assignment{{Name: "needs-docker", Generation: 1, Spec: dockerSpec("skyedge/hello-docker:1", nil)}})
	st := h.waitState("needs-docker", StateFailed, 10*time.Second)
	if !strings.Contains(st.LastError, "docker unavailable at") || !strings.Contains(st.Reason, "start failed; retrying in") {
		t.Errorf("without Docker: %+v; want a clear failed status that is retried", st)
	}
	// It keeps being retried, but is logged once.
	h.waitFor("needs-docker", "retries", 10*time.Second, func(Status) bool { return h.r.Stats().StartFailures >= 3 })
	if n := h.logs.Count("workload start failed"); n != 1 {
		t.Errorf("start failure logged %d times, want once", n)
	}
}

func TestExampleHelloDocker(t *testing.T) {
	c := needDocker(t)
	w := loadExample(t, "hello-docker.yaml")
	// The example's Dockerfile, with a tag and a port of this test.
	tag := "skyedge-test/hello-docker:" + testName("example")
	bin := filepath.Join(t.TempDir(), "ctx")
	os.MkdirAll(bin, 0o755)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(bin, "hello-docker"), ".")
	build.Dir = filepath.Join(examplesDir, "hello-docker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build hello-docker: %v\n%s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(examplesDir, "hello-docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	app, _ := os.ReadFile(filepath.Join(bin, "hello-docker"))
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))})
	tw.Write(df)
	tw.WriteHeader(&tar.Header{Name: "hello-docker", Mode: 0o755, Size: int64(len(app))})
	tw.Write(app)
	tw.Close()
	if err := c.Build(context.Background(), &ctxTar, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.RemoveImage(context.Background(), tag) })

	port := freePort(t)
	w.Spec.Docker.Image = tag
	w.Spec.Docker.Ports[0].Host = port
	w.Spec.Health.HTTP.URL = fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	w.Spec.Health.Interval = spec.Duration(200 * time.Millisecond)
	w.Spec.Health.Timeout = spec.Duration(200 * time.Millisecond)
	name := testName("hello-docker")
	cleanupContainers(t, c, name)
	h := start(t, "", nil)
	h.r.Apply([]Assignment{{Name: name, Generation: 1, Spec: w.Spec}})
	h.waitState(name, StateRunning, 60*time.Second)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if want := "hello from the edge (workload " + name + ")"; !strings.Contains(body.String(), want) {
		t.Errorf("GET / = %q, want %q", body.String(), want)
	}
	h.waitLog(name, "hello-docker listening on :8080", 10*time.Second)
}
