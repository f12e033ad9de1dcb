package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture SkyEdge runs on.
const clockTicks = 100

// procSample is one reading of a process's CPU time and resident memory.
type procSample struct {
	at     time.Time
	cpu    time.Duration // user + system
	rssKiB uint64
}

// readProc reads /proc/PID/stat (utime, stime) and /proc/PID/status
// (VmRSS).
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. utime and stime are fields 14 and 15 of the line,
	// 12 and 13 after it.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return s, fmt.Errorf("bench: /proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("bench: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("bench: /proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB"))
			if s.rssKiB, err = strconv.ParseUint(kb, 10, 64); err != nil {
				return s, fmt.Errorf("bench: /proc/%d/status VmRSS %q: %w", pid, rest, err)
			}
			return s, nil
		}
	}
	return s, fmt.Errorf("bench: /proc/%d/status has no VmRSS", pid)
}

// cpuPercent is the CPU used between two samples as a percentage of one
// core (200 is two cores busy).
func cpuPercent(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.cpu-a.cpu) / float64(wall)
}

// rssWatch samples a process's RSS at regular times and keeps the maximum
// and the mean.
type rssWatch struct {
	n        int
	sum, max uint64
}

func (w *rssWatch) add(s procSample) {
	w.n++
	w.sum += s.rssKiB
	w.max = max(w.max, s.rssKiB)
}

func (w *rssWatch) maxMiB() float64 { return float64(w.max) / 1024 }

func (w *rssWatch) meanMiB() float64 {
	if w.n == 0 {
		return 0
	}
	return float64(w.sum) / float64(w.n) / 1024
}

// systemBusy is the CPU time the whole machine has spent busy (user,
// nice, system, irq, softirq, steal) since boot, from /proc/stat.
func systemBusy() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("bench: /proc/stat: unexpected first line %q", line)
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// cpuWatch measures, over a window, the CPU time of a set of processes
// and of the whole machine, to tell what else ran meanwhile.
type cpuWatch struct {
	pids  []int
	start time.Time
	busy  time.Duration
	ours  time.Duration
}

func (w *cpuWatch) read() (busy, ours time.Duration) {
	busy, _ = systemBusy()
	for _, pid := range w.pids {
		if s, err := readProc(pid); err == nil {
			ours += s.cpu
		}
	}
	return busy, ours
}

func newCPUWatch(pids ...int) *cpuWatch {
	w := &cpuWatch{pids: pids, start: time.Now()}
	w.busy, w.ours = w.read()
	return w
}

// percent is the CPU the watched processes used since newCPUWatch, as a
// percentage of one core.
func (w *cpuWatch) percent() float64 {
	_, ours := w.read()
	wall := time.Since(w.start)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(ours-w.ours) / float64(wall)
}

// others is the CPU the rest of the machine (all but the watched
// processes) used since newCPUWatch, as a percentage of one core.
func (w *cpuWatch) others() float64 {
	busy, ours := w.read()
	wall := time.Since(w.start)
	if wall <= 0 {
		return 0
	}
	return max(0, 100*float64((busy-w.busy)-(ours-w.ours))/float64(wall))
}
