package badgerq

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/skyedge/skyedge/sync/outbox/internal/engine"
)

// localPrefix is the first byte of every key of the local key-value area;
// records use 'q' and queue metadata "m/", and every queue scan is bound
// to its own prefix, so the two never meet.
const localPrefix = 'l'

// ErrNotFound is returned by KV.Get for a key that holds nothing.
var ErrNotFound = errors.New("key not found")

// KV is a small key-value area inside the queue's database, for the state
// a node keeps beside its outbox (its desired set, for one) without a
// second Badger. Writes are synced before they return. It is meant for a
// few small values written now and then, not for bulk data: it counts
// towards the database's disk cap (MaxDiskBytes) but not towards any
// class quota.
//
// The area shares the database's fate: when the database will not open
// and is moved aside (see Open), a fresh one starts with the area empty.
// For the desired set that means generation 0, which the cloud answers
// with the full set.
type KV struct {
	q *Queue
}

// Local returns the queue's local key-value area. It is usable until the
// queue is closed; after Close its methods return outbox.ErrClosed.
func (q *Queue) Local() *KV { return &KV{q: q} }

func localKey(key string) []byte {
	return append([]byte{localPrefix}, key...)
}

func (kv *KV) db(fn func(*badger.DB) error) error {
	return kv.q.UseStore(func(s engine.Store) error {
		st, ok := s.(*store)
		if !ok {
			return fmt.Errorf("local state: queue store is %T, not badger", s)
		}
		return fn(st.db)
	})
}

// Get returns a copy of the value of key, or ErrNotFound.
func (kv *KV) Get(key string) ([]byte, error) {
	var val []byte
	err := kv.db(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			it, err := txn.Get(localKey(key))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			val, err = it.ValueCopy(nil)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("local state get %q: %w", key, err)
	}
	return val, nil
}

// Set stores val under key and syncs it to disk before returning.
func (kv *KV) Set(key string, val []byte) error {
	err := kv.db(func(db *badger.DB) error {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(localKey(key), bytes.Clone(val)) }); err != nil {
			return err
		}
		return db.Sync()
	})
	if err != nil {
		return fmt.Errorf("local state set %q: %w", key, err)
	}
	return nil
}

// Delete removes key, synced; deleting a missing key is not an error.
func (kv *KV) Delete(key string) error {
	err := kv.db(func(db *badger.DB) error {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(localKey(key)) }); err != nil {
			return err
		}
		return db.Sync()
	})
	if err != nil {
		return fmt.Errorf("local state delete %q: %w", key, err)
	}
	return nil
}

// Iterate calls fn for every key starting with prefix, in key order, until
// fn returns false or an error (returned as is). The value is only valid
// during the call.
func (kv *KV) Iterate(prefix string, fn func(key string, val []byte) (bool, error)) error {
	var fnErr error
	err := kv.db(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: localKey(prefix), PrefetchValues: false})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				var more bool
				err := item.Value(func(v []byte) error {
					more, fnErr = fn(string(item.Key()[1:]), v)
					return fnErr
				})
				if err != nil || !more {
					return err
				}
			}
			return nil
		})
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("local state iterate %q: %w", prefix, err)
	}
	return nil
}
