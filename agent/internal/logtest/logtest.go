// Package logtest records slog records in tests, so a test can check
// that a state change is logged once and a repeated failure is not
// logged again.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Recorder is a slog.Handler that keeps every record and, when it has a
// test, also writes it to the test log.
type Recorder struct {
	t     testing.TB
	attrs []slog.Attr

	shared *records
}

type records struct {
	mu   sync.Mutex // guards list
	list []string
}

// New returns a Recorder that echoes records to t.Log (t may be nil).
func New(t testing.TB) *Recorder { return &Recorder{t: t, shared: &records{}} }

// Logger returns a logger writing to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Enabled implements slog.Handler; every level is recorded.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return &c
}

// WithGroup implements slog.Handler; groups are flattened.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	line := b.String()
	r.shared.mu.Lock()
	r.shared.list = append(r.shared.list, line)
	r.shared.mu.Unlock()
	if r.t != nil {
		r.t.Log(line)
	}
	return nil
}

// Lines returns the records so far, as "LEVEL message key=value ...".
func (r *Recorder) Lines() []string {
	r.shared.mu.Lock()
	defer r.shared.mu.Unlock()
	return append([]string(nil), r.shared.list...)
}

// Count returns how many records have message msg.
func (r *Recorder) Count(msg string) int {
	n := 0
	for _, l := range r.Lines() {
		_, rest, _ := strings.Cut(l, " ")
		if rest == msg || strings.HasPrefix(rest, msg+" ") {
			n++
		}
	}
	return n
}
