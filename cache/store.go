package cache

import (
	"context"
	"encoding/json"
	"time"
)

// Store is the second tier: a byte store shared by every instance of a
// service, such as Redis through cache/redisstore. Keys are the cache's
// keys turned into strings by Config.KeyString; values are opaque records
// of the cache (a small header plus the Codec's bytes). Implementations
// are safe for concurrent use and bound every call in time.
type Store interface {
	// Get returns the value stored under key, or nil and no error when
	// there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetMany returns the values stored under keys, in order, with nil for
	// each missing key, in one round trip to the store where it can.
	GetMany(ctx context.Context, keys []string) ([][]byte, error)
	// Set stores every entry, each with its own expiry, in one round trip
	// where it can.
	Set(ctx context.Context, entries []StoreEntry) error
	// Delete removes keys.
	Delete(ctx context.Context, keys []string) error
}

// StoreEntry is one value for [Store.Set].
type StoreEntry struct {
	// Key is the cache's key as a string (Config.KeyString).
	Key string
	// Value is the cache's record: opaque to the Store.
	Value []byte
	// TTL is how long the store keeps the value; always positive.
	TTL time.Duration
}

// Broadcaster is implemented by a [Store] that can tell every instance
// when keys change, so that they drop them from their in-process tier
// (cache/redisstore does it with Redis pub/sub).
type Broadcaster interface {
	// Publish tells the other subscribers that keys changed.
	Publish(ctx context.Context, keys []string) error
	// Subscribe calls onKeys with the keys every other instance publishes,
	// and onGap whenever messages may have been lost (the subscription
	// broke and was restored), so that the subscriber drops what it can no
	// longer trust. It returns a function that ends the subscription and
	// waits for its goroutine. Callbacks run on one goroutine, one at a
	// time.
	Subscribe(onKeys func(keys []string), onGap func()) (stop func())
}

// Locker is implemented by a [Store] that offers a short exclusive lock per
// key, for Config.LockTTL.
type Locker interface {
	// TryLock takes the lock of key for ttl unless another holder has it.
	// ok reports whether it was taken; release gives it back early (and
	// only if still held by this caller).
	TryLock(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error)
}

// Codec turns values into bytes for a [Store] and back. Implementations are
// safe for concurrent use.
type Codec[V any] interface {
	// Marshal encodes v.
	Marshal(v V) ([]byte, error)
	// Unmarshal decodes what Marshal encoded. Data read from a Store is
	// untrusted: a malformed input must give an error, never a panic.
	Unmarshal(data []byte) (V, error)
}

// JSON is the default [Codec]: encoding/json. Its zero value is ready to
// use.
type JSON[V any] struct{}

// Marshal returns the JSON encoding of v.
func (JSON[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes data into a new V.
func (JSON[V]) Unmarshal(data []byte) (V, error) {
	var v V
	err := json.Unmarshal(data, &v)
	return v, err
}
