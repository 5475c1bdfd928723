package session

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults and bounds of [Config].
const (
	// DefaultIdleTimeout ends a session after 30 minutes without a
	// request (OWASP: 15 to 30 minutes for low-risk applications; scs has
	// no idle timeout by default).
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultLifetime ends every session 12 hours after it was created,
	// however active (scs: 24 hours; OWASP suggests 4 to 8 hours for
	// office applications).
	DefaultLifetime = 12 * time.Hour
	// MaxLifetime bounds Lifetime, IdleTimeout and TouchAfter.
	MaxLifetime = 366 * 24 * time.Hour
	// DefaultTouchDivisor: with TouchAfter zero, the idle deadline is
	// extended once a tenth of IdleTimeout has passed since it was last
	// extended.
	DefaultTouchDivisor = 10
	// DefaultSizeLimit bounds a session's keys and encoded values to
	// 64 KiB (sum of len(key)+len(value)).
	DefaultSizeLimit = 64 << 10
	// MaxSizeLimit bounds SizeLimit.
	MaxSizeLimit = 16 << 20
	// DefaultCookieName is the cookie's name while it is Secure (the
	// default): the __Host- prefix makes browsers refuse it unless it is
	// Secure, host-only and on path /, so a sibling subdomain cannot plant
	// a session cookie (OWASP).
	DefaultCookieName = "__Host-session"
	// DefaultInsecureCookieName is the cookie's name when Cookie.Insecure
	// is set and Cookie.Name is empty.
	DefaultInsecureCookieName = "session"
	// MaxUserIDLen bounds the user IDs of SetUser and DestroyAll.
	MaxUserIDLen = 512
)

// Config configures a [Manager]. The zero value is useful: sessions in a
// memory store, gob-encoded, 30 minutes idle and 12 hours absolute
// timeouts, 64 KiB per session, and a Secure, HttpOnly, SameSite=Lax,
// host-only cookie on path / named "__Host-session".
type Config struct {
	// Store keeps the sessions. nil: a [MemoryStore] with the default
	// MemoryConfig, created by New and closed by Manager.Close. Share a
	// Redis store (package session/redisstore) between instances so that
	// any instance can serve any user.
	Store Store
	// Codec encodes values. nil: [GobCodec]. [JSONCodec] is the other one
	// shipped.
	Codec Codec
	// IdleTimeout ends a session that has not been used for that long; it
	// is enforced by the store (a Redis TTL) and checked again on load.
	// 0 means DefaultIdleTimeout (30 minutes); at most Lifetime.
	IdleTimeout time.Duration
	// Lifetime ends a session that long after it was created, however
	// active it is; Renew keeps it. 0 means DefaultLifetime (12 hours); at
	// most MaxLifetime.
	Lifetime time.Duration
	// TouchAfter throttles the extension of the idle deadline: a request
	// that only reads a session extends it (one store write) only once
	// TouchAfter or more has passed since it was last extended. So a
	// session may end up to TouchAfter earlier than a strict IdleTimeout
	// would end it. A request that writes always extends it. 0 means
	// IdleTimeout/DefaultTouchDivisor; a negative value means every
	// request extends it; at most IdleTimeout.
	TouchAfter time.Duration
	// SizeLimit bounds the sum of len(key)+len(encoded value) over a
	// session's keys: Put returns ErrTooLarge past it, and a store refuses
	// a commit that would pass it. 0 means DefaultSizeLimit (64 KiB); at
	// most MaxSizeLimit.
	SizeLimit int
	// Cookie sets the cookie's attributes.
	Cookie Cookie
	// ErrorHandler answers a request whose session could not be loaded or
	// saved (the store is unreachable, timed out or full), in place of
	// the handler's response, when the failure happens before that
	// response's headers are written. Whatever the handler writes after
	// that is discarded (its Write calls return the error). nil: 503
	// Service Unavailable with the plain-text body "session: store
	// unavailable" for a store failure (err matches ErrStore), and 500
	// with "session: session too large" when a commit was refused for
	// SizeLimit (err matches ErrTooLarge).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// OnStoreError, if set, is called with every store failure, including
	// those that happen after the response's headers are written (which
	// only it and the bulwark.session.store.errors metric see). It runs
	// in the request's goroutine, may run concurrently with itself, and
	// may not call back into the request's session.
	OnStoreError func(ctx context.Context, ev StoreErrorEvent)
	// Name labels the Manager's metrics (attribute bulwark.name).
	Name string
	// MeterProvider receives the metrics. nil: the global provider.
	MeterProvider metric.MeterProvider
}

// Cookie sets the session cookie's attributes. The zero value follows
// OWASP's Session Management Cheat Sheet: Secure, HttpOnly, SameSite=Lax,
// host-only (no Domain), Path=/, no Expires (the browser drops it when it
// closes), and Cache-Control: no-store on every response that sets it.
type Cookie struct {
	// Name of the cookie. "": DefaultCookieName ("__Host-session"), or
	// DefaultInsecureCookieName ("session") when Insecure is set. A name
	// starting with "__Host-" requires Secure, Path "/" and no Domain; one
	// starting with "__Secure-" requires Secure.
	Name string
	// Path of the cookie. "": "/".
	Path string
	// Domain of the cookie. "": host-only (recommended: a Domain sends
	// the cookie to every subdomain too).
	Domain string
	// Insecure drops the Secure attribute, for local development over
	// plain HTTP. Never set it in production.
	Insecure bool
	// ScriptAccess drops the HttpOnly attribute, letting JavaScript read
	// the token. Almost never what you want.
	ScriptAccess bool
	// SameSite of the cookie. 0: http.SameSiteLaxMode. SameSiteNoneMode
	// requires Secure.
	SameSite http.SameSite
	// Persistent gives the cookie an Expires (and Max-Age) at the
	// session's absolute deadline, so it survives a browser restart.
	Persistent bool
	// AllowCaching stops the Manager from adding "Cache-Control: no-store"
	// to responses that set the cookie (a shared cache must never store a
	// response that carries a session token).
	AllowCaching bool
}

// StoreErrorEvent describes a failed store operation, for
// Config.OnStoreError.
type StoreErrorEvent struct {
	// Err is the *StoreError.
	Err error
	// HeadersWritten reports whether the response's headers had already
	// been written, so that the ErrorHandler could not run.
	HeadersWritten bool
}

// Validate reports the first bad field of c as a *bulwark.ConfigError
// (errors.Is(err, bulwark.ErrInvalidConfig)).
func (c Config) Validate() error {
	v := validate.New("session")
	v.Duration("Lifetime", c.Lifetime, MaxLifetime)
	life := c.Lifetime
	if life == 0 {
		life = DefaultLifetime
	}
	v.Duration("IdleTimeout", c.IdleTimeout, life)
	idle := c.IdleTimeout
	if idle == 0 {
		idle = min(DefaultIdleTimeout, life)
	}
	v.DurationOrOff("TouchAfter", c.TouchAfter, idle)
	v.Size("SizeLimit", c.SizeLimit, MaxSizeLimit)
	ck := c.Cookie
	name := ck.cookieName()
	v.Check(validCookieName(name), "Cookie.Name", ck.Name, "\"\" (default) or an RFC 6265 token")
	v.Check(!strings.HasPrefix(name, "__Host-") || !ck.Insecure && ck.Domain == "" && (ck.Path == "" || ck.Path == "/"),
		"Cookie.Name", ck.Name, "a __Host- name only with Secure, no Domain and Path /")
	v.Check(!strings.HasPrefix(name, "__Secure-") || !ck.Insecure, "Cookie.Name", ck.Name, "a __Secure- name only with Secure")
	v.Check(ck.Path == "" || strings.HasPrefix(ck.Path, "/") && !strings.ContainsAny(ck.Path, ";\x00\r\n"),
		"Cookie.Path", ck.Path, "\"\" (default) or a path starting with /")
	v.Check(!strings.ContainsAny(ck.Domain, "; \x00\r\n"), "Cookie.Domain", ck.Domain, "\"\" (default, host-only) or a domain")
	v.Check(ck.SameSite >= 0 && ck.SameSite <= http.SameSiteNoneMode, "Cookie.SameSite", ck.SameSite,
		"0 (default: Lax) or an http.SameSite constant")
	v.Check(ck.SameSite != http.SameSiteNoneMode || !ck.Insecure, "Cookie.SameSite", ck.SameSite,
		"SameSiteNoneMode only with Secure (browsers reject it otherwise)")
	return v.Err()
}

func (ck Cookie) cookieName() string {
	switch {
	case ck.Name != "":
		return ck.Name
	case ck.Insecure:
		return DefaultInsecureCookieName
	}
	return DefaultCookieName
}

// validCookieName reports whether name is an RFC 6265 token.
func validCookieName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
