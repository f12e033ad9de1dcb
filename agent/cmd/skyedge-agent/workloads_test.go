package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyedge/skyedge/agent/internal/brokertest"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/protocol/spec"
)

const agentNode = "truck-042"

// workloadsConfig runs workloads without cgroup limits: the tests must
// not create cgroups on the machine that runs them.
const workloadsConfig = "workloads: {disableLimits: true}\n"

func needSleep(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/sleep"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("/bin/sleep missing: the workload tests run it")
		}
		t.Skip("/bin/sleep missing: the workload tests run it")
	}
}

// sleepSpec is an exec workload that sleeps for an hour.
func sleepSpec(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(spec.WorkloadSpec{
		Runtime:   spec.RuntimeExec,
		Exec:      &spec.ExecSpec{Command: "/bin/sleep", Args: []string{"3600"}},
		Resources: spec.Resources{CPU: "10m", Memory: "4Mi"},
		Restart:   spec.Restart{Policy: spec.RestartAlways, InitialDelay: spec.Duration(100 * time.Millisecond), MaxDelay: spec.Duration(time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendDesired publishes a full desired set of the named sleep workloads.
func sendDesired(t *testing.T, b *brokertest.Broker, gen uint64, names ...string) {
	t.Helper()
	m := &pb.DesiredState{Generation: gen, Full: true}
	for _, n := range names {
		m.Assignments = append(m.Assignments, &pb.WorkloadAssignment{Name: n, Generation: gen, SpecJson: sleepSpec(t)})
	}
	env := &pb.Envelope{NodeId: agentNode, SentAtMs: time.Now().UnixMilli(), Capability: protocol.CapabilityVersion, Body: &pb.Envelope_Desired{Desired: m}}
	payload, err := protocol.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(protocol.DownTopic(agentNode, protocol.StreamDesired), payload); err != nil {
		t.Fatal(err)
	}
}

// statuses decodes every workload status the broker routed, alone or in
// batches, in order.
func statuses(t *testing.T, b *brokertest.Broker) []*pb.WorkloadStatus {
	t.Helper()
	var out []*pb.WorkloadStatus
	for _, m := range b.Messages() {
		if !strings.HasSuffix(m.Topic, "/up/event") && !strings.HasSuffix(m.Topic, "/up/batch") {
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
			if s := e.GetStatus(); s != nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// latest returns the last status of each workload.
func latest(t *testing.T, b *brokertest.Broker) map[string]*pb.WorkloadStatus {
	out := map[string]*pb.WorkloadStatus{}
	for _, s := range statuses(t, b) {
		out[s.GetName()] = s
	}
	return out
}

func waitConnected(t *testing.T, b *brokertest.Broker, hellos int) {
	t.Helper()
	topic := protocol.UpTopic(agentNode, protocol.StreamHello)
	brokertest.WaitFor(t, wait, fmt.Sprintf("%d hellos", hellos), func() bool { return len(b.Envelopes(topic)) >= hellos })
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// killGroupOnCleanup kills pid's process group at the end of the test
// if pid still runs the same program, so a failing test leaks nothing.
func killGroupOnCleanup(t *testing.T, pid int) {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	t.Cleanup(func() {
		now, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if len(cmdline) > 0 && string(now) == string(cmdline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
}

// removeAll sends an empty desired set and waits until every workload is
// reported removed and its process gone.
func removeAll(t *testing.T, b *brokertest.Broker, gen uint64, pids map[string]int) {
	t.Helper()
	sendDesired(t, b, gen)
	brokertest.WaitFor(t, wait, "every workload removed", func() bool {
		l := latest(t, b)
		for name, pid := range pids {
			if l[name].GetState() != pb.WorkloadStatus_STATE_REMOVED || processAlive(pid) {
				return false
			}
		}
		return true
	})
}

// TestSIGKILLKeepsWorkloads kills the real agent with SIGKILL under a
// running exec workload and starts it again on the same data directory:
// the workload is adopted with the same pid, not restarted.
func TestSIGKILLKeepsWorkloads(t *testing.T) {
	needSleep(t)
	b := brokertest.Start(t)
	brokertest.NewCloud(t, b)
	dir := t.TempDir()
	config := writeConfig(t, b, dir, workloadsConfig)
	p := startAgent(t, config)
	waitConnected(t, b, 1)
	sendDesired(t, b, 1, "keeper")
	var pid int
	brokertest.WaitFor(t, wait, "keeper running at the cloud", func() bool {
		s := latest(t, b)["keeper"]
		pid = int(s.GetPid())
		return s.GetState() == pb.WorkloadStatus_STATE_RUNNING && pid > 0
	})
	killGroupOnCleanup(t, pid)

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.exited
	p.exited <- err
	if !processAlive(pid) {
		t.Fatalf("workload pid %d died with the agent", pid)
	}
	before := len(statuses(t, b))

	p2 := startAgent(t, config)
	waitConnected(t, b, 2)
	brokertest.WaitFor(t, wait, "keeper adopted", func() bool {
		for _, s := range statuses(t, b)[before:] {
			if s.GetName() == "keeper" && s.GetState() == pb.WorkloadStatus_STATE_RUNNING && s.GetAdopted() {
				return true
			}
		}
		return false
	})
	for _, s := range statuses(t, b)[before:] {
		if s.GetName() == "keeper" && s.GetPid() != 0 && int(s.GetPid()) != pid {
			t.Errorf("status after the restart with pid %d, want the adopted %d: %v", s.GetPid(), pid, s)
		}
	}
	if rec := p2.logged("desired state loaded"); rec == nil || rec["generation"] != float64(1) {
		t.Errorf("restarted agent log %v, want the stored generation 1 loaded", rec)
	}
	removeAll(t, b, 2, map[string]int{"keeper": pid})
	p2.stop()
}

// TestFigureWorkloadsRSS runs the binary supervising 20 exec workloads
// (/bin/sleep) and reads its resident memory in steady state, 30 s after
// all of them run:
//
//	SKYEDGE_FIGURES=1 go test -run TestFigureWorkloadsRSS -v ./agent/cmd/skyedge-agent
func TestFigureWorkloadsRSS(t *testing.T) {
	figureRun(t)
	needSleep(t)
	b := brokertest.Start(t)
	cloud := brokertest.NewCloud(t, b)
	p := startAgent(t, writeConfig(t, b, t.TempDir(), workloadsConfig))
	waitConnected(t, b, 1)
	idle := p.memory()
	const n = 20
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("sleeper-%02d", i)
	}
	begin := time.Now()
	sendDesired(t, b, 1, names...)
	pids := map[string]int{}
	brokertest.WaitFor(t, wait, "20 workloads running at the cloud", func() bool {
		l := latest(t, b)
		for _, name := range names {
			s := l[name]
			if s.GetState() != pb.WorkloadStatus_STATE_RUNNING {
				return false
			}
			pids[name] = int(s.GetPid())
		}
		return true
	})
	t.Logf("20 workloads running %v after the desired state was sent", time.Since(begin).Round(time.Millisecond))
	for _, pid := range pids {
		killGroupOnCleanup(t, pid)
	}
	var peak memory
	for i := 1; i <= 6; i++ {
		time.Sleep(5 * time.Second) // the measurement's own cadence
		m := p.memory()
		t.Logf("t=%ds %s applied=%d", 5*i, m, cloud.Count(agentNode))
		peak = higher(peak, m)
	}
	hwm := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("agent with 20 exec workloads, steady state after 30 s: %s; peak %s; VmHWM %.1f MiB; idle before them %s",
		p.memory(), peak, float64(hwm)/1024, idle)
	removeAll(t, b, 2, pids)
	p.stop()
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(t *testing.T, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmHWM line")
	return 0
}
