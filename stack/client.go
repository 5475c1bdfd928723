package stack

import (
	"errors"
	"net/http"
	"sync"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/timeout"
)

// Client is an *http.Client whose transport is bulwark's client stack (see
// the package doc): use it as any http.Client (Get, Post, Do), and call
// Close once done with it. It is safe for concurrent use, as http.Client
// is; the layers' state (the retry budget, the breakers) is shared by every
// request sent through the Client and every RoundTripper it builds.
type Client struct {
	// Client is the http.Client: its Transport is the stack over
	// ClientConfig.Transport (see RoundTripper), and its Timeout is zero
	// (ClientConfig.Timeout is a layer of the stack).
	*http.Client

	total    *timeout.Timeout // nil when Timeout is negative
	cache    *cache.HTTP      // nil without ClientConfig.Cache
	policy   *retry.Policy
	breakers *breaker.Set
	balancer *lb.Balancer     // nil without ClientConfig.Balancer
	attempt  *timeout.Timeout // nil when AttemptTimeout is negative
	owned    *http.Transport  // the transport NewClient made, if any

	closeOnce sync.Once
	closeErr  error
}

// NewClient builds the client stack configured by cfg. It panics with
// cfg.Validate's error if cfg has a bad value.
func NewClient(cfg ClientConfig) *Client {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	rc := retry.Config{IdempotencyKey: true}
	if cfg.Retry != nil {
		rc = *cfg.Retry
	}
	fill(&rc.Name, &rc.MeterProvider, cfg.Name, cfg.MeterProvider)
	var bc breaker.Config
	if cfg.Breaker != nil {
		bc = *cfg.Breaker
	}
	fill(&bc.Name, &bc.MeterProvider, cfg.Name, cfg.MeterProvider)
	c := &Client{
		policy:   retry.New(rc),
		breakers: breaker.NewSet(breaker.SetConfig{Config: bc}),
	}
	if cfg.Cache != nil {
		cc := *cfg.Cache
		fill(&cc.Name, &cc.MeterProvider, cfg.Name, cfg.MeterProvider)
		c.cache = cache.NewHTTP(cc)
	}
	if cfg.Timeout >= 0 {
		d := cfg.Timeout
		if d == 0 {
			d = DefaultTimeout
		}
		// No header: the attempt timeout below sends the time left.
		c.total = timeout.New(timeout.Config{Name: cfg.Name, Timeout: d, Header: timeout.NoHeader, MeterProvider: cfg.MeterProvider})
	}
	if cfg.Balancer != nil {
		lc := *cfg.Balancer
		fill(&lc.Name, &lc.MeterProvider, cfg.Name, cfg.MeterProvider)
		if lc.Breakers == nil {
			lc.Breakers = c.breakers
		}
		c.balancer = lb.New(lc)
	}
	if cfg.AttemptTimeout >= 0 {
		d := cfg.AttemptTimeout
		if d == 0 {
			d = DefaultAttemptTimeout
		}
		c.attempt = timeout.New(timeout.Config{Name: cfg.Name, Timeout: d, MeterProvider: cfg.MeterProvider})
	}
	base := cfg.Transport
	if base == nil {
		c.owned = http.DefaultTransport.(*http.Transport).Clone()
		base = c.owned
	}
	// The total timeout is a layer of the stack rather than the
	// http.Client's Timeout: net/http enforces that one with a goroutine
	// and a timer per request for any transport but its own.
	c.Client = &http.Client{Transport: c.RoundTripper(base)}
	return c
}

// RoundTripper returns the stack's layers (the total timeout, the cache if
// configured, retry, the balancer with a breaker per endpoint or a breaker
// per host, the attempt timeout) over next,
// for a program that builds its own http.Client or puts more layers around
// them; nil next means http.DefaultTransport. The layers are the Client's:
// they share its retry budget and breakers, and after Close they keep
// working as the Client's do.
func (c *Client) RoundTripper(next http.RoundTripper) http.RoundTripper {
	var layers []func(http.RoundTripper) http.RoundTripper
	if c.total != nil {
		layers = append(layers, c.total.RoundTripper)
	}
	if c.cache != nil {
		layers = append(layers, c.cache.RoundTripper)
	}
	layers = append(layers, c.policy.RoundTripper)
	if c.balancer != nil {
		// The balancer consults and feeds the per-endpoint breakers
		// itself, and passes over an endpoint whose breaker rejects.
		layers = append(layers, c.balancer.RoundTripper)
	} else {
		layers = append(layers, c.breakers.RoundTripper)
	}
	if c.attempt != nil {
		layers = append(layers, c.attempt.RoundTripper)
	}
	return bulwark.ChainTransport(next, layers...)
}

// Close releases what the stack holds: the layers' metric registrations
// and, when NewClient made the transport, its idle connections. Requests in
// flight finish; a request sent after Close still goes through the stack,
// unobserved, with every host sharing one breaker (breaker.Set.Close) and,
// with a Balancer, its background loops stopped (lb.Balancer.Close). It
// is safe to call more than once and from several goroutines; calls after
// the first return nil.
func (c *Client) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		errs := []error{c.policy.Close(), c.breakers.Close()}
		if c.cache != nil {
			errs = append(errs, c.cache.Close())
		}
		if c.balancer != nil {
			errs = append(errs, c.balancer.Close())
		}
		if c.total != nil {
			errs = append(errs, c.total.Close())
		}
		if c.attempt != nil {
			errs = append(errs, c.attempt.Close())
		}
		if c.owned != nil {
			c.owned.CloseIdleConnections()
		}
		c.closeErr = errors.Join(errs...)
	})
	if !first {
		return nil
	}
	return c.closeErr
}
