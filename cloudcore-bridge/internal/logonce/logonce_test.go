package logonce

import (
	"fmt"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		name string
		key  string
		at   time.Duration
		want bool
	}{
		{"first a", "a", 0, true},
		{"repeat a", "a", time.Minute, false},
		{"first b", "b", time.Minute, true},
		{"a before the hour", "a", 59 * time.Minute, false},
		{"a after the hour", "a", 61 * time.Minute, true},
		{"a again right after", "a", 62 * time.Minute, false},
		{"b after its hour", "b", 61 * time.Minute, true},
	}
	l := New(time.Hour, 100)
	for _, s := range steps {
		if got := l.Allow(s.key, t0.Add(s.at)); got != s.want {
			t.Errorf("%s: Allow(%q, +%v) = %v, want %v", s.name, s.key, s.at, got, s.want)
		}
	}
}

func TestAllowBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(time.Hour, 10)
	for i := range 1000 {
		if !l.Allow(fmt.Sprint("k", i), t0) {
			t.Fatalf("Allow(k%d) = false for a new key, want true", i)
		}
		if n := l.Len(); n > 10 {
			t.Fatalf("after %d keys Len() = %d, want at most 10", i+1, n)
		}
	}
	// Keys whose quiet period is over are evicted first.
	l = New(time.Hour, 2)
	l.Allow("old", t0)
	l.Allow("recent", t0.Add(90*time.Minute))
	l.Allow("new", t0.Add(90*time.Minute))
	if l.Allow("recent", t0.Add(91*time.Minute)) {
		t.Errorf("Allow(recent) after evicting for new = true, want false (old should have gone first)")
	}
}
