package runner

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAgentRSS measures the resident memory of a process that runs
// only a Runner (the agent helper) supervising n exec workloads, once all
// run and a few housekeeping rounds have passed. b.N is not used: the
// figure is a level, not a rate. Run it with
//
//	go test -run '^$' -bench AgentRSS -benchtime 1x ./agent/internal/runner/
func BenchmarkAgentRSS(b *testing.B) {
	for _, n := range []int{0, 20} {
		b.Run(fmt.Sprintf("workloads=%d", n), func(b *testing.B) {
			var set []Assignment
			for i := range n {
				s := execSpec(b, "sleep")
				s.Health = nil
				set = append(set, Assignment{Name: fmt.Sprintf("w%02d", i), Generation: 1, Spec: s})
			}
			agent := startAgent(b, b.TempDir(), set)
			deadline := time.Now().Add(60 * time.Second)
			for running(agent, set) < n {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d workloads running after 60s", running(agent, set), n)
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(3 * time.Second) // housekeeping rounds at 1 s
			rss, hwm := vmRSS(b, agent.cmd.Process.Pid)
			b.ReportMetric(float64(rss), "rss-KiB")
			b.ReportMetric(float64(hwm), "peak-rss-KiB")
			for _, a := range set {
				if pid := agent.status(a.Name).PID; pid > 0 {
					syscall.Kill(-pid, syscall.SIGKILL)
				}
			}
		})
	}
}

func running(a *agentProcess, set []Assignment) int {
	n := 0
	for _, w := range set {
		if a.status(w.Name).State == StateRunning {
			n++
		}
	}
	return n
}

// vmRSS reads VmRSS and VmHWM of pid, in KiB.
func vmRSS(b *testing.B, pid int) (rss, hwm int) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}
