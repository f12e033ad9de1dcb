package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/agent/internal/runner"
	"github.com/skyedge/skyedge/agent/internal/runner/proc"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/protocol/spec"
)

var (
	desiredAckTopic = protocol.UpTopic(node, protocol.StreamDesired)
	logsTopic       = protocol.UpTopic(node, protocol.StreamLogs)
)

// needShell skips a test that runs /bin/sh workloads where there is none.
func needShell(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/bin/sh", "/bin/sleep"} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing: the workload tests run shell workloads", p)
			}
			t.Skipf("%s missing: the workload tests run shell workloads", p)
		}
	}
}

// workloadConfig is testConfig with a fake sampler and workloads that run
// without cgroup limits and check their disconnect policy often.
func workloadConfig(t *testing.T, b *brokertest.Broker, dataDir string) Config {
	cfg := testConfig(t, b, b.ClientTLS(node), dataDir)
	cfg.Source = &fakeSource{}
	cfg.ReportInterval = time.Second
	cfg.Workloads.DisableLimits = true
	cfg.Workloads.CheckInterval = 50 * time.Millisecond
	return cfg
}

// shSpec is the JSON of an exec workload running script with /bin/sh.
func shSpec(t *testing.T, script string, mod func(*spec.WorkloadSpec)) []byte {
	t.Helper()
	s := spec.WorkloadSpec{
		Runtime:         spec.RuntimeExec,
		Exec:            &spec.ExecSpec{Command: "/bin/sh", Args: []string{"-c", script}},
		Resources:       spec.Resources{CPU: "50m", Memory: "16Mi"},
		Restart:         spec.Restart{Policy: spec.RestartAlways, InitialDelay: spec.Duration(100 * time.Millisecond), MaxDelay: spec.Duration(time.Second)},
		StopGracePeriod: spec.Duration(2 * time.Second),
	}
	if mod != nil {
		mod(&s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendDown publishes body to the node as the cloud does.
func sendDown(t *testing.T, b *brokertest.Broker, env *pb.Envelope) {
	t.Helper()
	env.NodeId, env.Capability, env.SentAtMs = node, protocol.CapabilityVersion, time.Now().UnixMilli()
	payload, err := protocol.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(protocol.DownTopic(node, protocol.StreamOf(env)), payload); err != nil {
		t.Fatal(err)
	}
}

func sendDesired(t *testing.T, b *brokertest.Broker, m *pb.DesiredState) {
	t.Helper()
	sendDown(t, b, &pb.Envelope{Body: &pb.Envelope_Desired{Desired: m}})
}

// desiredAcks returns the generations the node acknowledged, in order.
func desiredAcks(t *testing.T, b *brokertest.Broker) []uint64 {
	t.Helper()
	var out []uint64
	for _, env := range b.Envelopes(desiredAckTopic) {
		out = append(out, env.GetDesiredAck().GetGeneration())
	}
	return out
}

// waitAcks waits until the node has sent n DesiredAcks and returns them.
func waitAcks(t *testing.T, b *brokertest.Broker, n int) []uint64 {
	t.Helper()
	brokertest.WaitFor(t, wait, fmt.Sprintf("%d desired-state acks", n), func() bool { return len(desiredAcks(t, b)) >= n })
	return desiredAcks(t, b)
}

// cloudStatuses decodes every workload status the broker routed for
// node, alone or in a batch, in the order they were routed.
func cloudStatuses(t *testing.T, b *brokertest.Broker) []*pb.Envelope {
	t.Helper()
	var out []*pb.Envelope
	for _, m := range b.Messages() {
		if m.Topic != protocol.UpTopic(node, protocol.StreamEvent) && m.Topic != protocol.UpTopic(node, protocol.StreamBatch) {
			continue
		}
		env, err := m.Envelope()
		if err != nil {
			t.Errorf("message on %s: %v", m.Topic, err)
			continue
		}
		envs := []*pb.Envelope{env}
		if bt := env.GetBatch(); bt != nil {
			envs = bt.GetEnvelopes()
		}
		for _, e := range envs {
			if e.GetStatus() != nil {
				out = append(out, e)
			}
		}
	}
	return out
}

// waitCloudStatus waits for a status of workload in state at the cloud
// and returns its envelope.
func waitCloudStatus(t *testing.T, b *brokertest.Broker, workload string, state pb.WorkloadStatus_State) *pb.Envelope {
	t.Helper()
	var found *pb.Envelope
	brokertest.WaitFor(t, wait, fmt.Sprintf("status %s of %s at the cloud", state, workload), func() bool {
		for _, env := range cloudStatuses(t, b) {
			if s := env.GetStatus(); s.GetName() == workload && s.GetState() == state {
				found = env
				return true
			}
		}
		return false
	})
	return found
}

// runnerStatus returns the runner's status of name.
func runnerStatus(a *Agent, name string) (runner.Status, bool) {
	for _, s := range a.work.r.Statuses() {
		if s.Name == name {
			return s, true
		}
	}
	return runner.Status{}, false
}

// waitRunning waits until name runs with a live process and returns its
// pid.
func waitRunning(t *testing.T, a *Agent, name string) int {
	t.Helper()
	var pid int
	brokertest.WaitFor(t, wait, name+" running", func() bool {
		s, ok := runnerStatus(a, name)
		pid = s.PID
		return ok && s.State == runner.StateRunning && alive(pid)
	})
	return pid
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// reapOnCleanup kills the process group of pid at the end of the test if
// it still runs, so a failing test leaks no workload. The identity is
// taken now: a recycled pid is never signalled.
func reapOnCleanup(t *testing.T, pid int) {
	t.Helper()
	id, err := proc.ReadIdentity(pid)
	if err != nil {
		return
	}
	t.Cleanup(func() {
		if p, err := proc.Adopt(id); err == nil {
			_ = p.Signal(syscall.SIGKILL)
			p.Close()
		}
	})
}

// stopWorkloadsOnCleanup stops every workload of a before the agent
// stops (cleanups run last first: call it after start).
func stopWorkloadsOnCleanup(t *testing.T, a *Agent) {
	t.Cleanup(func() {
		a.work.r.Apply(nil)
		deadline := time.Now().Add(wait)
		for len(a.work.r.Statuses()) > 0 {
			if time.Now().After(deadline) {
				t.Errorf("workloads not stopped at the end of the test: %+v", a.work.r.Statuses())
				return
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	})
}
