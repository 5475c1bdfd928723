package degrade

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Config configures a [Fallback]. The zero Config is useful: a failed call
// gets the fallback the call site gives, and no last good values are kept.
type Config struct {
	// Name names the fallback in telemetry (bulwark.name). Default "".
	Name string
	// Switch, if set, turns the feature off at run time: while it is
	// off, the call is not made and the fallback is served with
	// ReasonSwitch. Default nil: always on.
	Switch *Switch
	// MaxAge, when positive, keeps the last good value of each key for
	// this long, and serves it in place of a failed call within that age
	// (before the call site's fallback). Over HTTP the key is the GET
	// request's URL and its credentials (Authorization and Cookie), so one
	// user's response is never served to another; a response that sets a
	// cookie or says Cache-Control: no-store is never kept. Default 0: no
	// last good values. At most MaxMaxAge.
	MaxAge time.Duration
	// MaxKeys bounds the number of keys with a last good value: when it
	// is reached, expired values are dropped, then the oldest. Default
	// 10000; at most MaxLastGoodKeys.
	MaxKeys int
	// MaxBody bounds the body of an HTTP response kept as a last good
	// value; larger responses are not kept. Default 1 MiB; at most
	// MaxLastGoodBody.
	MaxBody int
	// HTTP builds the fallback response of RoundTripper and Handler for a
	// failed request: err is the transport error, ErrSwitchedOff while
	// Switch is off, and nil for a failure status. It is called only
	// when no last good response is served; returning nil means "no
	// fallback". Default nil: the last good response if there is one,
	// else the failure goes through as it was.
	HTTP func(req *http.Request, reason Reason, err error) *http.Response
	// ClassifyHTTP judges an HTTP exchange: a Failure gets a fallback.
	// Default: bulwark's HTTP rules (transport errors, 5xx except 501,
	// 408 and 429).
	ClassifyHTTP bulwark.HTTPClassifier
	// Classify judges a call's error: a Failure gets a fallback, any
	// other outcome returns the call's own result. Default: bulwark's
	// rules, so a caller's cancellation gets no fallback and everything
	// else does (breaker and limiter rejections, timeouts, errors).
	Classify bulwark.Classifier
	// OnFallback, if set, is called each time a fallback is served, in
	// the caller's goroutine, possibly concurrently with itself.
	OnFallback func(ctx context.Context, ev Event)
	// MeterProvider receives the fallback's metrics; nil means the
	// global provider.
	MeterProvider metric.MeterProvider
}

// Source says what a fallback served.
type Source string

// The sources.
const (
	// SourceLastGood: the key's last good value.
	SourceLastGood Source = "last_good"
	// SourceFallback: the call site's fallback (a static value, a
	// function of the error, or Config.HTTP).
	SourceFallback Source = "fallback"
)

// Event describes one fallback served.
type Event struct {
	// Key is the call's key ("" when none).
	Key string
	// Reason is why the call failed.
	Reason Reason
	// Source is what was served.
	Source Source
	// Err is the call's error (nil for an HTTP failure status).
	Err error
}

// Defaults and bounds, see Config.
const (
	DefaultMaxKeys  = 10000
	DefaultMaxBody  = 1 << 20
	MaxMaxAge       = 7 * 24 * time.Hour
	MaxLastGoodKeys = 1 << 20
	MaxLastGoodBody = 64 << 20
)

// Validate reports the first bad value of c as a *bulwark.ConfigError.
func (c Config) Validate() error {
	v := validate.New("degrade")
	v.Duration("MaxAge", c.MaxAge, MaxMaxAge)
	v.Size("MaxKeys", c.MaxKeys, MaxLastGoodKeys)
	v.Size("MaxBody", c.MaxBody, MaxLastGoodBody)
	return v.Err()
}

// Fallback serves a fallback in place of a failed call: a call that
// returned an error the classifier calls a failure (a breaker or limiter
// rejection, a timeout, any error), or that a feature switch turned off.
// What it serves, in order: the key's last good value (if Config.MaxAge
// keeps them and one is young enough), then the call site's fallback,
// else the call's own error. Create one with [New]; the zero Fallback is
// not usable. It is safe for concurrent use.
type Fallback struct {
	cfg    Config
	clk    clock.Clock
	lg     *lastGood
	served [numReasons][2]atomic.Int64
	tel    registration
}

// New returns a Fallback configured by cfg. It panics with a
// *bulwark.ConfigError if cfg is not valid.
func New(cfg Config) *Fallback {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	f := &Fallback{cfg: cfg, clk: clock.Real}
	if cfg.MaxAge > 0 {
		f.lg = &lastGood{maxAge: int64(cfg.MaxAge), maxKeys: cfg.MaxKeys, clk: f.clk}
	}
	f.tel.reg = newFallbackTelemetry(f, cfg.MeterProvider)
	return f
}

// Close unregisters the fallback's metrics; it keeps working. Close is
// safe to call more than once; it returns nil.
func (f *Fallback) Close() error {
	f.tel.close()
	return nil
}

var reasons = [...]Reason{ReasonSwitch, ReasonBreaker, ReasonRejected, ReasonTimeout, ReasonStatus, ReasonError}

const numReasons = len(reasons)

func reasonIndex(r Reason) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	return numReasons - 1
}

func (f *Fallback) count(ctx context.Context, ev Event) {
	src := 0
	if ev.Source == SourceFallback {
		src = 1
	}
	f.served[reasonIndex(ev.Reason)][src].Add(1)
	if f.cfg.OnFallback != nil {
		f.cfg.OnFallback(ctx, ev)
	}
}

func (f *Fallback) judge(ctx context.Context, err error) bulwark.Outcome {
	if f.cfg.Classify != nil {
		return f.cfg.Classify(ctx, err)
	}
	return outcome.Error(ctx, err)
}

// Value returns a fallback function that always serves v, for [Call].
func Value[T any](v T) func(context.Context, error) (T, error) {
	return func(context.Context, error) (T, error) { return v, nil }
}

// Call runs fn through f and returns its value, or, when fn fails (or
// f's Switch is off), what f serves instead: the last good value of key
// (when Config.MaxAge is set, key is not empty, and a value of type T
// younger than MaxAge was stored), else fallback(ctx, err) if fallback is
// not nil, else fn's own result. A successful result is stored as key's
// last good value. Use [Value] for a static fallback. A panic in fn goes
// on unchanged. Call panics if ctx or fn is nil.
func Call[T any](ctx context.Context, f *Fallback, key string, fn func(context.Context) (T, error), fallback func(context.Context, error) (T, error)) (T, error) {
	if ctx == nil {
		panic("degrade: Call called with a nil ctx")
	}
	if fn == nil {
		panic("degrade: Call called with a nil fn")
	}
	var v T
	var err error
	if f.cfg.Switch != nil && !f.cfg.Switch.On() {
		err = ErrSwitchedOff
	} else {
		v, err = fn(ctx)
		switch f.judge(ctx, err) {
		case bulwark.Success:
			if f.lg != nil && key != "" && err == nil {
				f.lg.store(key, v)
			}
			return v, err
		case bulwark.Neutral:
			return v, err
		}
	}
	reason := ReasonOf(err)
	if f.lg != nil && key != "" {
		if old, ok := f.lg.load(key); ok {
			if lv, ok := old.(T); ok {
				f.count(ctx, Event{Key: key, Reason: reason, Source: SourceLastGood, Err: err})
				return lv, nil
			}
		}
	}
	if fallback != nil {
		f.count(ctx, Event{Key: key, Reason: reason, Source: SourceFallback, Err: err})
		return fallback(ctx, err)
	}
	return v, err
}

// Do runs fn through f and returns its error, or, when fn fails (or f's
// Switch is off), fallback(ctx, err) if fallback is not nil. Do keeps no
// last good values (there is no value); use [Call] for that. A panic in fn
// goes on unchanged. Do panics if ctx or fn is nil.
func (f *Fallback) Do(ctx context.Context, fn func(context.Context) error, fallback func(context.Context, error) error) error {
	if ctx == nil {
		panic("degrade: Fallback.Do called with a nil ctx")
	}
	if fn == nil {
		panic("degrade: Fallback.Do called with a nil fn")
	}
	var fb func(context.Context, error) (struct{}, error)
	if fallback != nil {
		fb = func(ctx context.Context, err error) (struct{}, error) { return struct{}{}, fallback(ctx, err) }
	}
	_, err := Call(ctx, f, "", func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) }, fb)
	return err
}

// lastGood keeps the last good value per key, bounded in age and count.
// Updating a known key takes no lock (an atomic pointer store); adding a
// key takes a mutex, and at the bound an O(keys) sweep.
type lastGood struct {
	maxAge  int64
	maxKeys int
	clk     clock.Clock
	m       sync.Map // string -> *lgEntry
	mu      sync.Mutex
	n       int
}

type lgEntry struct{ cur atomic.Pointer[lgItem] }

type lgItem struct {
	v  any
	at int64
}

func (l *lastGood) store(key string, v any) {
	it := &lgItem{v: v, at: l.clk.Nanotime()}
	if e, ok := l.m.Load(key); ok {
		e.(*lgEntry).cur.Store(it)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m.Load(key); ok {
		e.(*lgEntry).cur.Store(it)
		return
	}
	if l.n >= l.maxKeys {
		l.evictLocked(it.at)
	}
	e := &lgEntry{}
	e.cur.Store(it)
	l.m.Store(key, e)
	l.n++
}

// evictLocked drops every expired value, or, if none has expired, the
// oldest one.
func (l *lastGood) evictLocked(now int64) {
	var oldestKey any
	oldest := int64(0)
	dropped := false
	l.m.Range(func(k, e any) bool {
		at := e.(*lgEntry).cur.Load().at
		if now-at > l.maxAge {
			l.m.Delete(k)
			l.n--
			dropped = true
		} else if oldestKey == nil || at < oldest {
			oldestKey, oldest = k, at
		}
		return true
	})
	if !dropped && oldestKey != nil {
		l.m.Delete(oldestKey)
		l.n--
	}
}

func (l *lastGood) load(key string) (any, bool) {
	e, ok := l.m.Load(key)
	if !ok {
		return nil, false
	}
	it := e.(*lgEntry).cur.Load()
	if l.clk.Nanotime()-it.at > l.maxAge {
		return nil, false
	}
	return it.v, true
}

func newFallbackTelemetry(f *Fallback, mp metric.MeterProvider) metric.Registration {
	m := telemetryMeter(mp)
	c, err := m.Int64ObservableCounter(metricName("fallbacks"), metric.WithUnit("{fallback}"),
		metric.WithDescription("Fallbacks served in place of failed calls, by reason and source."))
	if err != nil {
		return nil
	}
	name := nameAttr(f.cfg.Name)
	reg, _ := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, r := range reasons {
			for s, src := range [2]Source{SourceLastGood, SourceFallback} {
				if n := f.served[i][s].Load(); n > 0 {
					o.ObserveInt64(c, n, metric.WithAttributes(name, attrReason.String(string(r)), attrSource.String(string(src))))
				}
			}
		}
		return nil
	}, c)
	return reg
}
