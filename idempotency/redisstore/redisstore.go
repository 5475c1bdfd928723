// Package redisstore keeps idempotency records in Redis, so that every
// instance of a service sees every key: a retry that lands on another
// instance is still recognised. It is the store to use with more than one
// instance.
//
//	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
//	keeper := idempotency.New(idempotency.Config{Store: redisstore.New(rdb, redisstore.Config{})})
//
// Each record is one Redis hash, at Config.Prefix + "{" + key + "}": the
// braces are a hash tag around the whole record key, so every script
// touches keys of one slot and runs unchanged on Redis Cluster. Claim,
// Renew, Complete and Release are each one Lua script (EVALSHA, with EVAL
// on a cache miss) and one round trip: a new key costs one round trip
// before the handler and one after, and a replay costs one. The record's
// expiry is the hash's TTL, so Redis itself drops expired leases and
// records; time is Redis's, the same for every instance.
//
// When Redis cannot be reached, the store returns the error and the
// Keeper answers 503 without running the handler (see
// idempotency.ErrStoreUnavailable): a request never runs twice because
// Redis was down.
//
// This package is the only part of idempotency that imports go-redis, so
// users of the memory store never compile it.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Config configures a [Store]. The zero value is useful.
type Config struct {
	// Prefix starts every key the store writes. Default "bulwark:idem:".
	// It must not contain a hash tag ("{" or "}"): the store adds its own.
	Prefix string
}

// DefaultPrefix is the default Config.Prefix.
const DefaultPrefix = "bulwark:idem:"

// Validate reports a bad value in c as a *bulwark.ConfigError.
func (c Config) Validate() error {
	v := validate.New("idempotency/redisstore")
	v.Check(!containsAny(c.Prefix, "{}"), "Prefix", c.Prefix, "a prefix without '{' or '}' (the store adds the hash tag)")
	v.Check(len(c.Prefix) <= 256, "Prefix", c.Prefix, "at most 256 bytes")
	return v.Err()
}

func containsAny(s, chars string) bool {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return true
			}
		}
	}
	return false
}

// Store is an idempotency.Store in Redis. It is safe for concurrent use.
// It holds no resources of its own: closing the client is the caller's
// business.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Store on rdb. It panics with a *bulwark.ConfigError if cfg
// is invalid, and if rdb is nil.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if rdb == nil {
		panic("idempotency/redisstore: New called with a nil client")
	}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	return &Store{rdb: rdb, prefix: cfg.Prefix}
}

// Key returns the Redis key of an idempotency key: Prefix + "{" + key +
// "}".
func (s *Store) Key(key string) string { return s.prefix + "{" + key + "}" }

// The hash's fields: st is "p" (claimed, in progress) or "c" (completed);
// fp the fingerprint; tok the claim's token (while "p"); rec the encoded
// record (once "c").
var (
	claimScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'fp', 'rec')
if not v[1] then
  redis.call('HSET', KEYS[1], 'st', 'p', 'fp', ARGV[1], 'tok', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
if v[1] == 'p' then return {'p', v[2] or ''} end
return {'c', v[2] or '', v[3] or ''}
`)
	renewScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'tok')
if v[1] ~= 'p' or v[2] ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)
	completeScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'tok')
if v[1] ~= 'p' or v[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'st', 'c', 'rec', ARGV[2])
redis.call('HDEL', KEYS[1], 'tok')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)
	releaseScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'tok')
if v[1] ~= 'p' or v[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)
)

func ms(d time.Duration) int64 { return max(1, d.Milliseconds()) }

// Claim implements idempotency.Store.
func (s *Store) Claim(ctx context.Context, key, fingerprint string, lease time.Duration) (idempotency.Claim, error) {
	tok := newToken()
	res, err := claimScript.Run(ctx, s.rdb, []string{s.Key(key)}, fingerprint, tok, ms(lease)).StringSlice()
	if err != nil {
		return idempotency.Claim{}, err
	}
	switch {
	case len(res) == 1 && res[0] == "claimed":
		return idempotency.Claim{State: idempotency.Claimed, Token: tok}, nil
	case len(res) == 2 && res[0] == "p":
		return idempotency.Claim{State: idempotency.InProgress, Fingerprint: res[1]}, nil
	case len(res) == 3 && res[0] == "c":
		rec, err := idempotency.UnmarshalRecord([]byte(res[2]))
		if err != nil {
			return idempotency.Claim{}, fmt.Errorf("idempotency/redisstore: %s: %w", s.Key(key), err)
		}
		return idempotency.Claim{State: idempotency.Completed, Fingerprint: res[1], Record: rec}, nil
	}
	return idempotency.Claim{}, fmt.Errorf("idempotency/redisstore: unexpected reply %q", res)
}

func held(n int64, err error) error {
	if err != nil {
		return err
	}
	if n != 1 {
		return idempotency.ErrLostClaim
	}
	return nil
}

// Renew implements idempotency.Store.
func (s *Store) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return held(renewScript.Run(ctx, s.rdb, []string{s.Key(key)}, token, ms(lease)).Int64())
}

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, key, token string, rec *idempotency.Record, retention time.Duration) error {
	return held(completeScript.Run(ctx, s.rdb, []string{s.Key(key)}, token, idempotency.MarshalRecord(rec), ms(retention)).Int64())
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, key, token string) error {
	return held(releaseScript.Run(ctx, s.rdb, []string{s.Key(key)}, token).Int64())
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ idempotency.Store = (*Store)(nil)
