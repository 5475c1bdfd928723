package limit

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// The header fields of draft-ietf-httpapi-ratelimit-headers-10 (the
// current draft as of this writing; its earlier RateLimit-Limit,
// RateLimit-Remaining and RateLimit-Reset fields are not sent).
const (
	// HeaderRateLimitPolicy carries the policy: "name";q=<quota>;w=<window seconds>.
	HeaderRateLimitPolicy = "RateLimit-Policy"
	// HeaderRateLimit carries the state: "name";r=<remaining>;t=<reset>,
	// where reset is the draft's: the seconds until more quota is made
	// available (Decision.Reset, rounded up), left out when unknown.
	HeaderRateLimit = "RateLimit"
)

// Option adjusts the HTTP middleware of this package. Options are sealed:
// only this package defines them.
type Option interface{ apply(*options) }

type options struct {
	noWait bool
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// NoWait makes a client-side rate-limit RoundTripper reject a request the
// limiter does not admit at once, instead of waiting for its turn.
func NoWait() Option { return optionFunc(func(o *options) { o.noWait = true }) }

func collect(opts []Option) options {
	var o options
	for _, op := range opts {
		if op != nil {
			op.apply(&o)
		}
	}
	return o
}

// decide asks l for one decision, in as much detail as l can give.
func decide(l Limiter) (Decision, bool) {
	switch l := l.(type) {
	case interface{ Decide() Decision }:
		return l.Decide(), true
	case *rate.Limiter:
		if lim := l.Limit(); lim == rate.Inf || lim <= 0 {
			// No rate to describe: admitted always, or only a burst
			// that never comes back.
			return Decision{Allowed: l.Allow()}, false
		}
		return decideRate(l), true
	}
	return Decision{Allowed: l.Allow()}, false
}

// decideRate reads a golang.org/x/time/rate limiter through a
// reservation, given back when the call is not admitted at once.
func decideRate(l *rate.Limiter) Decision {
	lim, burst := l.Limit(), l.Burst()
	pol := Policy{Name: "default", Quota: int64(burst), Window: time.Second}
	if lim != rate.Inf && lim > 0 {
		w := max(time.Second, time.Duration(float64(time.Second)/float64(lim)))
		w = (w + time.Second - 1) / time.Second * time.Second
		pol.Quota, pol.Window = int64(float64(lim)*w.Seconds()), w
	}
	now := clock.Real.Now()
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return Decision{Policy: pol}
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return Decision{RetryAfter: d, Policy: pol}
	}
	d := Decision{Allowed: true, Policy: pol}
	if lim != rate.Inf && lim > 0 {
		tokens := max(0, l.TokensAt(now))
		d.Remaining = int64(tokens)
		// Until the next whole token: when one more call fits.
		d.Reset = time.Duration((math.Floor(tokens) + 1 - tokens) / float64(lim) * float64(time.Second))
	}
	return d
}

// SetHeaders sets the RateLimit and RateLimit-Policy fields of h
// (draft-ietf-httpapi-ratelimit-headers-10) from d, and for a rejected
// call Retry-After, in whole seconds rounded up. The RateLimit field's
// reset ("t") is d.Reset, the seconds until more quota is made available,
// rounded up (for a rejected call, the same moment as Retry-After, as the
// draft asks), and is left out when it is unknown (zero). The
// RateLimit-Policy field is left out when d.Policy.Quota is not positive.
func SetHeaders(h http.Header, d Decision) {
	name := sfString(d.Policy.Name)
	if d.Policy.Quota > 0 {
		h.Set(HeaderRateLimitPolicy, name+";q="+strconv.FormatInt(d.Policy.Quota, 10)+
			";w="+strconv.FormatInt(int64(d.Policy.Window/time.Second), 10))
	}
	reset := d.Reset
	if !d.Allowed {
		reset = d.RetryAfter
		httpx.SetRetryAfter(h, d.RetryAfter)
	}
	v := name + ";r=" + strconv.FormatInt(max(d.Remaining, 0), 10)
	if reset > 0 {
		v += ";t=" + strconv.FormatInt(ceilSeconds(reset), 10)
	}
	h.Set(HeaderRateLimit, v)
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// sfString quotes s as a Structured Fields String (RFC 8941 §3.3.3):
// printable ASCII, with '"' and '\' escaped; anything else becomes '?'.
func sfString(s string) string {
	if s == "" {
		s = "default"
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Handler returns server-side middleware that admits each request through
// l and answers the others 429 Too Many Requests without running next.
// When l can describe its decisions (a [*Rate], a [*rate.Limiter] whose
// limit is finite and positive, or any Limiter with a Decide() Decision
// method), every response carries the RateLimit and RateLimit-Policy
// fields (see [SetHeaders]) and a 429 carries Retry-After; the 429's body
// is the plain-text message of ErrRateLimited. A nil l or next panics.
func Handler(l Limiter, next http.Handler) http.Handler {
	if l == nil || next == nil {
		panic("limit: Handler called with a nil Limiter or next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, known := decide(l)
		serveDecision(w, r, d, known, next)
	})
}

// Handler is [Handler](r, next).
func (r *Rate) Handler(next http.Handler) http.Handler { return Handler(r, next) }

// KeyedHandler returns server-side middleware that admits each request
// through l under the key key(req), and answers the others 429 Too Many
// Requests without running next. Every response carries the RateLimit and
// RateLimit-Policy fields, and a 429 carries Retry-After (see
// [SetHeaders]). A nil l, key or next panics.
func KeyedHandler(l KeyedLimiter, key func(*http.Request) string, next http.Handler) http.Handler {
	if l == nil || key == nil || next == nil {
		panic("limit: KeyedHandler called with a nil KeyedLimiter, key or next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveDecision(w, r, l.Decide(r.Context(), key(r)), true, next)
	})
}

// Handler is [KeyedHandler](k, KeyedConfig.KeyFunc, next); the key is the
// client's IP address unless KeyFunc says otherwise.
func (k *Keyed) Handler(next http.Handler) http.Handler {
	return KeyedHandler(k, k.cfg.KeyFunc, next)
}

func serveDecision(w http.ResponseWriter, r *http.Request, d Decision, known bool, next http.Handler) {
	if known {
		SetHeaders(w.Header(), d)
	}
	if !d.Allowed {
		http.Error(w, ErrRateLimited.Error(), http.StatusTooManyRequests)
		return
	}
	next.ServeHTTP(w, r)
}

// ConcurrencyHandler returns server-side middleware that runs each request
// under a slot of c and answers the requests it rejects 503 Service
// Unavailable, with Retry-After: 1 (a short hint: a slot frees up as soon
// as any request in flight ends) and ErrConcurrencyLimited's message as a
// plain-text body, without running next. A request queued by a
// [Bulkhead] whose client goes away is answered nothing (the client is
// gone). Responses are judged for an [Adaptive] limiter by its
// ClassifyHTTP, or by bulwark's rules (5xx except 501, 408 and 429 are
// failures; a request whose client went away is neutral); a panicking
// handler is a failure, and the panic goes on. A nil c or next panics.
func ConcurrencyHandler(c ConcurrencyLimiter, next http.Handler) http.Handler {
	if c == nil || next == nil {
		panic("limit: ConcurrencyHandler called with a nil ConcurrencyLimiter or next")
	}
	var classify bulwark.HTTPClassifier
	if a, ok := c.(*Adaptive); ok {
		classify = a.classifyHTTP
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := c.Acquire(r.Context())
		if err != nil {
			if !WriteRejection(w, err) {
				// The request's context ended while it was queued: the
				// client is gone, or a server deadline passed.
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
			}
			return
		}
		rec := httpx.NewRecorder(w)
		returned := false
		defer outcome.OnAbort(&returned, func() { p.Release(bulwark.Failure) })
		next.ServeHTTP(rec.Writer(), r)
		returned = true
		p.Release(httpx.ServerOutcome(r, rec.Status(), w.Header(), classify))
	})
}

// Handler is [ConcurrencyHandler](b, next).
func (b *Bulkhead) Handler(next http.Handler) http.Handler { return ConcurrencyHandler(b, next) }

// Handler is [ConcurrencyHandler](a, next).
func (a *Adaptive) Handler(next http.Handler) http.Handler { return ConcurrencyHandler(a, next) }

// WriteRejection answers a request that a limiter of this package
// rejected: 429 Too Many Requests for a rate limit, with Retry-After when
// the wait is known; 503 Service Unavailable for a concurrency limit, with
// Retry-After: 1; and the error's message as a plain-text body. It reports
// false, writing nothing, if err is not a [*RejectedError].
func WriteRejection(w http.ResponseWriter, err error) bool {
	var re *RejectedError
	if !errors.As(err, &re) {
		return false
	}
	code := http.StatusTooManyRequests
	wait := re.Wait
	if errors.Is(re, ErrConcurrencyLimited) {
		code, wait = http.StatusServiceUnavailable, max(wait, time.Second)
	}
	httpx.SetRetryAfter(w.Header(), wait)
	http.Error(w, re.Error(), code)
	return true
}

// RoundTripper returns a client-side [http.RoundTripper] that sends each
// request to next (nil means [http.DefaultTransport]) once l admits it: it
// waits for its turn with l.Wait under the request's context (which gives
// up at once when the context's deadline comes before the turn), or with
// [NoWait] asks l.Allow and does not wait. A request l does not admit
// never reaches the network: RoundTrip closes its body and returns a
// [*RejectedError] (errors.Is ErrRateLimited; the http.Client wraps it in
// a *url.Error), or context.Cause of the request's context if that ended
// first.
func RoundTripper(l Limiter, next http.RoundTripper, opts ...Option) http.RoundTripper {
	if l == nil {
		panic("limit: RoundTripper called with a nil Limiter")
	}
	if next == nil {
		next = http.DefaultTransport
	}
	o := collect(opts)
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if err := admit(req.Context(), l, o); err != nil {
			closeBody(req)
			return nil, err
		}
		return next.RoundTrip(req)
	})
}

// RoundTripper is [RoundTripper](r, next, opts...).
func (r *Rate) RoundTripper(next http.RoundTripper, opts ...Option) http.RoundTripper {
	return RoundTripper(r, next, opts...)
}

func admit(ctx context.Context, l Limiter, o options) error {
	if o.noWait {
		if d, _ := decide(l); !d.Allowed {
			return rateError(d.RetryAfter)
		}
		return nil
	}
	err := l.Wait(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx) // a *rate.Limiter returns ctx.Err()
	}
	var re *RejectedError
	if errors.As(err, &re) {
		return err
	}
	return rateError(0) // a *rate.Limiter's "would exceed context deadline"
}

// KeyedRoundTripper returns a client-side [http.RoundTripper] that sends
// each request to next (nil means [http.DefaultTransport]) once l admits
// it under key(req) (nil key means the request's URL host, one limit per
// server). It waits for the wait a rejection names while the request's
// context allows, trying again after it; with [NoWait], or when the wait
// is unknown or would pass the context's deadline, it rejects at once. A
// rejected request never reaches the network: RoundTrip closes its body
// and returns a [*RejectedError] (errors.Is ErrRateLimited), or
// context.Cause of the request's context if that ended first.
func KeyedRoundTripper(l KeyedLimiter, key func(*http.Request) string, next http.RoundTripper, opts ...Option) http.RoundTripper {
	if l == nil {
		panic("limit: KeyedRoundTripper called with a nil KeyedLimiter")
	}
	if key == nil {
		key = func(r *http.Request) string { return r.URL.Host }
	}
	if next == nil {
		next = http.DefaultTransport
	}
	o := collect(opts)
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if err := admitKey(req.Context(), l, key(req), o); err != nil {
			closeBody(req)
			return nil, err
		}
		return next.RoundTrip(req)
	})
}

// RoundTripper is [KeyedRoundTripper] with KeyedConfig.KeyFunc as the key
// if it is set, else the request's URL host.
func (k *Keyed) RoundTripper(next http.RoundTripper, opts ...Option) http.RoundTripper {
	key := k.cfg.KeyFunc
	if k.userKey == nil {
		key = nil
	}
	return KeyedRoundTripper(k, key, next, opts...)
}

func admitKey(ctx context.Context, l KeyedLimiter, key string, o options) error {
	if k, ok := l.(*Keyed); ok && !o.noWait {
		return k.Wait(ctx, key)
	}
	for {
		if ctx.Err() != nil { // a distributed limiter rejects such a call
			return context.Cause(ctx)
		}
		d := l.Decide(ctx, key)
		if d.Allowed {
			return nil
		}
		if ctx.Err() != nil { // it ended during Decide
			return context.Cause(ctx)
		}
		if o.noWait || d.RetryAfter <= 0 {
			return rateError(d.RetryAfter)
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(clock.Real.Now()) < d.RetryAfter {
			return rateError(d.RetryAfter)
		}
		if err := clock.Sleep(ctx, clock.Real, d.RetryAfter); err != nil {
			return err
		}
	}
}

// ConcurrencyRoundTripper returns a client-side [http.RoundTripper] that
// sends each request to next (nil means [http.DefaultTransport]) under a
// slot of c, held until the response body is closed (or until next
// returns an error). A request c rejects never reaches the network:
// RoundTrip closes its body and returns the [*RejectedError] (errors.Is
// ErrConcurrencyLimited). Responses are judged as by
// [ConcurrencyHandler]; a panic in next is a failure, and the panic goes
// on.
func ConcurrencyRoundTripper(c ConcurrencyLimiter, next http.RoundTripper) http.RoundTripper {
	if c == nil {
		panic("limit: ConcurrencyRoundTripper called with a nil ConcurrencyLimiter")
	}
	if next == nil {
		next = http.DefaultTransport
	}
	var classify bulwark.HTTPClassifier
	if a, ok := c.(*Adaptive); ok {
		classify = a.classifyHTTP
	}
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		ctx := req.Context()
		p, err := c.Acquire(ctx)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		returned := false
		defer outcome.OnAbort(&returned, func() { p.Release(bulwark.Failure) })
		resp, err := next.RoundTrip(req)
		returned = true
		var o bulwark.Outcome
		if classify != nil {
			o = classify(ctx, resp, err)
		} else {
			o = outcome.HTTP(ctx, resp, err)
		}
		if err != nil || resp == nil || resp.Body == nil {
			p.Release(o)
			return resp, err
		}
		httpx.CancelOnClose(resp, func() { p.Release(o) })
		return resp, nil
	})
}

// RoundTripper is [ConcurrencyRoundTripper](b, next).
func (b *Bulkhead) RoundTripper(next http.RoundTripper) http.RoundTripper {
	return ConcurrencyRoundTripper(b, next)
}

// RoundTripper is [ConcurrencyRoundTripper](a, next).
func (a *Adaptive) RoundTripper(next http.RoundTripper) http.RoundTripper {
	return ConcurrencyRoundTripper(a, next)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
