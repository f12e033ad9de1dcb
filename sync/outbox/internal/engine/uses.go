package engine

import "github.com/skyedge/skyedge/sync/outbox"

// UseStore calls fn with the engine's store while the engine is open, so
// an implementation can keep data of its own beside the records (badgerq's
// local key-value area) without racing Close. It returns outbox.ErrClosed
// after Close.
func (e *Engine) UseStore(fn func(Store) error) error {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return outbox.ErrClosed
	}
	return fn(e.store)
}
