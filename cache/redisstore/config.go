package redisstore

import (
	"time"

	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults and bounds of [Config]'s fields.
const (
	// DefaultPrefix is the default key prefix.
	DefaultPrefix = "bulwark:cache:"
	// DefaultTimeout bounds each Redis operation. A cache read that waits
	// longer for Redis than for the origin buys nothing, so it is short.
	DefaultTimeout = 250 * time.Millisecond
	// MaxTimeout bounds Timeout.
	MaxTimeout = time.Minute
	// MaxPrefixLen bounds the length of Prefix.
	MaxPrefixLen = 256
	// MaxKeyLen bounds the length of a cache key, in bytes; longer keys
	// fail with [ErrKeyTooLong] (the cache counts that as a Store error and
	// goes on without the Store for that key).
	MaxKeyLen = 4096
)

// Config configures a [Store]. Its zero value is useful.
type Config struct {
	// Prefix is prepended verbatim to every key and to the invalidation
	// channel. Default [DefaultPrefix]; at most [MaxPrefixLen] bytes.
	// Values live under <Prefix>v:<key>, locks under <Prefix>l:<key>, and
	// invalidations are published on <Prefix>invalidations.
	Prefix string
	// Timeout bounds each Redis operation, on top of the caller's context
	// deadline. go-redis applies a context's deadline to socket reads and
	// writes only when the client has ContextTimeoutEnabled: true;
	// otherwise a command is bounded by the client's ReadTimeout and
	// WriteTimeout (3s by default), not by this Timeout. Default
	// [DefaultTimeout], at most [MaxTimeout].
	Timeout time.Duration
}

// Validate reports the first bad field as a [*bulwark.ConfigError], or
// nil.
func (c *Config) Validate() error {
	v := validate.New("cache/redisstore")
	v.Check(len(c.Prefix) <= MaxPrefixLen, "Prefix", c.Prefix, "at most 256 bytes")
	v.Duration("Timeout", c.Timeout, MaxTimeout)
	return v.Err()
}
