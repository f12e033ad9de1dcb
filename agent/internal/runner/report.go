package runner

import (
	"os"

	"github.com/skyedge/skyedge/protocol/spec"
)

// How a supervisor reports: the record on disk, then the status.

// save writes the record; u is the desired unit (nil: keep the last
// record's generation and runtime).
func (s *supervisor) save(u *unit) {
	rec := record{
		Name:     s.name,
		Restarts: s.restarts,
		Crashes:  s.crashes,
		Grace:    spec.Duration(s.grace),
		Final:    s.final,
	}
	s.r.mu.Lock()
	rec.Generation = s.status.Generation
	rec.StartedAt = s.status.StartedAt
	s.r.mu.Unlock()
	switch {
	case s.inst != nil:
		v := s.inst.view()
		rec.Runtime, rec.Hash, rec.Process, rec.ContainerID = s.instRT, v.hash, v.process, v.containerID
		rec.StartedAt = v.startedAt
	case u != nil:
		rec.Runtime, rec.Hash = u.spec.Runtime, u.hash
	default:
		if old, err := loadRecord(s.dir); err == nil && old != nil {
			rec.Runtime, rec.Hash = old.Runtime, old.Hash
		}
	}
	if s.final != nil {
		rec.Hash = s.finalHash
	}
	err := os.MkdirAll(s.dir, 0o750)
	if err == nil {
		err = saveRecord(s.dir, &rec)
	}
	if err != nil {
		s.log.Warn("saving workload state failed", "error", err)
	}
}

// update changes the status under the lock and, when it changed, hands a
// copy to OnStatus.
func (s *supervisor) update(fn func(*Status)) {
	s.r.mu.Lock()
	old := s.status
	fn(&s.status)
	now := s.r.clock.Now()
	if s.status.State != old.State {
		s.status.Since = now
	}
	st := s.status
	changed := !s.reported || !sameStatus(old, st)
	s.reported = true
	s.r.mu.Unlock()
	if changed && s.r.cfg.OnStatus != nil {
		s.r.cfg.OnStatus(st)
	}
}

func sameStatus(a, b Status) bool {
	ca, cb := a.ExitCode, b.ExitCode
	a.ExitCode, b.ExitCode = nil, nil
	if (ca == nil) != (cb == nil) || ca != nil && *ca != *cb {
		return false
	}
	return a == b
}
