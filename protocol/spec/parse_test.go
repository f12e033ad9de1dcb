package spec

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func mustReadFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseWorkloadFull(t *testing.T) {
	w, err := ParseWorkload(mustReadFile(t, "testdata/full.yaml"))
	if err != nil {
		t.Fatalf("ParseWorkload(full.yaml) = %v", err)
	}
	if err := w.Validate(); err != nil {
		t.Fatalf("Validate(full.yaml) = %v, want nil", err)
	}
	want := &Workload{
		APIVersion: APIVersion,
		Kind:       KindWorkload,
		Metadata:   Metadata{Name: "line-monitor", Labels: map[string]string{"app": "monitor", "team": "factory"}},
		Spec: WorkloadSpec{
			Runtime: RuntimeDocker,
			Docker: &DockerSpec{
				Image: "skyedge/monitor:1.4",
				Args:  []string{"--interval", "5s"},
				Env:   map[string]string{"LOG_LEVEL": "info"},
				Ports: []Port{{Container: 8080, Host: 18080}, {Container: 9000, Protocol: "udp"}},
			},
			Resources: Resources{CPU: "500m", Memory: "128Mi", EgressPerHour: "2Gi"},
			Restart:   Restart{Policy: RestartOnFailure, InitialDelay: Duration(2 * time.Second), MaxDelay: Duration(time.Minute), MaxRestarts: 10},
			Health: &Health{
				HTTP:     &HTTPProbe{URL: "http://127.0.0.1:8080/healthz"},
				Interval: Duration(15 * time.Second), Timeout: Duration(3 * time.Second), FailureThreshold: 4,
			},
			StopGracePeriod: Duration(20 * time.Second),
			Disconnect:      Disconnect{LostAfter: Duration(10 * time.Minute), Replace: true, Reconcile: ReconcileLongestRunning},
			Placement: Placement{
				Tier:     TierAny,
				Replicas: 3,
				NodeSelector: &NodeSelector{
					MatchLabels: map[string]string{"site": "plant-a"},
					MatchExpressions: []Requirement{
						{Key: "arch", Operator: OpIn, Values: []string{"arm64", "amd64"}},
						{Key: "maintenance", Operator: OpDoesNotExist},
					},
				},
				Providers:     []string{"aws", "gcp"},
				Regions:       []string{"eu-central-1", "europe-west3"},
				Jurisdictions: []string{"DE", "EU"},
				DataSource:    &DataSource{Node: "factory-7"},
				MaxLatency:    Duration(50 * time.Millisecond),
				Objective:     Objective{Weights: &Weights{Cost: 0.7, Latency: 0.3}},
				Spread:        &Spread{TopologyKey: "zone", MaxSkew: 1},
				Priority:      100,
				Preemption:    true,
			},
		},
	}
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("ParseWorkload(full.yaml) mismatch (-want +got):\n%s", diff)
	}
}

// TestRoundTrip checks that a workload written as JSON (the API) or YAML
// reads back the same.
func TestRoundTrip(t *testing.T) {
	w, err := ParseWorkload(mustReadFile(t, "testdata/full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"json": js, "yaml": ys} {
		got, err := ParseWorkload(doc)
		if err != nil {
			t.Fatalf("ParseWorkload(%s) = %v\n%s", name, err, doc)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s round trip mismatch (-want +got):\n%s\n%s", name, diff, doc)
		}
	}
	if !strings.Contains(string(js), `"maxLatency":"50ms"`) || !strings.Contains(string(js), `"lostAfter":"10m"`) {
		t.Errorf("json.Marshal wrote durations as %s, want text like 50ms and 10m", js)
	}
}

func TestParseWorkloadDefaults(t *testing.T) {
	w, err := ParseWorkload([]byte(`
apiVersion: skyedge.io/v1alpha1
kind: Workload
metadata: {name: hello-exec}
spec:
  runtime: exec
  exec: {command: /bin/sh}
  resources: {cpu: 250m, memory: 64Mi}
  health: {tcp: {address: "127.0.0.1:9000"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	s := w.Spec
	got := []any{s.Placement.Replicas, s.Placement.Tier, s.Restart.Policy, s.Restart.InitialDelay, s.Restart.MaxDelay,
		s.Health.Interval, s.Health.Timeout, s.Health.FailureThreshold, s.StopGracePeriod, s.Disconnect.LostAfter, s.Disconnect.Reconcile}
	want := []any{1, TierAny, RestartAlways, Duration(time.Second), Duration(5 * time.Minute),
		Duration(10 * time.Second), Duration(2 * time.Second), 3, Duration(10 * time.Second), Duration(5 * time.Minute), ReconcileBestScore}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}

	zero, err := ParseWorkload([]byte(`{"apiVersion":"skyedge.io/v1alpha1","kind":"Workload","metadata":{"name":"x"},
		"spec":{"runtime":"exec","exec":{"command":"/bin/true"},"resources":{"cpu":"1","memory":"1Mi"},"placement":{"replicas":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if zero.Spec.Placement.Replicas != 0 {
		t.Errorf("explicit replicas: 0 parsed as %d, want 0", zero.Spec.Placement.Replicas)
	}
}

func TestParseWorkloadErrors(t *testing.T) {
	const head = "apiVersion: skyedge.io/v1alpha1\nkind: Workload\nmetadata: {name: x}\n"
	tests := []struct {
		name string
		doc  string
		want string // substring of the error
	}{
		{"empty", "  \n", "empty document"},
		{"unknown yaml field", head + "spec: {runtime: exec, comand: /bin/sh}\n", "field comand not found"},
		{"unknown json field", `{"apiVersion":"skyedge.io/v1alpha1","spec":{"runtme":"exec"}}`, `unknown field "runtme"`},
		{"duplicate key", head + "spec: {runtime: exec, runtime: docker}\n", "already defined"},
		{"two documents", head + "---\n" + head, "more than one YAML document"},
		{"trailing json", `{"kind":"Workload"} {"kind":"Workload"}`, "unexpected data after"},
		{"duration without unit", head + "spec: {stopGracePeriod: 10}\n", `duration "10" has no unit: write it like 10s`},
		{"bad duration", head + "spec: {disconnect: {lostAfter: 5 minutes}}\n", "line 4: duration \"5 minutes\": use a duration like"},
		{"bad json duration", `{"spec":{"stopGracePeriod":"ten"}}`, `duration "ten"`},
		{"objective unknown key", head + "spec: {placement: {objective: {goal: cost}}}\n", `objective: unknown field "goal"`},
		{"objective unknown term", head + "spec: {placement: {objective: {weights: {price: 1}}}}\n", `unknown term "price": use cost, latency, balance or affinity`},
		{"objective weight not a number", head + "spec: {placement: {objective: {weights: {cost: high}}}}\n", `objective.weights.cost "high"`},
		{"objective json unknown", `{"spec":{"placement":{"objective":{"weight":{"cost":1}}}}}`, "objective"},
		{"too large", strings.Repeat(" ", MaxDocumentSize+1), "over the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWorkload([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseWorkload(%q) = %v, want an error containing %q", tt.doc, err, tt.want)
			}
			if !errors.Is(err, ErrParse) && !strings.Contains(tt.name, "json") {
				t.Errorf("ParseWorkload error %v does not wrap ErrParse", err)
			}
		})
	}
}

func TestObjectiveShapes(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		json string
		want Objective
	}{
		{"goal", "cost", `"cost"`, Objective{Goal: GoalCost}},
		{"weights", "{weights: {cost: 0.7, latency: 0.3}}", `{"weights":{"cost":0.7,"latency":0.3}}`, Objective{Weights: &Weights{Cost: 0.7, Latency: 0.3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var y, j Objective
			if err := yaml.Unmarshal([]byte(tt.yaml), &y); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.json), &j); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, y); diff != "" {
				t.Errorf("yaml %s mismatch (-want +got):\n%s", tt.yaml, diff)
			}
			if diff := cmp.Diff(tt.want, j); diff != "" {
				t.Errorf("json %s mismatch (-want +got):\n%s", tt.json, diff)
			}
			out, err := json.Marshal(tt.want)
			if err != nil || string(out) != tt.json {
				t.Errorf("json.Marshal(%v) = %s, %v, want %s", tt.want, out, err, tt.json)
			}
		})
	}
	if got := (Objective{}).Resolve(); got != goalWeights[GoalCost] {
		t.Errorf("Objective{}.Resolve() = %+v, want the cost preset", got)
	}
}
