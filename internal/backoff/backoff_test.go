package backoff

import (
	"testing"
	"time"
)

func TestBackoffCapsAndResets(t *testing.T) {
	b := New(Policy{Min: time.Second, Max: 8 * time.Second, ResetAfter: 30 * time.Second})
	b.rand = func(n int64) int64 { return n - 1 } // the top of each window
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range want {
		if got := b.Next(); got != w*time.Second {
			t.Fatalf("Next() #%d = %v, want %v", i, got, w*time.Second)
		}
	}
	b.Connected(10 * time.Second)
	if got := b.Next(); got != 8*time.Second {
		t.Fatalf("after a short connection Next() = %v, want still capped", got)
	}
	b.Connected(31 * time.Second)
	if got := b.Next(); got != time.Second {
		t.Fatalf("after a long connection Next() = %v, want reset to Min", got)
	}
}

func TestBackoffFastPhase(t *testing.T) {
	b := New(Policy{Min: time.Second, Max: 80 * time.Second, ResetAfter: 30 * time.Second, FastMax: 8 * time.Second, FastAttempts: 6})
	b.rand = func(n int64) int64 { return n - 1 }
	// Six attempts capped at 8 s, then doubling from 8 s up to Max.
	want := []time.Duration{1, 2, 4, 8, 8, 8, 16, 32, 64, 80, 80}
	for i, w := range want {
		if got := b.Next(); got != w*time.Second {
			t.Fatalf("Next() #%d = %v, want %v", i, got, w*time.Second)
		}
	}
	b.Connected(31 * time.Second)
	if got := b.Next(); got != time.Second {
		t.Fatalf("after a long connection Next() = %v, want reset to Min", got)
	}
}

func TestBackoffFullJitterSpreads(t *testing.T) {
	b := New(DefaultPolicy)
	for range DefaultPolicy.FastAttempts + 10 { // past the fast phase, up to Max
		b.Next()
	}
	seen := map[time.Duration]bool{}
	for range 100 {
		d := b.Next()
		if d < time.Millisecond || d > DefaultPolicy.Max {
			t.Fatalf("Next() = %v outside [1ms, %v]", d, DefaultPolicy.Max)
		}
		seen[d/time.Second] = true
	}
	if len(seen) < 20 {
		t.Fatalf("100 capped delays fell in only %d distinct seconds: not jittered", len(seen))
	}
}
