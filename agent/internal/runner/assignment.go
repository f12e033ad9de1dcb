package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/skyedge/skyedge/protocol/spec"
)

// Assignment is one workload this node must run.
type Assignment struct {
	// Name is the workload's name (a DNS label); it names its state
	// directory, cgroup and container.
	Name string
	// Generation is the desired-state generation that carried the spec;
	// it is echoed in the Status.
	Generation uint64
	Spec       spec.WorkloadSpec
}

// unit is an accepted assignment: defaults filled, validated, hashed.
type unit struct {
	name string
	gen  uint64
	spec spec.WorkloadSpec
	// hash identifies what an instance runs: runtime, command or image,
	// arguments, environment, ports and limits. Changing any of them
	// replaces the instance; changing anything else (restart policy,
	// health check, grace period, disconnect policy, placement) applies
	// to the running instance.
	hash string
}

// newUnit checks a and fills the spec's defaults, on a copy: the
// caller's spec is not touched.
func newUnit(a Assignment) (*unit, error) {
	var s spec.WorkloadSpec
	b, err := json.Marshal(a.Spec)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		return nil, fmt.Errorf("copy spec: %w", err)
	}
	w := spec.Workload{
		APIVersion: spec.APIVersion,
		Kind:       spec.KindWorkload,
		Metadata:   spec.Metadata{Name: a.Name},
		Spec:       s,
	}
	w.Default()
	if err := w.Validate(); err != nil {
		return nil, err
	}
	h, err := instanceHash(&w.Spec)
	if err != nil {
		return nil, err
	}
	return &unit{name: a.Name, gen: a.Generation, spec: w.Spec, hash: h}, nil
}

// instanceHash hashes the fields that define an instance. Quantities are
// hashed parsed, so "0.5" and "500m" are the same spec.
func instanceHash(s *spec.WorkloadSpec) (string, error) {
	cpu, err := s.Resources.CPU.MilliCPU()
	if err != nil {
		return "", err
	}
	mem, err := s.Resources.Memory.Bytes()
	if err != nil {
		return "", err
	}
	// encoding/json writes map keys sorted: the encoding is canonical.
	b, err := json.Marshal(struct {
		Runtime  spec.Runtime
		Exec     *spec.ExecSpec
		Docker   *spec.DockerSpec
		MilliCPU int64
		Memory   int64
	}{s.Runtime, s.Exec, s.Docker, cpu, mem})
	if err != nil {
		return "", fmt.Errorf("hash spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// envList turns an env map into sorted KEY=value entries.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}
