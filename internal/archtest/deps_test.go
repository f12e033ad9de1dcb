package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/skyedge/skyedge"

type pkg struct {
	ImportPath string
	Deps       []string
}

// listDeps runs `go list -deps` over the module and returns, for each of
// the module's packages, the transitive set of packages it depends on.
func listDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		deps[p.ImportPath] = p.Deps
	}
	return deps
}

func under(path, prefix string) bool {
	prefix = module + "/" + prefix
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestImportDirection(t *testing.T) {
	// leaves shared by everyone: they may import only protocol and each other.
	shared := []string{"internal/clock", "internal/backoff", "internal/pki"}
	rules := []struct {
		from    string
		mayNot  []string
		comment string
	}{
		{"protocol", []string{"agent", "cloudcore-bridge", "sync", "device", "internal", "cmd", "examples"}, "the wire contract imports nothing of ours"},
		{"sync", []string{"agent", "cloudcore-bridge", "device", "cmd", "examples"}, "sync sits below agent and bridge"},
		{"device", []string{"agent", "cloudcore-bridge", "sync", "cmd", "examples"}, "device sits below agent and bridge"},
		{"agent", []string{"cloudcore-bridge", "cmd", "examples"}, "the agent never imports the bridge"},
		{"cloudcore-bridge", []string{"agent", "cmd", "examples"}, "the bridge never imports the agent"},
	}
	for _, s := range shared {
		rules = append(rules, struct {
			from    string
			mayNot  []string
			comment string
		}{s, []string{"agent", "cloudcore-bridge", "sync", "device", "cmd", "examples"}, "shared leaves import only protocol"})
	}
	for path, deps := range listDeps(t) {
		for _, r := range rules {
			if !under(path, r.from) {
				continue
			}
			for _, d := range deps {
				for _, banned := range r.mayNot {
					if under(d, banned) && !strings.HasSuffix(path, "_test") {
						t.Errorf("%s imports %s: %s", path, d, r.comment)
					}
				}
			}
		}
	}
}

// TestAgentStaysLean keeps server-side libraries out of the edge binary,
// whose budget is 15 MB stripped on arm64 and armv7.
func TestAgentStaysLean(t *testing.T) {
	deps := listDeps(t)[module+"/agent/cmd/skyedge-agent"]
	if deps == nil {
		t.Fatal("agent/cmd/skyedge-agent not found")
	}
	for _, d := range deps {
		for _, banned := range []string{"github.com/mochi-mqtt/", "github.com/prometheus/", "k8s.io/", "net/http/pprof"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("the agent binary depends on %s", d)
			}
		}
	}
}
