// Package spec defines the SkyEdge workload document: what to run (an exec
// command or a Docker image), what it needs, how it restarts and is
// health-checked, what happens while its node is unreachable, and where it
// may be placed.
//
// It is the one definition shared by the cloud bridge (the API accepts it as
// JSON, the scheduler reads its placement policy) and the edge agent (the
// runner executes it), so both sides always agree on a workload's meaning.
// Documents are YAML or JSON with the same camelCase keys:
//
//	apiVersion: skyedge.io/v1alpha1
//	kind: Workload
//	metadata: {name: hello-exec}
//	spec:
//	  runtime: exec
//	  exec: {command: /bin/sh, args: [-c, "echo hello; sleep 3600"]}
//	  resources: {cpu: 250m, memory: 64Mi}
//
// ParseWorkload decodes a document (rejecting unknown fields) and fills
// defaults; Validate then reports every remaining problem at once, each with
// its field path and the fix.
package spec
