package protocol

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code from the .proto files
// with the pinned protoc-gen-go and fails when the committed code differs:
// someone changed a .proto and forgot `make proto`.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("protoc not found: install protobuf-compiler (CI must run this check)")
		}
		t.Skip("protoc not found: install protobuf-compiler to check the generated code")
	}
	plugins := map[string]string{}
	for _, name := range []string{"protoc-gen-go", "protoc-gen-go-vtproto"} {
		path, err := exec.Command("go", "tool", "-n", name).Output()
		if err != nil {
			t.Fatalf("locate %s (go tool -n): %v", name, err)
		}
		plugins[name] = string(bytes.TrimSpace(path))
	}
	out := t.TempDir()
	// The same invocation as `make proto`, with source-relative output.
	cmd := exec.Command(protoc,
		"--plugin=protoc-gen-go="+plugins["protoc-gen-go"],
		"--plugin=protoc-gen-go-vtproto="+plugins["protoc-gen-go-vtproto"],
		"--go_out="+out, "--go_opt=paths=source_relative",
		"--go-vtproto_out="+out, "--go-vtproto_opt=paths=source_relative,"+vtprotoFeatures,
		"-I", "proto", "skyedge/v1/skyedge.proto")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	for _, file := range []string{"skyedge.pb.go", "skyedge_vtproto.pb.go"} {
		fresh, err := os.ReadFile(filepath.Join(out, "skyedge", "v1", file))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("skyedgev1", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("protocol/skyedgev1/%s is stale: run `make proto` and commit the result", file)
		}
	}
}

// vtprotoFeatures are the vtprotobuf features generated (Makefile: proto).
const vtprotoFeatures = "features=unmarshal+size"
