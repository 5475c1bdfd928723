package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
	"github.com/bulwark-go/bulwark/limit"
)

// gcraScript decides one call for KEYS[1] by GCRA on Redis's clock.
// ARGV[1] is the interval between calls and ARGV[2] the tolerance
// (burst × interval), in microseconds. The key holds the theoretical
// arrival time in microseconds since the epoch, and expires when it is
// reached (the key owes nothing then, which is what a missing key means).
// It returns {admitted (1|0), debt or wait (µs), reset (µs)}: for an
// admitted call the new debt (TAT − now) and 0; for a rejected one the
// wait until a call would be admitted and the current debt. Numbers stay
// below 2^53, exact in Lua's doubles; string.format keeps them out of
// exponent notation.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local nxt = tat + interval
local debt = nxt - now
if debt > tau then
  return {0, debt - tau, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil(debt / 1000))
return {1, debt, 0}
`)

// Limiter is a rate limiter shared through Redis by every instance that
// uses the same Redis, Prefix and key: see the package doc. It satisfies
// limit.KeyedLimiter, so limit.KeyedHandler, limit.KeyedRoundTripper and
// grpcx's keyed interceptors take it.
//
// A Limiter is safe for concurrent use. Create it with [New]; the zero
// Limiter is not usable. Close it when discarding it.
type Limiter struct {
	client        redis.UniversalClient
	cfg           Config
	intervalUS    int64
	tauUS         int64
	interval, tau time.Duration
	pol           limit.Policy
	local         *limit.Keyed // FallbackLocal's limiter
	errs          [3]atomic.Int64
	decided       [2]atomic.Int64 // rejected, admitted
	reg           metric.Registration
	closed        atomic.Bool
	serverKey     func(*http.Request) string
	clientKey     func(*http.Request) string
}

// New returns a limiter on client (which the caller owns: the limiter
// never closes it). It panics with a [*bulwark.ConfigError] if cfg is not
// valid (see [Config.Validate]), or if client is nil.
func New(client redis.UniversalClient, cfg Config) *Limiter {
	if client == nil {
		panic("limit/redisstore: New called with a nil client")
	}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Instances == 0 {
		cfg.Instances = 1
	}
	interval, burst := cfg.Rate.Interval(), cfg.Rate.BurstSize()
	l := &Limiter{client: client, cfg: cfg, interval: interval, tau: interval * time.Duration(burst),
		pol: cfg.Rate.Policy(), serverKey: cfg.KeyFunc, clientKey: cfg.KeyFunc}
	l.intervalUS = max(1, int64((interval+500*time.Nanosecond)/time.Microsecond))
	l.tauUS = l.intervalUS * int64(burst)
	if l.serverKey == nil {
		l.serverKey = limit.ClientIP
	}
	if cfg.Fallback == FallbackLocal {
		local := cfg.Rate
		local.Rate = 0
		local.Every = min(interval*time.Duration(cfg.Instances), limit.MaxEvery)
		local.Burst = (burst + cfg.Instances - 1) / cfg.Instances
		local.MeterProvider = noMeter{}
		l.local = limit.NewKeyed(limit.KeyedConfig{Rate: local})
	}
	l.register()
	return l
}

// Key returns the Redis key that holds key's state (see the package doc).
func (l *Limiter) Key(key string) string {
	if len(key) > MaxKeyLen || strings.ContainsAny(key, "{}") {
		sum := sha256.Sum256([]byte(key))
		// The trailing "h" keeps hashed keys apart from verbatim ones,
		// which always end with the closing brace.
		return l.cfg.Prefix + "{" + base64.RawURLEncoding.EncodeToString(sum[:]) + "}h"
	}
	return l.cfg.Prefix + "{" + key + "}"
}

// Decide decides one call for key: one script run on Redis, within
// Config.Timeout and ctx's deadline; see limit.Decision. When Redis
// fails, Config.Fallback decides (see the package doc); when ctx ends
// first, the call is rejected. A nil ctx panics.
func (l *Limiter) Decide(ctx context.Context, key string) limit.Decision {
	if ctx == nil {
		panic("limit/redisstore: Limiter.Decide called with a nil ctx")
	}
	d, counted := l.decide(ctx, key)
	if counted {
		if d.Allowed {
			l.decided[1].Add(1)
		} else {
			l.decided[0].Add(1)
		}
	}
	return d
}

// decide is Decide, also reporting whether the decision counts (not when
// the caller's ctx ended first).
func (l *Limiter) decide(ctx context.Context, key string) (limit.Decision, bool) {
	rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	res, err := gcraScript.Run(rctx, l.client, []string{l.Key(key)}, l.intervalUS, l.tauUS).Int64Slice()
	cancel()
	if err == nil && len(res) != 3 {
		err = errors.New("limit/redisstore: unexpected script reply")
	}
	if err != nil {
		if ctx.Err() != nil {
			return limit.Decision{Policy: l.pol}, false
		}
		return l.fallback(ctx, key, err), true
	}
	us := func(n int64) time.Duration { return time.Duration(n) * time.Microsecond }
	if res[0] == 1 {
		debt := us(res[1])
		n := max(0, (l.tau-debt)/l.interval)
		// One more call fits once the debt has fallen to tau - (n+1)·interval.
		return limit.Decision{Allowed: true, Remaining: int64(n), Reset: debt - l.tau + (n+1)*l.interval, Policy: l.pol}, true
	}
	return limit.Decision{RetryAfter: us(res[1]), Reset: us(res[1]), Policy: l.pol}, true
}

func (l *Limiter) fallback(ctx context.Context, key string, err error) limit.Decision {
	f := l.cfg.Fallback
	l.errs[f].Add(1)
	if l.cfg.OnStoreError != nil {
		l.cfg.OnStoreError(ctx, StoreErrorEvent{Key: key, Err: err, Fallback: f})
	}
	switch f {
	case FallbackOpen:
		return limit.Decision{Allowed: true, Policy: l.pol}
	case FallbackClosed:
		return limit.Decision{Policy: l.pol}
	}
	return l.local.Decide(ctx, key)
}

// Allow reports whether one call for key may happen now; see Decide.
func (l *Limiter) Allow(ctx context.Context, key string) bool { return l.Decide(ctx, key).Allowed }

// Handler is limit.KeyedHandler(l, Config.KeyFunc, next): 429 Too Many
// Requests with Retry-After and the RateLimit fields, per client IP unless
// Config.KeyFunc says otherwise.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return limit.KeyedHandler(l, l.serverKey, next)
}

// RoundTripper is limit.KeyedRoundTripper(l, Config.KeyFunc, next,
// opts...): requests held back, per URL host unless Config.KeyFunc says
// otherwise, before they reach the network.
func (l *Limiter) RoundTripper(next http.RoundTripper, opts ...limit.Option) http.RoundTripper {
	return limit.KeyedRoundTripper(l, l.clientKey, next, opts...)
}

// Policy returns each key's limit in the terms of the RateLimit-Policy
// header field.
func (l *Limiter) Policy() limit.Policy { return l.pol }

// Close unregisters the limiter's metrics. It does not close the client.
// The limiter keeps working. It is safe to call more than once; it always
// returns nil.
func (l *Limiter) Close() error {
	if l.closed.CompareAndSwap(false, true) {
		if l.reg != nil {
			_ = l.reg.Unregister()
		}
		if l.local != nil {
			_ = l.local.Close()
		}
	}
	return nil
}

var _ limit.KeyedLimiter = (*Limiter)(nil)

// register exports, in the limit package's scope and names,
// bulwark.limit.decisions (kind "distributed") and
// bulwark.limit.store.errors (docs/redis.md names store errors after the
// primitive: bulwark.<package>.store.errors).
func (l *Limiter) register() {
	m := telemetry.Meter(l.cfg.MeterProvider, "limit")
	c, err := m.Int64ObservableCounter(telemetry.Name("limit", "store.errors"), metric.WithUnit("{error}"),
		metric.WithDescription("Decisions Redis failed to make, by the fallback that made them."))
	dc, err2 := m.Int64ObservableCounter(telemetry.Name("limit", "decisions"), metric.WithUnit("{call}"),
		metric.WithDescription("Calls the limiter admitted or rejected, by decision."))
	if err != nil || err2 != nil {
		return
	}
	name := l.cfg.Rate.Name
	if name == "" {
		name = "default"
	}
	var opts [3]metric.ObserveOption
	for f := range opts {
		opts[f] = metric.WithAttributeSet(attribute.NewSet(telemetry.AttrName.String(name),
			attribute.String(telemetry.Name("limit", "fallback"), Fallback(f).String())))
	}
	var dopts [2]metric.ObserveOption
	for i, d := range []string{"rejected", "admitted"} {
		dopts[i] = metric.WithAttributeSet(attribute.NewSet(telemetry.AttrName.String(name),
			attribute.String(telemetry.Name("limit", "kind"), "distributed"),
			attribute.String(telemetry.Name("limit", "decision"), d)))
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for f := range opts {
			o.ObserveInt64(c, l.errs[f].Load(), opts[f])
		}
		for i := range dopts {
			o.ObserveInt64(dc, l.decided[i].Load(), dopts[i])
		}
		return nil
	}, c, dc)
	if err == nil {
		l.reg = reg
	}
}
