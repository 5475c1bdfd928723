package stack

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/internal/validate"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/timeout"
)

const (
	// DefaultTimeout is ClientConfig.Timeout's default: the bound on a
	// whole call, retries and reading the body included. 30 s, as .NET's
	// standard resilience handler.
	DefaultTimeout = 30 * time.Second
	// DefaultAttemptTimeout is ClientConfig.AttemptTimeout's default: the
	// bound on one attempt, 10 s, as .NET's standard resilience handler
	// and package timeout.
	DefaultAttemptTimeout = 10 * time.Second
	// MaxTimeout bounds ClientConfig.Timeout and AttemptTimeout (24 h,
	// package timeout's bound).
	MaxTimeout = timeout.MaxTimeout
)

// ClientConfig configures the client stack built by NewClient. The zero
// value is useful: a 30 s total timeout, no cache, retry with its defaults plus
// automatic Idempotency-Keys, no balancing, a breaker per host with its
// defaults, a 10 s
// attempt timeout and a transport of the Client's own. NewClient copies the
// Config; changing it afterwards has no effect.
type ClientConfig struct {
	// Name names every layer whose own Config has no Name, in telemetry
	// (the bulwark.name attribute). Default "".
	Name string

	// Timeout bounds a whole call: retries, their delays and reading the
	// response body included (package timeout, as the outermost layer:
	// past it RoundTrip returns, or the body's Read fails with, a
	// *timeout.TimeoutError, errors.Is timeout.ErrTimeout). Default
	// [DefaultTimeout] (30 s); negative means no bound but the request's
	// context; at most [MaxTimeout].
	Timeout time.Duration

	// Cache, if set, puts an HTTP cache (package cache, RFC 9111) on top
	// of the retry layer: a fresh stored response is served without a
	// request, and within a response's stale-if-error window a stale one
	// replaces an error the layers below could not overcome. Default nil:
	// no cache. Name and MeterProvider are filled in when empty.
	Cache *cache.HTTPConfig

	// Retry configures the retry layer. nil means retry's defaults (3
	// attempts, exponential backoff from 100 ms with full jitter, a retry
	// budget of 10% of calls) with IdempotencyKey true, so that POST and
	// PATCH requests are retried under an Idempotency-Key. A non-nil
	// Config is used as given (IdempotencyKey included), with Name and
	// MeterProvider filled in when empty; MaxAttempts 1 turns retries off.
	Retry *retry.Config

	// Balancer, if set, spreads the attempts over a service's endpoints
	// (package lb, below retry, so that a retry can land on another
	// endpoint): send requests to any host (e.g. http://service/path),
	// and each attempt goes to the endpoint the balancer picks, with
	// lb.Config's defaults (P2C on peak-EWMA latency, passive outlier
	// ejection) for what it leaves zero. Its Breakers default to the
	// stack's breakers, one per endpoint. Default nil: no balancing;
	// requests go to their URL's host. Name and MeterProvider are
	// filled in when empty.
	Balancer *lb.Config

	// Breaker configures the breaker that guards each endpoint: one per
	// Balancer endpoint (unless Balancer.Breakers is set), or without a
	// Balancer one per URL host (host:port). nil means breaker's
	// defaults. Name and MeterProvider are filled in when empty.
	Breaker *breaker.Config

	// AttemptTimeout bounds each attempt (each try of retry), and sends
	// the time left to the server in the Request-Timeout-Ms header
	// (package timeout). Default [DefaultAttemptTimeout] (10 s); negative
	// means no per-attempt bound; at most [MaxTimeout].
	AttemptTimeout time.Duration

	// Transport sends the attempts. nil means a clone of
	// http.DefaultTransport of the Client's own, whose idle connections
	// Close closes. A Transport given here is the caller's: Close leaves
	// it alone.
	Transport http.RoundTripper

	// MeterProvider receives the metrics of every layer whose own Config
	// has none. nil means the global provider.
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad value of c, or of a layer's Config in
// it, as a *bulwark.ConfigError of package "stack" whose Field is the
// path to the value (e.g. "Retry.MaxAttempts"); errors.Is(err,
// bulwark.ErrInvalidConfig) holds. NewClient panics with it.
func (c ClientConfig) Validate() error {
	v := validate.New("stack")
	v.DurationOrOff("Timeout", c.Timeout, MaxTimeout)
	v.DurationOrOff("AttemptTimeout", c.AttemptTimeout, MaxTimeout)
	if err := v.Err(); err != nil {
		return err
	}
	if c.Cache != nil {
		cc := *c.Cache
		if err := nested("Cache", cc.Validate()); err != nil {
			return err
		}
	}
	if c.Retry != nil {
		if err := nested("Retry", c.Retry.Validate()); err != nil {
			return err
		}
	}
	if c.Balancer != nil {
		if err := nested("Balancer", c.Balancer.Validate()); err != nil {
			return err
		}
	}
	if c.Breaker != nil {
		return nested("Breaker", c.Breaker.Validate())
	}
	return nil
}

// ServerConfig configures the server stack built by NewServer. Every layer
// is off while its field is nil; a non-nil Config turns it on, and its zero
// value gives that package's defaults (&timeout.Config{} is a 10 s
// timeout). The zero ServerConfig has no layer at all: its Handler returns
// the handler it wraps. NewServer copies the Config.
type ServerConfig struct {
	// Name names every layer whose own Config has no Name, in telemetry
	// (the bulwark.name attribute). Default "".
	Name string

	// Health, if set, answers the liveness and readiness probes (package
	// health, at /livez and /readyz by default) in front of every other
	// layer, so that shedding and limits never reject a probe; other
	// requests pass through. Server.Health returns it, to add checks.
	// Default nil: no probes.
	Health *health.Config

	// Shed, if set, sheds load when the server is overloaded, lowest
	// criticality first (package degrade; a request states its
	// criticality in the Bulwark-Criticality header, or by route): a shed
	// request is answered 503 with Retry-After. Default nil: no
	// shedding.
	Shed *degrade.ShedderConfig

	// Rate, if set, limits the rate of requests the server accepts
	// (package limit, a token bucket over all requests): a request past
	// it is answered 429 Too Many Requests with Retry-After, without
	// running the layers below. Default nil: no rate limit.
	Rate *limit.RateConfig

	// Bulkhead, if set, caps the requests in flight (package limit): a
	// request past the cap is answered 503 Service Unavailable with
	// Retry-After. Default nil: no cap.
	Bulkhead *limit.BulkheadConfig

	// Timeout, if set, bounds each request (package timeout): a request
	// that has written nothing by its deadline is answered 504 Gateway
	// Timeout, and a shorter budget sent by the client in the
	// Request-Timeout-Ms header is honoured. Default nil: no timeout.
	Timeout *timeout.Config

	// Session, if set, gives every request a session (package session),
	// reached through session.Get, session.Put and the other functions of
	// that package on the request's context. Default nil: no sessions.
	Session *session.Config

	// Idempotency, if set, makes requests with an Idempotency-Key
	// idempotent (package idempotency): a retry of a POST whose first
	// attempt ran gets the stored response instead of running again.
	// Default nil: no idempotency middleware. With several instances,
	// give it a shared store (idempotency/redisstore).
	Idempotency *idempotency.Config

	// MeterProvider receives the metrics of every layer whose own Config
	// has none. nil means the global provider.
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad value of a layer's Config in c, as a
// *bulwark.ConfigError of package "stack" whose Field is the path to the
// value (e.g. "Rate.Burst"); errors.Is(err, bulwark.ErrInvalidConfig)
// holds. NewServer panics with it.
func (c ServerConfig) Validate() error {
	if c.Health != nil {
		if err := nested("Health", c.Health.Validate()); err != nil {
			return err
		}
	}
	if c.Shed != nil {
		if err := nested("Shed", c.Shed.Validate()); err != nil {
			return err
		}
	}
	if c.Rate != nil {
		if err := nested("Rate", c.Rate.Validate()); err != nil {
			return err
		}
	}
	if c.Bulkhead != nil {
		if err := nested("Bulkhead", c.Bulkhead.Validate()); err != nil {
			return err
		}
	}
	if c.Timeout != nil {
		if err := nested("Timeout", c.Timeout.Validate()); err != nil {
			return err
		}
	}
	if c.Session != nil {
		if err := nested("Session", c.Session.Validate()); err != nil {
			return err
		}
	}
	if c.Idempotency != nil {
		return nested("Idempotency", c.Idempotency.Validate())
	}
	return nil
}

// nested restates a layer's ConfigError as the stack's, with the field's
// path from the stack's Config.
func nested(field string, err error) error {
	if err == nil {
		return nil
	}
	var ce *bulwark.ConfigError
	if errors.As(err, &ce) {
		f := ce.Field
		// Some packages name the field from their Config type
		// ("HTTPConfig.MaxBodyBytes"); the path from the stack's field
		// says that already.
		if i := strings.IndexByte(f, '.'); i > 0 && strings.HasSuffix(f[:i], "Config") {
			f = f[i+1:]
		}
		return &bulwark.ConfigError{Package: "stack", Field: field + "." + f, Value: ce.Value, Allowed: ce.Allowed}
	}
	return &bulwark.ConfigError{Package: "stack", Field: field, Value: err.Error(), Allowed: "a Config its package accepts"}
}
