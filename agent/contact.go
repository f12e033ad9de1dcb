package agent

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/skyedge/skyedge/internal/clock"
)

// persistContact stores the last contact when it changed since it was
// last stored.
func (w *workloads) persistContact() {
	if w.kv == nil {
		return
	}
	t, ok := w.contact.unsaved()
	if !ok {
		return
	}
	if err := w.kv.Set(contactKey, binary.BigEndian.AppendUint64(nil, uint64(t.UnixMilli()))); err != nil {
		w.log.Debug("storing the last contact failed", "error", err)
		return
	}
	w.contact.saved(t)
}

// contact is when the agent last heard from the cloud: now while the
// link is up, else the last message, connect or disconnect. It drives
// the workloads' disconnect.stopAfter.
type contact struct {
	clk       clock.Clock
	connected func() bool
	at        atomic.Int64 // Unix ns; 0: never
	savedAt   atomic.Int64 // Unix ns of the value stored
}

// note records contact at t.
func (c *contact) note(t time.Time) {
	for {
		old := c.at.Load()
		if t.UnixNano() <= old || c.at.CompareAndSwap(old, t.UnixNano()) {
			return
		}
	}
}

// restore takes the value an earlier run stored.
func (c *contact) restore(t time.Time) {
	c.note(t)
	c.savedAt.Store(t.UnixNano())
}

// last is the runner's LastContact.
func (c *contact) last() time.Time {
	if c.connected != nil && c.connected() {
		now := c.clk.Now()
		c.note(now)
		return now
	}
	if ns := c.at.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (c *contact) unsaved() (time.Time, bool) {
	c.last() // while connected, now is the contact to keep
	ns := c.at.Load()
	return time.Unix(0, ns), ns != 0 && ns != c.savedAt.Load()
}

func (c *contact) saved(t time.Time) { c.savedAt.Store(t.UnixNano()) }
