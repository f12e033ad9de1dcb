// Package backoff computes reconnect delays: capped exponential backoff
// with full jitter, reset once a connection has stayed up long enough (the
// AWS IoT device SDK's policy: 1 s to 120 s, reset after 30 s connected).
// Full jitter spreads a fleet that lost its link at the same moment over
// the whole window instead of bringing it back in waves.
//
// The first attempts after a loss are capped lower (FastMax for
// FastAttempts attempts, a few minutes): a fleet that drops together (a
// broker restart, a regional link cut of seconds or minutes) is back
// within FastMax of the link's return instead of the up to two minutes a
// window grown to Max would take; only an outage longer than the fast
// phase lets the window grow on to Max, so nodes failing for hours do
// not hammer a broker that is down.
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
	// FastMax caps the window of the first FastAttempts attempts after a
	// reset; later windows double from FastMax up to Max. Zero
	// FastAttempts disables the fast phase.
	FastMax      time.Duration
	FastAttempts int
}

// DefaultPolicy is the AWS SDK's reconnect policy (1 s to 120 s, reset
// after 30 s connected) with a fast phase: windows of at most 10 s for
// the first 30 attempts (about two and a half minutes).
var DefaultPolicy = Policy{Min: time.Second, Max: 120 * time.Second, ResetAfter: 30 * time.Second,
	FastMax: 10 * time.Second, FastAttempts: 30}

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
	p.FastMax = min(max(p.FastMax, p.Min), p.Max)
	p.FastAttempts = max(p.FastAttempts, 0)
	return &Backoff{p: p, rand: rand.Int64N}
}

// Next returns the delay before the next attempt, never below 1 ms:
// uniform in [0, min(FastMax, Min*2^attempt)] during the fast phase, then
// in [0, min(Max, FastMax*2^(attempt-FastAttempts+1))].
func (b *Backoff) Next() time.Duration {
	ceil := b.ceiling()
	b.attempt++
	d := time.Duration(b.rand(int64(ceil) + 1))
	return max(d, time.Millisecond)
}

func (b *Backoff) ceiling() time.Duration {
	base, exp, limit := b.p.Min, b.attempt, b.p.Max
	switch {
	case b.p.FastAttempts == 0:
	case b.attempt < b.p.FastAttempts:
		limit = b.p.FastMax
	default:
		base, exp = b.p.FastMax, b.attempt-b.p.FastAttempts+1
	}
	ceil := base << min(exp, 30)
	if ceil > limit || ceil <= 0 {
		ceil = limit
	}
	return ceil
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
