// Package backoff computes reconnect delays: capped exponential backoff
// with full jitter, reset once a connection has stayed up long enough (the
// AWS IoT device SDK's policy: 1 s to 120 s, reset after 30 s connected).
// Full jitter spreads a fleet that lost its link at the same moment over
// the whole window instead of bringing it back in waves.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy configures a Backoff.
type Policy struct {
	Min, Max time.Duration
	// ResetAfter is how long a connection must last for the next failure to
	// start again from Min.
	ResetAfter time.Duration
}

// DefaultPolicy is the AWS SDK's reconnect policy.
var DefaultPolicy = Policy{Min: time.Second, Max: 120 * time.Second, ResetAfter: 30 * time.Second}

// Backoff yields successive delays. It is not safe for concurrent use.
type Backoff struct {
	p       Policy
	attempt int
	rand    func(n int64) int64
}

// New returns a Backoff with p.
func New(p Policy) *Backoff {
	if p.Min <= 0 {
		p.Min = DefaultPolicy.Min
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	return &Backoff{p: p, rand: rand.Int64N}
}

// Next returns the delay before the next attempt: uniform in
// [0, min(Max, Min*2^attempt)], never below 1 ms.
func (b *Backoff) Next() time.Duration {
	ceil := b.p.Min << min(b.attempt, 30)
	if ceil > b.p.Max || ceil <= 0 {
		ceil = b.p.Max
	}
	b.attempt++
	d := time.Duration(b.rand(int64(ceil) + 1))
	return max(d, time.Millisecond)
}

// Attempts is the number of delays handed out since the last reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Connected tells the Backoff a connection lasted for up; when that is at
// least ResetAfter, the next delay starts again from Min.
func (b *Backoff) Connected(up time.Duration) {
	if up >= b.p.ResetAfter {
		b.attempt = 0
	}
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.attempt = 0 }
