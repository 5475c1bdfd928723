package idempotency

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Config configures a [Keeper]. The zero Config is useful: an in-memory
// store (single instance), keys optional on POST and PATCH, payloads
// fingerprinted, keys scoped to the caller's Authorization header, records
// kept 24 hours, 409 at once for a key in progress, 5xx answers and panics
// not stored.
type Config struct {
	// Store keeps the records. Default: a [MemoryStore] with its defaults,
	// which serves one instance only; with several instances use the Redis
	// store in package idempotency/redisstore, so that a retry that lands
	// on another instance is recognised.
	Store Store

	// Methods are the request methods the Handler applies to, as they
	// appear on the wire (upper-case tokens such as "PUT"). Default (nil)
	// POST and PATCH, the draft's non-idempotent methods; an empty non-nil
	// list applies to no method. Other requests pass through untouched.
	Methods []string
	// Required, if true, answers 400 to a request of one of Methods that has
	// no Idempotency-Key. Default false: such a request runs as if the
	// middleware were not there.
	Required bool
	// Header is the request header carrying the key, a field name (an
	// RFC 9110 token). Default "Idempotency-Key".
	Header string
	// MaxKeyLength bounds a key's length in bytes, in [1, MaxKeyLength].
	// Default 255, as Stripe's API does.
	MaxKeyLength int

	// Scope returns the caller's identity, which is part of the record's
	// key: two callers that send the same key never see each other's
	// records, so one caller can never receive another's stored response.
	// Default: the value of the Authorization header (hashed, never
	// stored); requests without one share a single anonymous scope. If
	// callers authenticate otherwise (a session cookie, mTLS), set Scope
	// to return the authenticated user or client ID. Returning "" puts the
	// request in the anonymous scope.
	Scope func(r *http.Request) string
	// Fingerprint returns a digest of what makes two requests "the same
	// request"; reusing a key with a different fingerprint is answered
	// 422. body is the whole request body (at most MaxRequestBytes).
	// Default: SHA-256 of the method, the path and query, and the body.
	// Return "" to turn the check off.
	Fingerprint func(r *http.Request, body []byte) string
	// MaxRequestBytes bounds the request body read to fingerprint it;
	// larger bodies are answered 413. Default 1 MiB, at most
	// MaxMaxRequestBytes.
	MaxRequestBytes int
	// MaxResponseBytes bounds a stored response body. A larger response is
	// sent to the client as usual but not stored, and the key is released,
	// so a retry runs the request again. Default 1 MiB, at most
	// MaxMaxResponseBytes.
	MaxResponseBytes int

	// Retention is how long a completed record is kept and replayed.
	// Default 24 h, the window the draft suggests.
	Retention time.Duration
	// Lease is how long a claim on a key lives without renewal. While the
	// request runs, the lease is renewed every Lease/3, so a long request
	// keeps its claim; if the instance dies, the key is free again after
	// at most Lease. Default 10 s, in [MinLease, MaxLease]: a shorter lease
	// would expire before its renewal reaches the store.
	Lease time.Duration
	// Wait, if positive, makes a request whose key is in progress wait up
	// to Wait for the first request to finish and then replays its
	// response (or runs, if the first request released the key). Default 0:
	// answer 409 Conflict with Retry-After at once. At most MaxWait.
	Wait time.Duration
	// StoreServerErrors, if true, stores and replays 5xx responses like any
	// other. Default false: a 5xx answer releases the key, so the client's
	// retry runs the request again (a panic always releases it).
	StoreServerErrors bool
	// ReplayHeaders names the response headers stored and replayed (field
	// names, RFC 9110 tokens, in any case). Default nil (or empty): every
	// header the handler set except Set-Cookie, Date and the hop-by-hop
	// headers (Connection, Keep-Alive, Transfer-Encoding, Trailer, Upgrade,
	// Proxy-*). Content-Length is always recomputed. Trailers are not
	// stored: a replay has none.
	ReplayHeaders []string
	// StoreTimeout bounds each store operation; the caller's context
	// bounds it too. Default 1 s, at most MaxStoreTimeout.
	StoreTimeout time.Duration

	// MeterProvider receives the metrics; nil means the global provider.
	MeterProvider metric.MeterProvider
	// Name names the Keeper in telemetry (bulwark.name). Default "".
	Name string
}

// Defaults and bounds, see Config.
const (
	DefaultHeader           = "Idempotency-Key"
	DefaultMaxKeyLength     = 255
	DefaultMaxRequestBytes  = 1 << 20
	DefaultMaxResponseBytes = 1 << 20
	DefaultRetention        = 24 * time.Hour
	DefaultLease            = 10 * time.Second
	DefaultStoreTimeout     = time.Second

	MaxMaxRequestBytes  = 64 << 20
	MaxMaxResponseBytes = 64 << 20
	MaxRetention        = 30 * 24 * time.Hour
	MinLease            = 10 * time.Millisecond
	MaxLease            = time.Hour
	MaxWait             = time.Minute
	MaxStoreTimeout     = time.Minute
)

// DefaultMethods are the methods the Handler applies to by default.
var DefaultMethods = []string{http.MethodPost, http.MethodPatch}

// Validate reports the first bad value in c as a *bulwark.ConfigError.
func (c Config) Validate() error {
	v := validate.New("idempotency")
	v.Size("MaxKeyLength", c.MaxKeyLength, MaxKeyLength)
	v.Size("MaxRequestBytes", c.MaxRequestBytes, MaxMaxRequestBytes)
	v.Size("MaxResponseBytes", c.MaxResponseBytes, MaxMaxResponseBytes)
	v.Duration("Retention", c.Retention, MaxRetention)
	v.Duration("Lease", c.Lease, MaxLease)
	v.Check(c.Lease == 0 || c.Lease >= MinLease, "Lease", c.Lease, "0 (the default) or in [MinLease, MaxLease] = [10ms, 1h]")
	v.Duration("Wait", c.Wait, MaxWait)
	v.Duration("StoreTimeout", c.StoreTimeout, MaxStoreTimeout)
	for _, m := range c.Methods {
		v.Check(httpx.IsToken(m) && strings.ToUpper(m) == m, "Methods", m, "upper-case method names (RFC 9110 tokens)")
	}
	v.Check(c.Header == "" || httpx.IsToken(c.Header), "Header", c.Header, "a header field name (an RFC 9110 token)")
	for _, h := range c.ReplayHeaders {
		v.Check(httpx.IsToken(h), "ReplayHeaders", h, "header field names (RFC 9110 tokens)")
	}
	return v.Err()
}

// settings is a resolved Config.
type settings struct {
	methods       []string
	required      bool
	header        string
	maxKey        int
	scope         func(*http.Request) string
	fingerprint   func(*http.Request, []byte) string
	maxReq        int
	maxResp       int
	retention     time.Duration
	lease         time.Duration
	wait          time.Duration
	store5xx      bool
	replayHeaders []string // canonical; nil means the default rule
	storeTimeout  time.Duration
}

func resolve(c Config) settings {
	s := settings{
		methods:      c.Methods,
		required:     c.Required,
		header:       http.CanonicalHeaderKey(c.Header),
		maxKey:       c.MaxKeyLength,
		scope:        c.Scope,
		fingerprint:  c.Fingerprint,
		maxReq:       c.MaxRequestBytes,
		maxResp:      c.MaxResponseBytes,
		retention:    c.Retention,
		lease:        c.Lease,
		wait:         c.Wait,
		store5xx:     c.StoreServerErrors,
		storeTimeout: c.StoreTimeout,
	}
	if s.methods == nil {
		s.methods = DefaultMethods
	}
	s.methods = slices.Clone(s.methods)
	if s.header == "" {
		s.header = DefaultHeader
	}
	if s.maxKey == 0 {
		s.maxKey = DefaultMaxKeyLength
	}
	if s.scope == nil {
		s.scope = authorizationScope
	}
	if s.fingerprint == nil {
		s.fingerprint = DefaultFingerprint
	}
	if s.maxReq == 0 {
		s.maxReq = DefaultMaxRequestBytes
	}
	if s.maxResp == 0 {
		s.maxResp = DefaultMaxResponseBytes
	}
	if s.retention == 0 {
		s.retention = DefaultRetention
	}
	if s.lease == 0 {
		s.lease = DefaultLease
	}
	if s.storeTimeout == 0 {
		s.storeTimeout = DefaultStoreTimeout
	}
	for _, h := range c.ReplayHeaders {
		s.replayHeaders = append(s.replayHeaders, http.CanonicalHeaderKey(h))
	}
	return s
}

func authorizationScope(r *http.Request) string { return r.Header.Get("Authorization") }

// DefaultFingerprint is the default Config.Fingerprint: the hex SHA-256 of
// the method, the request URI's path and query, and the body.
func DefaultFingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	h.Write([]byte(r.Method))
	h.Write([]byte{0})
	h.Write([]byte(r.URL.RequestURI()))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// StoreKey derives the key a record is stored under from the caller's
// scope and the Idempotency-Key: the hex SHA-256 of both (the scope
// length-prefixed, so that no two pairs share a key), so that stored keys
// have a fixed size and reveal neither the credentials nor the key.
func StoreKey(scope, key string) string {
	h := sha256.New()
	h.Write(binary.AppendUvarint(nil, uint64(len(scope))))
	h.Write([]byte(scope))
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil))
}
