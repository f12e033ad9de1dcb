package clock

import (
	"testing"
	"time"
)

func TestFakeAfterAndTicker(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	after := f.After(90 * time.Second)
	tick := f.NewTicker(time.Minute)
	f.Advance(59 * time.Second)
	select {
	case <-after:
		t.Fatal("After fired early")
	case <-tick.C():
		t.Fatal("ticker fired early")
	default:
	}
	f.Advance(time.Second)
	if got := <-tick.C(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("tick at %v, want %v", got, start.Add(time.Minute))
	}
	f.Advance(30 * time.Second)
	if got := <-after; !got.Equal(start.Add(90 * time.Second)) {
		t.Fatalf("After fired at %v", got)
	}
	// Ticks missed by a slow receiver are dropped, not queued.
	f.Advance(10 * time.Minute)
	<-tick.C()
	select {
	case <-tick.C():
		t.Fatal("ticker queued more than one tick")
	default:
	}
	tick.Stop()
	f.Advance(time.Hour)
	select {
	case <-tick.C():
		t.Fatal("stopped ticker fired")
	default:
	}
	if got, want := f.Now(), start.Add(time.Minute+30*time.Second+10*time.Minute+time.Hour); !got.Equal(want) {
		t.Fatalf("Now() = %v, want %v", got, want)
	}
}
