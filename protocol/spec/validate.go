package spec

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every error Validate returns.
var ErrInvalid = errors.New("invalid workload")

// FieldError is one problem of a document: the field's path, the value
// found (empty when the field is missing) and how to fix it.
type FieldError struct {
	Field string // e.g. spec.resources.memory
	Value string
	Fix   string
}

// Error reads like `spec.resources.memory "64MB": use a quantity like 64Mi
// or 64M`.
func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Fix
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Fix)
}

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// problems collects FieldErrors.
type problems []error

func (p *problems) add(field, value, fix string) {
	*p = append(*p, &FieldError{Field: field, Value: value, Fix: fix})
}

// Validate checks the document and returns every problem joined
// (errors.Join), each a *FieldError, or nil. Call it after ParseWorkload,
// which fills the defaults Validate expects.
func (w *Workload) Validate() error {
	var p problems
	if w.APIVersion != APIVersion {
		p.add("apiVersion", w.APIVersion, "use "+APIVersion)
	}
	if w.Kind != KindWorkload {
		p.add("kind", w.Kind, "use "+KindWorkload)
	}
	validateName(&p, "metadata.name", w.Metadata.Name)
	validateLabels(&p, "metadata.labels", w.Metadata.Labels)
	s := &w.Spec
	validateRuntime(&p, s)
	validateResources(&p, &s.Resources)
	validateRestart(&p, &s.Restart)
	if s.Health != nil {
		validateHealth(&p, s.Health)
	}
	if s.StopGracePeriod < 0 {
		p.add("spec.stopGracePeriod", s.StopGracePeriod.String(), "use a duration of 0 or more, like 10s")
	}
	validateDisconnect(&p, &s.Disconnect)
	validatePlacement(&p, &s.Placement)
	return errors.Join(p...)
}

// validateName checks a workload name: a DNS label.
func validateName(p *problems, field, name string) {
	if name == "" {
		p.add(field, "", "required; use lower-case letters, digits and '-', like hello-exec")
		return
	}
	if len(name) > 63 {
		p.add(field, name, "use at most 63 characters")
		return
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(name)-1 {
			continue
		}
		p.add(field, name, "use lower-case letters, digits and '-' (not first or last), like "+suggestName(name))
		return
	}
}

func suggestName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		return "hello-exec"
	}
	return out
}

// validLabelPart checks 1..63 characters of [A-Za-z0-9-_.], alphanumeric
// at both ends (a Kubernetes label name or value).
func validLabelPart(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && !((c == '-' || c == '_' || c == '.') && i > 0 && i < len(s)-1) {
			return false
		}
	}
	return true
}

// validLabelKey checks [prefix/]name with a DNS-subdomain prefix.
func validLabelKey(k string) bool {
	prefix, name, found := strings.Cut(k, "/")
	if !found {
		return validLabelPart(k)
	}
	if prefix == "" || len(prefix) > 253 || strings.ToLower(prefix) != prefix {
		return false
	}
	for _, part := range strings.Split(prefix, ".") {
		if !validLabelPart(part) || strings.Contains(part, "_") {
			return false
		}
	}
	return validLabelPart(name)
}

func validLabelValue(v string) bool { return v == "" || validLabelPart(v) }

const labelFix = "use 1-63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"

func validateLabels(p *problems, field string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if !validLabelKey(k) {
			p.add(field, k, "invalid key: "+labelFix+", with an optional DNS prefix like example.com/")
		}
		if v := labels[k]; !validLabelValue(v) {
			p.add(field+"."+k, v, labelFix)
		}
	}
}

// ValidateLabels checks label keys and values with the rules of workload
// labels (Kubernetes label syntax), reporting each problem as a
// *FieldError under field.
func ValidateLabels(field string, labels map[string]string) error {
	var p problems
	validateLabels(&p, field, labels)
	return errors.Join(p...)
}

// NewFieldError returns a *FieldError, for documents other than workloads
// that report problems the same way.
func NewFieldError(field, value, fix string) error {
	return &FieldError{Field: field, Value: value, Fix: fix}
}

func validateEnv(p *problems, field string, env map[string]string) {
	for _, k := range sortedKeys(env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			p.add(field, k, "an environment variable name must be non-empty and contain no '=' or NUL")
		}
	}
}

func validateRuntime(p *problems, s *WorkloadSpec) {
	switch s.Runtime {
	case RuntimeExec:
		if s.Docker != nil {
			p.add("spec.docker", "", "remove it: runtime is exec (or set runtime: docker and remove spec.exec)")
		}
		if s.Exec == nil {
			p.add("spec.exec", "", "required for runtime exec; give at least a command")
			return
		}
		if s.Exec.Command == "" {
			p.add("spec.exec.command", "", "required; give the program to run, like /bin/sh")
		}
		if d := s.Exec.WorkingDir; d != "" && !path.IsAbs(d) {
			p.add("spec.exec.workingDir", d, "use an absolute path, like /var/lib/skyedge/work")
		}
		validateEnv(p, "spec.exec.env", s.Exec.Env)
	case RuntimeDocker:
		if s.Exec != nil {
			p.add("spec.exec", "", "remove it: runtime is docker (or set runtime: exec and remove spec.docker)")
		}
		if s.Docker == nil {
			p.add("spec.docker", "", "required for runtime docker; give at least an image")
			return
		}
		validateDocker(p, s.Docker)
	case "":
		p.add("spec.runtime", "", "required; use exec or docker")
	default:
		p.add("spec.runtime", string(s.Runtime), "use exec or docker")
	}
}

func validateDocker(p *problems, d *DockerSpec) {
	switch {
	case d.Image == "":
		p.add("spec.docker.image", "", "required; give an image reference like skyedge/hello:1")
	case strings.ContainsAny(d.Image, " \t\n") || imageRepository(d.Image) != strings.ToLower(imageRepository(d.Image)):
		p.add("spec.docker.image", d.Image, "use a lower-case image reference without spaces, like skyedge/hello:1")
	}
	validateEnv(p, "spec.docker.env", d.Env)
	for i, port := range d.Ports {
		f := fmt.Sprintf("spec.docker.ports[%d]", i)
		if port.Container < 1 || port.Container > 65535 {
			p.add(f+".container", strconv.Itoa(port.Container), "use a port from 1 to 65535")
		}
		if port.Host < 0 || port.Host > 65535 {
			p.add(f+".host", strconv.Itoa(port.Host), "use a port from 1 to 65535, or omit it to publish on the container port")
		}
		if port.Protocol != "" && port.Protocol != "tcp" && port.Protocol != "udp" {
			p.add(f+".protocol", port.Protocol, "use tcp or udp")
		}
	}
}

// imageRepository strips the digest and tag from an image reference; the
// registry port ("host:5000/app") is kept.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

func validateResources(p *problems, r *Resources) {
	if r.CPU == "" {
		p.add("spec.resources.cpu", "", "required; reserve CPU like 250m or 1")
	} else if v, fix := parseMilliCPU(string(r.CPU)); fix != "" {
		p.add("spec.resources.cpu", string(r.CPU), fix)
	} else if v == 0 {
		p.add("spec.resources.cpu", string(r.CPU), "reserve at least 1m")
	}
	if r.Memory == "" {
		p.add("spec.resources.memory", "", "required; reserve memory like 64Mi")
	} else if v, fix := parseBytes(string(r.Memory)); fix != "" {
		p.add("spec.resources.memory", string(r.Memory), fix)
	} else if v == 0 {
		p.add("spec.resources.memory", string(r.Memory), "reserve at least 1Mi")
	}
	if r.EgressPerHour != "" {
		if _, fix := parseBytes(string(r.EgressPerHour)); fix != "" {
			p.add("spec.resources.egressPerHour", string(r.EgressPerHour), fix)
		}
	}
}

func validateRestart(p *problems, r *Restart) {
	switch r.Policy {
	case RestartAlways, RestartOnFailure, RestartNever:
	default:
		p.add("spec.restart.policy", string(r.Policy), "use always, on-failure or never")
	}
	if r.InitialDelay <= 0 {
		p.add("spec.restart.initialDelay", r.InitialDelay.String(), "use a positive duration like 1s")
	}
	if r.MaxDelay < r.InitialDelay {
		p.add("spec.restart.maxDelay", r.MaxDelay.String(), "use a duration of at least initialDelay ("+r.InitialDelay.String()+")")
	}
	if r.MaxRestarts < 0 {
		p.add("spec.restart.maxRestarts", strconv.Itoa(r.MaxRestarts), "use 0 (no cap) or a positive count")
	}
}

func validateHealth(p *problems, h *Health) {
	n := 0
	if h.Exec != nil {
		n++
		if len(h.Exec.Command) == 0 || h.Exec.Command[0] == "" {
			p.add("spec.health.exec.command", "", "required; give the probe command, like [/bin/check]")
		}
	}
	if h.HTTP != nil {
		n++
		u, err := url.Parse(h.HTTP.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("spec.health.http.url", h.HTTP.URL, "use an http or https URL like http://127.0.0.1:8080/healthz")
		}
	}
	if h.TCP != nil {
		n++
		host, port, err := net.SplitHostPort(h.TCP.Address)
		pn, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || pn < 1 || pn > 65535 {
			p.add("spec.health.tcp.address", h.TCP.Address, "use host:port like 127.0.0.1:9000")
		}
	}
	switch {
	case n == 0:
		p.add("spec.health", "", "give one probe: exec, http or tcp")
	case n > 1:
		p.add("spec.health", "", "give only one probe of exec, http and tcp")
	}
	if h.Interval <= 0 {
		p.add("spec.health.interval", h.Interval.String(), "use a positive duration like 10s")
	}
	if h.Timeout <= 0 || h.Timeout > h.Interval {
		p.add("spec.health.timeout", h.Timeout.String(), "use a positive duration no longer than interval ("+h.Interval.String()+")")
	}
	if h.FailureThreshold < 1 {
		p.add("spec.health.failureThreshold", strconv.Itoa(h.FailureThreshold), "use 1 or more")
	}
}

func validateDisconnect(p *problems, d *Disconnect) {
	if d.LostAfter <= 0 {
		p.add("spec.disconnect.lostAfter", d.LostAfter.String(), "use a positive duration like 5m")
	}
	switch d.Reconcile {
	case ReconcileKeepOriginal, ReconcileKeepReplacement, ReconcileBestScore, ReconcileLongestRunning:
	default:
		p.add("spec.disconnect.reconcile", string(d.Reconcile), "use keep-original, keep-replacement, best-score or longest-running")
	}
	if d.StopAfter < 0 {
		p.add("spec.disconnect.stopAfter", d.StopAfter.String(), "use 0 (never stop) or a positive duration")
	}
}
