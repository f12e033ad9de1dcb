package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyedge/skyedge/internal/pki"
)

// TestMultiHostDocker runs the bridge and three agents as FROM-scratch
// containers (deploy/*.Dockerfile) on a private Docker network, so each
// has its own host name, address and network stack. It disconnects one
// agent's network until the bridge marks it offline, reconnects it and
// waits for it to come back; then it kills the bridge container and
// starts it again, and checks that the registry survived and every node
// is online again. Images, containers and the network are removed at the
// end.
func TestMultiHostDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and runs containers")
	}
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := &dockerRun{t: t, ctx: ctx, id: randomHex(t, 4)}
	t.Cleanup(d.cleanup)

	stage := t.TempDir()
	d.buildImages(stage)
	network := "skyedge-e2e-" + d.id
	d.must("network", "create", network)
	d.networks = append(d.networks, network)

	// Certificates: the bridge's names are its container name and its
	// alias on the network; each agent's common name is its node ID.
	bridgeName := "skyedge-e2e-bridge-" + d.id
	p := newPKI(t)
	certDir := func(name string) string {
		dir := filepath.Join(stage, "etc-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, p.caFile, filepath.Join(dir, "ca.crt"))
		return dir
	}
	bdir := certDir(bridgeName)
	if _, _, err := p.ca.IssueFiles(bdir, pki.Options{Name: "bridge", Server: true, Hosts: []string{"bridge", bridgeName}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	token := randomHex(t, 16)
	d.must("create", "--name", bridgeName, "--network", network, "--network-alias", "bridge",
		"-p", "127.0.0.1::8080", d.image("bridge"),
		"-mqtt", ":8883", "-http", "0.0.0.0:8080", "-http-token", token)
	d.containers = append(d.containers, bridgeName)
	d.copyIn(bdir, bridgeName)
	d.must("start", bridgeName)
	api := &bridgeAPI{t: t, token: token, addr: d.publishedPort(bridgeName, "8080/tcp")}
	api.waitReady(ctx)

	names := []string{"edge-a-" + d.id, "edge-b-" + d.id, "edge-c-" + d.id}
	for _, n := range names {
		dir := certDir(n)
		if _, _, err := p.ca.IssueFiles(dir, pki.Options{Name: n}, time.Now()); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`apiVersion: skyedge.io/v1alpha1
kind: AgentConfig
node: {name: %s, labels: {site: docker}}
cloud:
  broker: tls://bridge:8883
  caFile: /etc/skyedge/ca.crt
  certFile: /etc/skyedge/%[1]s.crt
  keyFile: /etc/skyedge/%[1]s.key
  keepAlive: 5s
report: {interval: 1s}
log: {level: debug}
`, n)
		if err := os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		d.must("create", "--name", n, "--hostname", n, "--network", network, d.image("agent"))
		d.containers = append(d.containers, n)
		d.copyIn(dir, n)
		d.must("start", n)
	}
	api.waitNodes(ctx, "all agents online", time.Minute, func(ns map[string]apiNode) bool {
		return allNodesOnline(ns, names)
	})
	start := time.Now()

	// One agent's network goes away: the bridge notices through the MQTT
	// keep-alive (5 s, 1.5 times), the others stay online.
	lonely := names[1]
	d.must("network", "disconnect", network, lonely)
	api.waitNodes(ctx, lonely+" offline after its network was disconnected", 45*time.Second, func(ns map[string]apiNode) bool {
		return !ns[lonely].Online
	})
	ns := api.nodes(ctx)
	for _, n := range []string{names[0], names[2]} {
		if !ns[n].Online {
			t.Errorf("node %s = offline (%s) while only %s was disconnected", n, ns[n].OfflineReason, lonely)
		}
	}
	t.Logf("%s offline (%s) %v after the disconnect", lonely, ns[lonely].OfflineReason, time.Since(start).Round(time.Second))
	d.must("network", "connect", network, lonely)
	api.waitNodes(ctx, lonely+" online after its network came back", 90*time.Second, func(ns map[string]apiNode) bool {
		return ns[lonely].Online
	})
	t.Logf("%s online again %v after the disconnect", lonely, time.Since(start).Round(time.Second))

	// The bridge dies without a chance to flush; it starts again from its
	// volume, and keeps what it knew of every node.
	before := api.nodes(ctx)
	killed := time.Now()
	d.must("kill", bridgeName)
	d.must("start", bridgeName)
	api.addr = d.publishedPort(bridgeName, "8080/tcp") // a new host port after a restart
	api.waitReady(ctx)
	kept := api.nodes(ctx)
	for _, n := range names {
		b, k := before[n], kept[n]
		if k.ID == "" {
			t.Errorf("node %s missing from the registry after the bridge restart", n)
			continue
		}
		if !k.FirstSeen.Equal(b.FirstSeen) || k.AgentVersion != b.AgentVersion {
			t.Errorf("node %s after the restart = first seen %v, version %q; want %v, %q as before",
				n, k.FirstSeen, k.AgentVersion, b.FirstSeen, b.AgentVersion)
		}
	}
	api.waitNodes(ctx, "all agents online after the bridge restart", 90*time.Second, func(ns map[string]apiNode) bool {
		return allNodesOnline(ns, names)
	})
	t.Logf("all nodes online again %v after the bridge was killed", time.Since(killed).Round(time.Second))
	// Reports flow again, from every node, into the restarted bridge.
	api.waitNodes(ctx, "a report from every node after the bridge restart", time.Minute, func(ns map[string]apiNode) bool {
		for _, n := range names {
			if ns[n].LastReportAt.Before(killed) {
				return false
			}
		}
		return true
	})
}

// requireDocker skips the test when Docker is unusable, or fails it
// under CI=true.
func requireDocker(t *testing.T) {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker is required under CI=true: %s", why)
		}
		t.Skipf("Docker unavailable: %s", why)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		unavailable("no docker command in PATH")
	}
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		unavailable(fmt.Sprintf("docker version: %v: %s", err, bytes.TrimSpace(out)))
	}
}

// dockerRun runs docker commands for one test and removes what it made.
type dockerRun struct {
	t          *testing.T
	ctx        context.Context
	id         string
	images     []string
	containers []string
	networks   []string
}

func (d *dockerRun) run(args ...string) (string, error) {
	cmd := exec.CommandContext(d.ctx, "docker", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func (d *dockerRun) must(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (d *dockerRun) image(name string) string { return "skyedge-e2e-" + name + ":" + d.id }

// buildImages builds the two binaries as static executables and the
// images of deploy/ from them.
func (d *dockerRun) buildImages(stage string) {
	d.t.Helper()
	ctxDir := filepath.Join(stage, "context")
	if err := os.MkdirAll(filepath.Join(ctxDir, "empty"), 0o755); err != nil {
		d.t.Fatal(err)
	}
	for name, pkg := range map[string]string{
		"cloudcore-bridge": "./cloudcore-bridge/cmd/cloudcore-bridge",
		"skyedge-agent":    "./agent/cmd/skyedge-agent",
	} {
		cmd := exec.CommandContext(d.ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(ctxDir, name), pkg)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			d.t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	for _, name := range []string{"bridge", "agent"} {
		dockerfile := filepath.Join(ctxDir, name+".Dockerfile")
		copyFile(d.t, filepath.Join("../../deploy", name+".Dockerfile"), dockerfile)
		d.must("build", "-q", "-f", dockerfile, "-t", d.image(name), ctxDir)
		d.images = append(d.images, d.image(name))
	}
}

// copyIn copies the files of dir into the container's /etc/skyedge. Keys
// are made readable by the image's unprivileged user; they belong to a
// throwaway CA.
func (d *dockerRun) copyIn(dir, container string) {
	d.t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Chmod(filepath.Join(dir, e.Name()), 0o644); err != nil {
			d.t.Fatal(err)
		}
	}
	d.must("cp", dir+"/.", container+":/etc/skyedge/")
}

// publishedPort is the loopback address a container port is published on.
func (d *dockerRun) publishedPort(container, port string) string {
	d.t.Helper()
	out := d.must("port", container, port)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "127.0.0.1:") {
			return strings.TrimSpace(line)
		}
	}
	d.t.Fatalf("docker port %s %s = %q, want a 127.0.0.1 address", container, port, out)
	return ""
}

func (d *dockerRun) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.ctx = ctx
	for _, c := range d.containers {
		if d.t.Failed() {
			out, _ := d.run("logs", "--tail", "40", c)
			d.t.Logf("docker logs %s:\n%s", c, out)
		}
		if out, err := d.run("rm", "-f", "-v", c); err != nil {
			d.t.Errorf("docker rm %s: %v: %s", c, err, out)
		}
	}
	for _, n := range d.networks {
		if out, err := d.run("network", "rm", n); err != nil {
			d.t.Errorf("docker network rm %s: %v: %s", n, err, out)
		}
	}
	for _, i := range d.images {
		if out, err := d.run("rmi", "-f", i); err != nil {
			d.t.Errorf("docker rmi %s: %v: %s", i, err, out)
		}
	}
}

// apiNode is the part of the API's node record this test reads.
type apiNode struct {
	ID            string    `json:"id"`
	Online        bool      `json:"online"`
	OfflineReason string    `json:"offlineReason"`
	FirstSeen     time.Time `json:"firstSeen"`
	AgentVersion  string    `json:"agentVersion"`
	LastReportAt  time.Time `json:"lastReportAt"`
}

// bridgeAPI queries the bridge's HTTP API with its token.
type bridgeAPI struct {
	t     *testing.T
	addr  string
	token string
}

func (a *bridgeAPI) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func (a *bridgeAPI) waitReady(ctx context.Context) {
	a.t.Helper()
	eventually(a.t, 30*time.Second, func() (bool, string) {
		code, body, err := a.get(ctx, "/readyz")
		return err == nil && code == http.StatusOK, fmt.Sprintf("bridge at %s ready: %d %s %v", a.addr, code, body, err)
	})
}

func (a *bridgeAPI) nodes(ctx context.Context) map[string]apiNode {
	a.t.Helper()
	code, body, err := a.get(ctx, "/api/v1/nodes")
	if err != nil || code != http.StatusOK {
		a.t.Fatalf("GET /api/v1/nodes = %d %s, %v", code, body, err)
	}
	var list struct {
		Items []apiNode `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		a.t.Fatalf("GET /api/v1/nodes: %v\n%s", err, body)
	}
	out := make(map[string]apiNode, len(list.Items))
	for _, n := range list.Items {
		out[n.ID] = n
	}
	return out
}

// waitNodes polls the registry until ok holds, failing after timeout.
func (a *bridgeAPI) waitNodes(ctx context.Context, what string, timeout time.Duration, ok func(map[string]apiNode) bool) {
	a.t.Helper()
	eventually(a.t, timeout, func() (bool, string) {
		ns := a.nodes(ctx)
		return ok(ns), fmt.Sprintf("%s; registry: %+v", what, ns)
	})
}

func allNodesOnline(ns map[string]apiNode, names []string) bool {
	for _, n := range names {
		if !ns[n].Online {
			return false
		}
	}
	return true
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
