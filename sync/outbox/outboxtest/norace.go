//go:build !race

package outboxtest

// RaceEnabled reports whether the race detector is on. Long single-
// goroutine simulations skip under it: they have no concurrency to check
// and run 40 times slower.
const RaceEnabled = false
