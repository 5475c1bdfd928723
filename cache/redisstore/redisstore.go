package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/cache"
)

// ErrKeyTooLong is returned for a key longer than [MaxKeyLen].
var ErrKeyTooLong = errors.New("cache/redisstore: key too long")

// Store is a [cache.Store] in Redis, which is also a [cache.Broadcaster]
// (Redis pub/sub) and a [cache.Locker] (SET NX PX). Create one with [New];
// the zero Store is not usable. A Store is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	cluster bool
	prefix  string
	channel string
	timeout time.Duration
	id      string // this instance, so that it skips its own invalidations
}

var (
	_ cache.Store       = (*Store)(nil)
	_ cache.Broadcaster = (*Store)(nil)
	_ cache.Locker      = (*Store)(nil)
)

// New returns a Store over rdb, which the caller owns (the Store never
// closes it). It panics with a [*bulwark.ConfigError] if cfg.Validate
// fails, and if rdb is nil.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if rdb == nil {
		panic("cache/redisstore: New called with a nil client")
	}
	s := &Store{rdb: rdb, prefix: cfg.Prefix, timeout: cfg.Timeout}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	_, s.cluster = rdb.(*redis.ClusterClient)
	s.channel = s.prefix + "invalidations"
	var b [16]byte
	rand.Read(b[:])
	s.id = hex.EncodeToString(b[:])
	return s
}

func (s *Store) key(k string) (string, error) {
	if len(k) > MaxKeyLen {
		return "", ErrKeyTooLong
	}
	return s.prefix + "v:" + k, nil
}

// Get returns the value of key, or nil when there is none. One round trip
// (GET).
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	b, err := s.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// GetMany returns the values of keys in order, nil for missing ones. On a
// single server or Sentinel it is one MGET. On Redis Cluster, keys of
// different slots cannot share an MGET (CROSSSLOT), and the cache's keys
// carry no common hash tag (they would all land on one node), so it sends
// a pipeline of GETs instead: go-redis splits it by node and sends each
// node its part at once, one round trip per node, in parallel.
func (s *Store) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	ks := make([]string, len(keys))
	for i, key := range keys {
		k, err := s.key(key)
		if err != nil {
			return nil, err
		}
		ks[i] = k
	}
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if !s.cluster {
		vals, err := s.rdb.MGet(ctx, ks...).Result()
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				out[i] = []byte(str)
			}
		}
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(ks))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range ks {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i, c := range cmds {
		b, err := c.Bytes()
		switch {
		case err == nil:
			out[i] = b
		case errors.Is(err, redis.Nil):
		default:
			return nil, err
		}
	}
	return out, nil
}

// Set stores entries with their TTLs: one SET PX for one entry, else one
// pipeline of them.
func (s *Store) Set(ctx context.Context, entries []cache.StoreEntry) error {
	ks := make([]string, len(entries))
	for i, e := range entries {
		k, err := s.key(e.Key)
		if err != nil {
			return err
		}
		ks[i] = k
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if len(entries) == 1 {
		return s.rdb.Set(ctx, ks[0], entries[0].Value, entries[0].TTL).Err()
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			p.Set(ctx, ks[i], e.Value, e.TTL)
		}
		return nil
	})
	return err
}

// Delete removes keys: one DEL per key, pipelined (keys of different
// slots cannot share a DEL on Cluster).
func (s *Store) Delete(ctx context.Context, keys []string) error {
	ks := make([]string, len(keys))
	for i, key := range keys {
		k, err := s.key(key)
		if err != nil {
			return err
		}
		ks[i] = k
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if len(ks) == 1 {
		return s.rdb.Del(ctx, ks[0]).Err()
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range ks {
			p.Del(ctx, k)
		}
		return nil
	})
	return err
}

// unlock deletes a lock only if it still holds this holder's token.
var unlock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// TryLock takes the lock of key (SET <Prefix>l:<key> <token> NX PX ttl).
// release deletes it only while it still holds this caller's token (a
// Lua script), so a holder whose lock expired never frees another's.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error) {
	if len(key) > MaxKeyLen {
		return nil, false, ErrKeyTooLong
	}
	k := s.prefix + "l:" + key
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ok, err = s.rdb.SetNX(cctx, k, token, ttl).Result()
	if err != nil || !ok {
		return nil, false, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		unlock.Run(ctx, s.rdb, []string{k}, token)
	}, true, nil
}

// Publish tells every other subscribed Store of the same Prefix that keys
// changed (one PUBLISH).
func (s *Store) Publish(ctx context.Context, keys []string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.rdb.Publish(ctx, s.channel, encodeMessage(s.id, keys)).Err()
}

// Subscribe subscribes to the invalidations of the other Stores of the
// same Prefix. It waits, up to Timeout (so [cache.New] waits that long
// when Redis is unreachable), for Redis to confirm the subscription, so that a Publish made after it returns is seen. It then
// calls onKeys with each message's keys, skipping this Store's own, and
// onGap each time the subscription is restored after a break (go-redis
// reconnects and resubscribes; messages published in between are lost).
// While Redis is unreachable it retries with a backoff from 50ms up to
// 1s. The returned stop ends the subscription and waits for its
// goroutine.
func (s *Store) Subscribe(onKeys func(keys []string), onGap func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := false
	cctx, ccancel := context.WithTimeout(ctx, s.timeout)
	ps := s.rdb.Subscribe(cctx, s.channel)
	if m, err := ps.Receive(cctx); err == nil {
		_, subscribed = m.(*redis.Subscription)
	}
	ccancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		backoff := 50 * time.Millisecond
		for {
			m, err := ps.Receive(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					if subscribed {
						onGap()
					}
					subscribed = true
				}
			case *redis.Message:
				id, keys, err := decodeMessage(m.Payload)
				if err == nil && id != s.id && len(keys) > 0 {
					onKeys(keys)
				}
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			ps.Close()
			wg.Wait()
		})
	}
}

// An invalidation message is the publisher's id (32 hex characters), then
// each key as a uvarint length and its bytes.
func encodeMessage(id string, keys []string) string {
	n := len(id)
	for _, k := range keys {
		n += binary.MaxVarintLen64 + len(k)
	}
	b := make([]byte, 0, n)
	b = append(b, id...)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return string(b)
}

const idLen = 32

// maxMessageKeys bounds the keys one message may carry.
const maxMessageKeys = 1 << 16

// decodeMessage parses a message from the channel, which anyone with
// access to Redis can publish to: malformed input is an error, never a
// panic.
func decodeMessage(p string) (id string, keys []string, err error) {
	if len(p) < idLen {
		return "", nil, errMessage
	}
	id, rest := p[:idLen], []byte(p[idLen:])
	for len(rest) > 0 {
		n, w := binary.Uvarint(rest)
		if w <= 0 || w != uvarintLen(n) || n > uint64(len(rest)-w) || n > MaxKeyLen || len(keys) == maxMessageKeys {
			return "", nil, errMessage
		}
		keys = append(keys, string(rest[w:w+int(n)]))
		rest = rest[w+int(n):]
	}
	return id, keys, nil
}

func uvarintLen(n uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], n)
}

var errMessage = fmt.Errorf("cache/redisstore: malformed invalidation message")
