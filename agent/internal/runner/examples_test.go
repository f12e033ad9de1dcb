package runner

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skyedge/skyedge/protocol/spec"
)

// examplesDir holds the workload examples of the repository.
const examplesDir = "../../../examples/workloads"

func loadExample(t *testing.T, file string) *spec.Workload {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.ParseWorkload(b)
	if err != nil {
		t.Fatalf("ParseWorkload(%s) = %v", file, err)
	}
	if err := w.Validate(); err != nil {
		t.Fatalf("%s: Validate() = %v", file, err)
	}
	return w
}

func TestExamplesParseAndValidate(t *testing.T) {
	tests := []struct {
		file    string
		name    string
		runtime spec.Runtime
	}{
		{file: "hello-exec.yaml", name: "hello-exec", runtime: spec.RuntimeExec},
		{file: "hello-docker.yaml", name: "hello-docker", runtime: spec.RuntimeDocker},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			w := loadExample(t, tt.file)
			if w.Metadata.Name != tt.name || w.Spec.Runtime != tt.runtime || w.Spec.Health == nil {
				t.Errorf("%s: name %q runtime %q health %v; want %q, %q, a health check",
					tt.file, w.Metadata.Name, w.Spec.Runtime, w.Spec.Health, tt.name, tt.runtime)
			}
			if _, err := newUnit(Assignment{Name: w.Metadata.Name, Generation: 1, Spec: w.Spec}); err != nil {
				t.Errorf("%s: the runner refuses it: %v", tt.file, err)
			}
		})
	}
	w := loadExample(t, "hello-exec.yaml")
	if w.Spec.Disconnect.StopAfter <= 0 {
		t.Errorf("hello-exec has no disconnect.stopAfter")
	}
	if img := loadExample(t, "hello-docker.yaml").Spec.Docker.Image; img != "skyedge/hello-docker:1" {
		t.Errorf("hello-docker image = %q, want skyedge/hello-docker:1", img)
	}
}

func TestExampleHelloExecRuns(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("the example needs /bin/sh")
	}
	w := loadExample(t, "hello-exec.yaml")
	// Probe faster than the example does, so the test is quick.
	w.Spec.Health.Interval = spec.Duration(200 * time.Millisecond)
	w.Spec.Health.Timeout = spec.Duration(200 * time.Millisecond)
	h := start(t, "", nil)
	h.r.Apply([]Assignment{{Name: w.Metadata.Name, Generation: 1, Spec: w.Spec}})
	h.waitState("hello-exec", StateRunning, 10*time.Second)
	h.waitLog("hello-exec", "hello from hello-exec, beat 1", 10*time.Second)
	// Its trap answers the runner's SIGTERM within the grace period.
	begin := time.Now()
	h.r.Apply(nil)
	eventually(t, "hello-exec to stop", 10*time.Second, func() bool { return h.rec.last("hello-exec").State == StateStopped })
	if last := h.rec.last("hello-exec"); last.ExitCode == nil || *last.ExitCode != 0 || time.Since(begin) > 4*time.Second {
		t.Errorf("stop: %+v after %v; want exit code 0 well within the 5s grace period", last, time.Since(begin))
	}
}
