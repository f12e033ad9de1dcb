package spec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// validWorkload returns a minimal valid exec workload with defaults filled.
func validWorkload() *Workload {
	w := &Workload{
		APIVersion: APIVersion,
		Kind:       KindWorkload,
		Metadata:   Metadata{Name: "hello-exec"},
		Spec: WorkloadSpec{
			Runtime:   RuntimeExec,
			Exec:      &ExecSpec{Command: "/bin/sh", Args: []string{"-c", "sleep 60"}},
			Resources: Resources{CPU: "250m", Memory: "64Mi"},
			Placement: Placement{Replicas: 1},
		},
	}
	w.Default()
	return w
}

func dockerSpec() *DockerSpec { return &DockerSpec{Image: "skyedge/hello:1"} }

func TestValidate(t *testing.T) {
	ds := &DataSource{Node: "factory-7"}
	sel := &NodeSelector{MatchLabels: map[string]string{"zone": "a"}}
	tests := []struct {
		name   string
		mutate func(w *Workload)
		want   string // the whole FieldError text, or "" for valid
	}{
		{"valid", func(*Workload) {}, ""},
		{"valid docker", func(w *Workload) { w.Spec.Runtime, w.Spec.Exec, w.Spec.Docker = RuntimeDocker, nil, dockerSpec() }, ""},
		{"valid eu policy", func(w *Workload) {
			p := &w.Spec.Placement
			p.Jurisdictions, p.DataSource, p.MaxLatency, p.Objective = []string{"EU"}, ds, Duration(50*time.Millisecond), Objective{Goal: GoalLatency}
		}, ""},
		{"api version", func(w *Workload) { w.APIVersion = "v1" }, `apiVersion "v1": use skyedge.io/v1alpha1`},
		{"kind", func(w *Workload) { w.Kind = "Pod" }, `kind "Pod": use Workload`},
		{"name missing", func(w *Workload) { w.Metadata.Name = "" }, "metadata.name: required; use lower-case letters, digits and '-', like hello-exec"},
		{"name characters", func(w *Workload) { w.Metadata.Name = "Hello_Exec" }, `metadata.name "Hello_Exec": use lower-case letters, digits and '-' (not first or last), like hello-exec`},
		{"name too long", func(w *Workload) { w.Metadata.Name = strings.Repeat("a", 64) }, "use at most 63 characters"},
		{"label key", func(w *Workload) { w.Metadata.Labels = map[string]string{"-bad": "x"} }, `metadata.labels "-bad": invalid key`},
		{"label value", func(w *Workload) { w.Metadata.Labels = map[string]string{"app": "a b"} }, `metadata.labels.app "a b": use 1-63 characters`},
		{"runtime missing", func(w *Workload) { w.Spec.Runtime = "" }, "spec.runtime: required; use exec or docker"},
		{"runtime unknown", func(w *Workload) { w.Spec.Runtime = "podman" }, `spec.runtime "podman": use exec or docker`},
		{"exec block missing", func(w *Workload) { w.Spec.Exec = nil }, "spec.exec: required for runtime exec"},
		{"docker block with exec", func(w *Workload) { w.Spec.Docker = dockerSpec() }, "spec.docker: remove it: runtime is exec"},
		{"exec block with docker", func(w *Workload) { w.Spec.Runtime, w.Spec.Docker = RuntimeDocker, dockerSpec() }, "spec.exec: remove it: runtime is docker"},
		{"docker block missing", func(w *Workload) { w.Spec.Runtime, w.Spec.Exec = RuntimeDocker, nil }, "spec.docker: required for runtime docker"},
		{"exec command", func(w *Workload) { w.Spec.Exec.Command = "" }, "spec.exec.command: required"},
		{"exec working dir", func(w *Workload) { w.Spec.Exec.WorkingDir = "tmp" }, `spec.exec.workingDir "tmp": use an absolute path`},
		{"exec env", func(w *Workload) { w.Spec.Exec.Env = map[string]string{"A=B": "x"} }, `spec.exec.env "A=B": an environment variable name`},
		{"docker image missing", func(w *Workload) { w.Spec.Runtime, w.Spec.Exec, w.Spec.Docker = RuntimeDocker, nil, &DockerSpec{} }, "spec.docker.image: required"},
		{"docker image case", func(w *Workload) {
			w.Spec.Runtime, w.Spec.Exec, w.Spec.Docker = RuntimeDocker, nil, &DockerSpec{Image: "SkyEdge/Hello:1"}
		}, `spec.docker.image "SkyEdge/Hello:1": use a lower-case image reference`},
		{"docker port", func(w *Workload) {
			w.Spec.Runtime, w.Spec.Exec, w.Spec.Docker = RuntimeDocker, nil, &DockerSpec{Image: "x:1", Ports: []Port{{Container: 70000}}}
		}, `spec.docker.ports[0].container "70000": use a port from 1 to 65535`},
		{"docker host port", func(w *Workload) {
			w.Spec.Runtime, w.Spec.Exec, w.Spec.Docker = RuntimeDocker, nil, &DockerSpec{Image: "x:1", Ports: []Port{{Container: 80, Host: -1}}}
		}, `spec.docker.ports[0].host "-1"`},
		{"docker port protocol", func(w *Workload) {
			w.Spec.Runtime, w.Spec.Exec, w.Spec.Docker = RuntimeDocker, nil, &DockerSpec{Image: "x:1", Ports: []Port{{Container: 80, Protocol: "sctp"}}}
		}, `spec.docker.ports[0].protocol "sctp": use tcp or udp`},
		{"cpu missing", func(w *Workload) { w.Spec.Resources.CPU = "" }, "spec.resources.cpu: required; reserve CPU like 250m or 1"},
		{"cpu quantity", func(w *Workload) { w.Spec.Resources.CPU = "2 cores" }, `spec.resources.cpu "2 cores": use cores like 2 or 0.5, or millicores like 250m`},
		{"cpu zero", func(w *Workload) { w.Spec.Resources.CPU = "0" }, `spec.resources.cpu "0": reserve at least 1m`},
		{"memory missing", func(w *Workload) { w.Spec.Resources.Memory = "" }, "spec.resources.memory: required"},
		{"memory quantity", func(w *Workload) { w.Spec.Resources.Memory = "64MB" }, `spec.resources.memory "64MB": use a quantity like 64Mi or 64M`},
		{"memory zero", func(w *Workload) { w.Spec.Resources.Memory = "0Mi" }, `spec.resources.memory "0Mi": reserve at least 1Mi`},
		{"egress quantity", func(w *Workload) { w.Spec.Resources.EgressPerHour = "1GB" }, `spec.resources.egressPerHour "1GB": use a quantity like 1Gi or 1G`},
		{"restart policy", func(w *Workload) { w.Spec.Restart.Policy = "sometimes" }, `spec.restart.policy "sometimes": use always, on-failure or never`},
		{"restart initial delay", func(w *Workload) { w.Spec.Restart.InitialDelay = Duration(-time.Second) }, `spec.restart.initialDelay "-1s": use a positive duration`},
		{"restart max delay", func(w *Workload) { w.Spec.Restart.MaxDelay = Duration(time.Millisecond) }, `spec.restart.maxDelay "1ms": use a duration of at least initialDelay (1s)`},
		{"restart max restarts", func(w *Workload) { w.Spec.Restart.MaxRestarts = -1 }, `spec.restart.maxRestarts "-1"`},
		{"health no probe", func(w *Workload) {
			w.Spec.Health = &Health{Interval: Duration(time.Second), Timeout: Duration(time.Second), FailureThreshold: 1}
		}, "spec.health: give one probe"},
		{"health two probes", func(w *Workload) {
			w.Spec.Health = &Health{TCP: &TCPProbe{Address: "127.0.0.1:1"}, HTTP: &HTTPProbe{URL: "http://x/"}, Interval: Duration(time.Second), Timeout: Duration(time.Second), FailureThreshold: 1}
		}, "spec.health: give only one probe"},
		{"health exec command", func(w *Workload) {
			w.Spec.Health = &Health{Exec: &ExecProbe{}, Interval: Duration(time.Second), Timeout: Duration(time.Second), FailureThreshold: 1}
		}, "spec.health.exec.command: required"},
		{"health http url", func(w *Workload) {
			w.Spec.Health = &Health{HTTP: &HTTPProbe{URL: "ftp://x"}, Interval: Duration(time.Second), Timeout: Duration(time.Second), FailureThreshold: 1}
		}, `spec.health.http.url "ftp://x": use an http or https URL`},
		{"health tcp address", func(w *Workload) {
			w.Spec.Health = &Health{TCP: &TCPProbe{Address: "localhost"}, Interval: Duration(time.Second), Timeout: Duration(time.Second), FailureThreshold: 1}
		}, `spec.health.tcp.address "localhost": use host:port`},
		{"health timeout over interval", func(w *Workload) {
			w.Spec.Health = &Health{TCP: &TCPProbe{Address: "h:1"}, Interval: Duration(time.Second), Timeout: Duration(2 * time.Second), FailureThreshold: 1}
		}, `spec.health.timeout "2s": use a positive duration no longer than interval (1s)`},
		{"health interval", func(w *Workload) {
			w.Spec.Health = &Health{TCP: &TCPProbe{Address: "h:1"}, Interval: Duration(-time.Second), Timeout: Duration(time.Second), FailureThreshold: 1}
		}, `spec.health.interval "-1s"`},
		{"health threshold", func(w *Workload) {
			w.Spec.Health = &Health{TCP: &TCPProbe{Address: "h:1"}, Interval: Duration(time.Second), Timeout: Duration(time.Second), FailureThreshold: -2}
		}, `spec.health.failureThreshold "-2": use 1 or more`},
		{"stop grace period", func(w *Workload) { w.Spec.StopGracePeriod = Duration(-time.Second) }, `spec.stopGracePeriod "-1s"`},
		{"lost after", func(w *Workload) { w.Spec.Disconnect.LostAfter = Duration(-time.Minute) }, `spec.disconnect.lostAfter "-1m": use a positive duration like 5m`},
		{"reconcile", func(w *Workload) { w.Spec.Disconnect.Reconcile = "newest" }, `spec.disconnect.reconcile "newest": use keep-original, keep-replacement, best-score or longest-running`},
		{"stop after", func(w *Workload) { w.Spec.Disconnect.StopAfter = Duration(-time.Second) }, `spec.disconnect.stopAfter "-1s"`},
		{"tier", func(w *Workload) { w.Spec.Placement.Tier = "fog" }, `spec.placement.tier "fog": use edge, cloud or any`},
		{"replicas negative", func(w *Workload) { w.Spec.Placement.Replicas = -1 }, `spec.placement.replicas "-1": use 0 to 1000`},
		{"replicas too many", func(w *Workload) { w.Spec.Placement.Replicas = 1001 }, `spec.placement.replicas "1001"`},
		{"node name invalid", func(w *Workload) { w.Spec.Placement.NodeName = "Truck 42" }, `spec.placement.nodeName "Truck 42": use a node ID`},
		{"node name with selector", func(w *Workload) { w.Spec.Placement.NodeName, w.Spec.Placement.NodeSelector = "truck-042", sel }, `spec.placement.nodeName "truck-042": cannot be combined with nodeSelector`},
		{"node name with replicas", func(w *Workload) { w.Spec.Placement.NodeName, w.Spec.Placement.Replicas = "truck-042", 2 }, "cannot be combined with replicas > 1"},
		{"node name with spread", func(w *Workload) {
			w.Spec.Placement.NodeName, w.Spec.Placement.Spread = "truck-042", &Spread{TopologyKey: "zone", MaxSkew: 1}
		}, "cannot be combined with spread"},
		{"node name with objective", func(w *Workload) {
			w.Spec.Placement.NodeName, w.Spec.Placement.Objective = "truck-042", Objective{Goal: GoalCost}
		}, "cannot be combined with objective"},
		{"node name with affinities", func(w *Workload) {
			w.Spec.Placement.NodeName, w.Spec.Placement.Affinities = "truck-042", []Affinity{{Selector: *sel, Weight: 10}}
		}, "cannot be combined with affinities"},
		{"selector empty", func(w *Workload) { w.Spec.Placement.NodeSelector = &NodeSelector{} }, "spec.placement.nodeSelector: give matchLabels or matchExpressions"},
		{"selector label key", func(w *Workload) {
			w.Spec.Placement.NodeSelector = &NodeSelector{MatchLabels: map[string]string{"a/b/c": "x"}}
		}, `spec.placement.nodeSelector.matchLabels "a/b/c": invalid key`},
		{"selector operator", func(w *Workload) {
			w.Spec.Placement.NodeSelector = &NodeSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: "Gt", Values: []string{"1"}}}}
		}, `spec.placement.nodeSelector.matchExpressions[0].operator "Gt": use In, NotIn, Exists or DoesNotExist`},
		{"selector in without values", func(w *Workload) {
			w.Spec.Placement.NodeSelector = &NodeSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: OpIn}}}
		}, "spec.placement.nodeSelector.matchExpressions[0].values: required for In"},
		{"selector exists with values", func(w *Workload) {
			w.Spec.Placement.NodeSelector = &NodeSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: OpExists, Values: []string{"a"}}}}
		}, `spec.placement.nodeSelector.matchExpressions[0].values "a": remove them: Exists takes no values`},
		{"selector key", func(w *Workload) {
			w.Spec.Placement.NodeSelector = &NodeSelector{MatchExpressions: []Requirement{{Key: "", Operator: OpExists}}}
		}, "spec.placement.nodeSelector.matchExpressions[0].key: give a label key"},
		{"selector too large", func(w *Workload) {
			m := map[string]string{}
			for i := range MaxRequirements + 1 {
				m[string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
			}
			w.Spec.Placement.NodeSelector = &NodeSelector{MatchLabels: m}
		}, `spec.placement.nodeSelector "33 requirements": use at most 32`},
		{"providers duplicate", func(w *Workload) { w.Spec.Placement.Providers = []string{"aws", "aws"} }, `spec.placement.providers[1] "aws": listed twice`},
		{"regions empty entry", func(w *Workload) { w.Spec.Placement.Regions = []string{""} }, "spec.placement.regions[0]: give a region name"},
		{"jurisdiction lower case", func(w *Workload) { w.Spec.Placement.Jurisdictions = []string{"de"} }, `spec.placement.jurisdictions[0] "de": use upper case: DE`},
		{"jurisdiction unknown", func(w *Workload) { w.Spec.Placement.Jurisdictions = []string{"Europe"} }, `spec.placement.jurisdictions[0] "Europe": use an ISO 3166-1 alpha-2 country code like DE, or a zone: EEA, EU`},
		{"data source empty", func(w *Workload) { w.Spec.Placement.DataSource = &DataSource{} }, "spec.placement.dataSource: give node (a node ID) or location"},
		{"data source both", func(w *Workload) {
			w.Spec.Placement.DataSource = &DataSource{Node: "a", Location: &Location{}}
		}, "spec.placement.dataSource: give node or location, not both"},
		{"data source node", func(w *Workload) { w.Spec.Placement.DataSource = &DataSource{Node: "-x"} }, `spec.placement.dataSource.node "-x": use a node ID`},
		{"data source latitude", func(w *Workload) {
			w.Spec.Placement.DataSource = &DataSource{Location: &Location{Lat: 91}}
		}, `spec.placement.dataSource.location.lat "91": use a latitude from -90 to 90`},
		{"data source longitude", func(w *Workload) {
			w.Spec.Placement.DataSource = &DataSource{Location: &Location{Lon: -181}}
		}, `spec.placement.dataSource.location.lon "-181": use a longitude from -180 to 180`},
		{"max latency negative", func(w *Workload) {
			w.Spec.Placement.DataSource, w.Spec.Placement.MaxLatency = ds, Duration(-time.Millisecond)
		}, `spec.placement.maxLatency "-1ms": use a positive duration like 50ms`},
		{"max latency without data source", func(w *Workload) { w.Spec.Placement.MaxLatency = Duration(50 * time.Millisecond) }, `spec.placement.maxLatency "50ms": needs spec.placement.dataSource`},
		{"objective goal", func(w *Workload) { w.Spec.Placement.Objective = Objective{Goal: "speed"} }, `spec.placement.objective "speed": use cost, latency or balanced`},
		{"objective latency without data source", func(w *Workload) { w.Spec.Placement.Objective = Objective{Goal: GoalLatency} }, `spec.placement.objective "latency": latency is measured to spec.placement.dataSource`},
		{"objective goal and weights", func(w *Workload) {
			w.Spec.Placement.Objective = Objective{Goal: GoalCost, Weights: &Weights{Cost: 1}}
		}, `spec.placement.objective "cost": give a goal or weights, not both`},
		{"objective negative weight", func(w *Workload) {
			w.Spec.Placement.Objective = Objective{Weights: &Weights{Cost: -1, Balance: 1}}
		}, `spec.placement.objective.weights.cost "-1": use a finite weight of 0 or more`},
		{"objective zero weights", func(w *Workload) { w.Spec.Placement.Objective = Objective{Weights: &Weights{}} }, "spec.placement.objective.weights: give at least one positive weight"},
		{"objective latency weight without data source", func(w *Workload) {
			w.Spec.Placement.Objective = Objective{Weights: &Weights{Latency: 1}}
		}, `spec.placement.objective.weights.latency "1": latency is measured to spec.placement.dataSource`},
		{"objective ignores affinities", func(w *Workload) {
			w.Spec.Placement.Objective = Objective{Weights: &Weights{Cost: 1}}
			w.Spec.Placement.Affinities = []Affinity{{Selector: *sel, Weight: 10}}
		}, "spec.placement.objective.weights.affinity: the affinities would be ignored"},
		{"spread key", func(w *Workload) { w.Spec.Placement.Spread = &Spread{MaxSkew: 1} }, "spec.placement.spread.topologyKey: give the site label"},
		{"spread skew", func(w *Workload) { w.Spec.Placement.Spread = &Spread{TopologyKey: "zone"} }, `spec.placement.spread.maxSkew "0": use 1 or more`},
		{"affinity weight", func(w *Workload) {
			w.Spec.Placement.Affinities = []Affinity{{Selector: *sel, Weight: 101}}
		}, `spec.placement.affinities[0].weight "101": use -100..100 other than 0`},
		{"affinity zero weight", func(w *Workload) { w.Spec.Placement.Affinities = []Affinity{{Selector: *sel}} }, `spec.placement.affinities[0].weight "0"`},
		{"affinity selector", func(w *Workload) { w.Spec.Placement.Affinities = []Affinity{{Weight: 5}} }, "spec.placement.affinities[0].selector: give matchLabels or matchExpressions"},
		{"priority", func(w *Workload) { w.Spec.Placement.Priority = -5 }, `spec.placement.priority "-5": use 0 to 1000000000`},
		{"preemption at priority zero", func(w *Workload) { w.Spec.Placement.Preemption = true }, `spec.placement.preemption "true": has no effect at priority 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := validWorkload()
			tt.mutate(w)
			err := w.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate() = %v, does not match ErrInvalid", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Fix == "" {
				t.Errorf("Validate() = %v, want a *FieldError with field and fix", err)
			}
		})
	}
}

// TestValidateReportsEveryProblem checks that problems are joined, not
// stopped at the first.
func TestValidateReportsEveryProblem(t *testing.T) {
	w := validWorkload()
	w.Kind = "Pod"
	w.Spec.Resources.Memory = "64MB"
	w.Spec.Placement.Tier = "fog"
	err := w.Validate()
	want := "kind \"Pod\": use Workload\nspec.resources.memory \"64MB\": use a quantity like 64Mi or 64M\nspec.placement.tier \"fog\": use edge, cloud or any"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v, want\n%s", err, want)
	}
}
