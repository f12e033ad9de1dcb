// Package logonce decides whether a repeated problem deserves another log
// line. A node that sends a malformed message every ten seconds must not
// fill the bridge's log: the first occurrence of each (key) is logged, the
// rest are only counted, and the key may be logged again after a quiet
// period. The set of keys is bounded so that a flood of distinct keys
// cannot grow memory without limit.
package logonce

import (
	"sync"
	"time"
)

// Limiter remembers when each key was last allowed. It is safe for
// concurrent use.
type Limiter struct {
	every time.Duration
	max   int

	mu   sync.Mutex // guards seen
	seen map[string]time.Time
}

// New returns a Limiter that allows a key again after every, and remembers
// at most max keys.
func New(every time.Duration, max int) *Limiter {
	return &Limiter{every: every, max: max, seen: make(map[string]time.Time)}
}

// Allow reports whether key should be logged at now, and if so records it.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.seen[key]; ok && now.Sub(last) < l.every {
		return false
	}
	if _, ok := l.seen[key]; !ok && len(l.seen) >= l.max {
		l.evictLocked(now)
	}
	l.seen[key] = now
	return true
}

// evictLocked makes room: it drops the keys whose quiet period is over,
// and if none is, an arbitrary one (which may then be logged once more).
func (l *Limiter) evictLocked(now time.Time) {
	for k, t := range l.seen {
		if now.Sub(t) >= l.every {
			delete(l.seen, k)
		}
	}
	for k := range l.seen {
		if len(l.seen) < l.max {
			return
		}
		delete(l.seen, k)
	}
}

// Len is the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}
