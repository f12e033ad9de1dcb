package engine

import (
	"context"
	"time"

	"github.com/skyedge/skyedge/sync/outbox"
)

// minTelemetryCap is the smallest telemetry quota disk pressure imposes,
// so a node under pressure still keeps its recent reports.
const minTelemetryCap = 64 << 10

// Run implements outbox.Queue.
func (e *Engine) Run(ctx context.Context) error {
	syncT := e.clk.NewTicker(e.cfg.SyncInterval)
	defer syncT.Stop()
	maintT := e.clk.NewTicker(e.cfg.MaintainInterval)
	defer maintT.Stop()
	var lastExpire time.Time
	maintain := func() {
		now := e.clk.Now()
		expire := now.Sub(lastExpire) >= e.cfg.ExpireInterval
		if expire {
			lastExpire = now
		}
		e.maintain(ctx, now, expire)
	}
	maintain()
	for {
		select {
		case <-ctx.Done():
			e.periodicSync()
			return nil
		case <-e.done:
			return nil
		case <-syncT.C():
			e.periodicSync()
		case <-maintT.C():
			maintain()
		}
	}
}

func (e *Engine) periodicSync() {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return
	}
	e.logErr("sync", e.syncNow())
}

// maintain runs one round of background work.
func (e *Engine) maintain(ctx context.Context, now time.Time, expire bool) {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return
	}
	e.checkPressure()
	e.flushRefusals()
	if expire {
		e.maint.Lock()
		e.logErr("expire", e.expire(now))
		e.maint.Unlock()
	}
	for _, c := range outbox.Classes {
		if e.cfg.Policies[c].WhenFull != outbox.Refuse && e.classes[c].bytes.Load() > e.quota(c) {
			e.relieveIfIdle(c)
		}
	}
	if ctx.Err() == nil {
		e.logErr("housekeep", e.store.Housekeep(ctx))
	}
	if ctx.Err() == nil && e.drained() {
		e.reclaim(ctx)
	}
}

// reclaim has the store reclaim what deleted records still hold.
func (e *Engine) reclaim(ctx context.Context) {
	freed := e.reclaimable.Swap(0)
	start := e.clk.Now()
	err := e.exclusively(func() error { return e.store.Reclaim(ctx) })
	e.logErr("reclaim", err)
	if err == nil {
		e.log.Info("outbox reclaimed deleted records", "freed_bytes", freed, "took", e.clk.Now().Sub(start).Round(time.Millisecond))
	}
}

// defaultReclaimAfter is how many bytes of deleted records make a drained
// queue ask its store to reclaim their space: a few days of reports at
// one every 10 s, a few seconds of a large backlog's drain.
const defaultReclaimAfter = 4 << 20

// drained reports whether the queue has deleted at least reclaimAfter
// bytes since the store last reclaimed and now holds next to nothing (a
// 64th of that): a drained backlog, or a quiet queue after days of
// traffic. A queue that never empties is left to the store's own
// compaction.
func (e *Engine) drained() bool {
	if e.reclaimable.Load() < e.reclaimAfter {
		return false
	}
	var held int64
	for _, c := range outbox.Classes {
		held += e.classes[c].bytes.Load()
	}
	return held <= e.reclaimAfter/64
}

// exclusively runs fn on the pipeline's leader before its round commits,
// so that no write commits meanwhile, with useMu held so that no UseStore
// caller runs either. Appends wait for fn.
func (e *Engine) exclusively(fn func() error) error {
	e.useMu.Lock()
	defer e.useMu.Unlock()
	o := &op{build: func(*writer) error { return fn() }}
	e.submit(o)
	return o.err
}

// checkPressure asks the store's disk guard and applies its verdict: under
// soft or hard pressure telemetry is held to half of what it had when the
// pressure began; under hard pressure Append refuses everything.
func (e *Engine) checkPressure() {
	p, disk, err := e.store.Pressure()
	e.logErr("disk guard", err)
	if err != nil {
		return
	}
	e.diskBytes.Store(disk)
	old := outbox.Pressure(e.pressure.Swap(uint32(p)))
	if p == old {
		return
	}
	e.log.Warn("outbox disk pressure changed", "from", old, "to", p, "disk_bytes", disk)
	switch {
	case p == outbox.PressureNone:
		e.telemetryCap.Store(0)
	case old == outbox.PressureNone:
		tb := e.classes[outbox.Telemetry].bytes.Load()
		e.telemetryCap.Store(max(min(tb, e.cfg.Policies[outbox.Telemetry].Quota)/2, minTelemetryCap))
	}
}
