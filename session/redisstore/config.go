package redisstore

import (
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults and bounds of [Config].
const (
	// DefaultPrefix starts every key the store writes.
	DefaultPrefix = "bulwark:session:"
	// MaxPrefixLen bounds Prefix.
	MaxPrefixLen = 256
	// DefaultTimeout bounds every Redis operation of the store.
	DefaultTimeout = time.Second
	// MaxTimeout bounds Timeout.
	MaxTimeout = time.Minute
)

// Config configures a [Store]. The zero value is useful.
type Config struct {
	// Prefix starts every key, prepended verbatim. It must not hold "{"
	// or "}" (the store's keys carry their own hash tags). "":
	// DefaultPrefix ("bulwark:session:"); at most MaxPrefixLen bytes.
	Prefix string
	// Timeout bounds every Redis operation: each runs under
	// context.WithTimeout(ctx, Timeout), so it ends at the earlier of the
	// caller's deadline and this bound. go-redis applies a context's
	// deadline to socket reads and writes only when the client has
	// ContextTimeoutEnabled set; otherwise a command is bounded by the
	// client's ReadTimeout and WriteTimeout (3s by default). 0:
	// DefaultTimeout (1s); at most MaxTimeout.
	Timeout time.Duration
}

// Validate reports the first bad field of c as a *bulwark.ConfigError.
func (c Config) Validate() error {
	v := validate.New("session/redisstore")
	v.Check(len(c.Prefix) <= MaxPrefixLen && !strings.ContainsAny(c.Prefix, "{}"), "Prefix", c.Prefix,
		"\"\" (default) or at most 256 bytes without \"{\" or \"}\"")
	v.Duration("Timeout", c.Timeout, MaxTimeout)
	return v.Err()
}
