//go:build linux

package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Session is a session leader found by FindSessions.
type Session struct {
	Identity
	// Env holds the values of the keys asked for that the process has.
	Env map[string]string
}

// FindSessions returns every session leader (as Start makes them) whose
// environment has the variable keys[0], with the values of keys. It finds
// processes whose identity was never recorded: an agent killed between
// starting a process and writing its record. Processes that cannot be
// read (another user's, without privilege) are skipped.
func FindSessions(keys ...string) ([]Session, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	boot, err := BootID()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []Session
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st, sid, err := parseStatSession(b)
		if err != nil || sid != pid || st.state == 'Z' {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		vals := lookupEnv(env, keys)
		if _, ok := vals[keys[0]]; !ok {
			continue
		}
		out = append(out, Session{Identity: Identity{PID: pid, StartTicks: st.startTicks, BootID: boot}, Env: vals})
	}
	return out, nil
}

// parseStatSession also returns the session ID (field 6).
func parseStatSession(b []byte) (stat, int, error) {
	st, err := parseStat(b)
	if err != nil {
		return stat{}, 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		return stat{}, 0, fmt.Errorf("malformed /proc stat session %q", f[3])
	}
	return st, sid, nil
}

func lookupEnv(environ []byte, keys []string) map[string]string {
	vals := map[string]string{}
	for _, kv := range bytes.Split(environ, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok {
			continue
		}
		for _, want := range keys {
			if string(k) == want {
				vals[want] = string(v)
			}
		}
	}
	return vals
}

var (
	btimeOnce sync.Once
	btime     time.Time
	btimeErr  error
)

// ticksPerSecond is USER_HZ, the unit of /proc start times: 100 on every
// Linux architecture the agent runs on.
const ticksPerSecond = 100

// StartTime returns when the process of id started, from its start time
// in ticks after the boot time in /proc/stat.
func StartTime(id Identity) (time.Time, error) {
	btimeOnce.Do(func() {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			btimeErr = err
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "btime "); ok {
				s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					btimeErr = fmt.Errorf("malformed btime %q", v)
					return
				}
				btime = time.Unix(s, 0)
				return
			}
		}
		btimeErr = fmt.Errorf("no btime in /proc/stat")
	})
	if btimeErr != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", btimeErr)
	}
	return btime.Add(time.Duration(id.StartTicks) * time.Second / ticksPerSecond), nil
}
