package engine

import "github.com/skyedge/skyedge/sync/outbox"

// UseStore calls fn with the engine's store while the engine is open, so
// an implementation can keep data of its own beside the records (badgerq's
// local key-value area) without racing Close. It waits while the store
// reclaims deleted records (Store.Reclaim may block the store's writes),
// and returns outbox.ErrClosed after Close.
func (e *Engine) UseStore(fn func(Store) error) error {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return outbox.ErrClosed
	}
	e.useMu.RLock()
	defer e.useMu.RUnlock()
	return fn(e.store)
}
