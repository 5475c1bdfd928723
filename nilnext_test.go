package bulwark_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// TestNilNext pins CONTRIBUTING.md's rule for middleware constructors:
// every Handler panics at construction when next is nil (not at the first
// request), with a message naming the method; every RoundTripper takes a
// nil next as http.DefaultTransport and does not panic.
func TestNilNext(t *testing.T) {
	closeLater := func(c io.Closer) { t.Cleanup(func() { _ = c.Close() }) }
	b := breaker.New(breaker.Config{})
	closeLater(b)
	set := breaker.NewSet(breaker.SetConfig{})
	closeLater(set)
	fb := degrade.New(degrade.Config{})
	closeLater(fb)
	sh := degrade.NewShedder(degrade.ShedderConfig{})
	closeLater(sh)
	inj := chaos.New(chaos.Config{})
	closeLater(inj)
	sm := session.New(session.Config{})
	closeLater(sm)
	kp := idempotency.New(idempotency.Config{})
	closeLater(kp)
	h := health.New(health.Config{})
	closeLater(h)
	to := timeout.New(timeout.Config{})
	closeLater(to)
	rate := limit.NewRate(limit.RateConfig{Rate: 10, Burst: 1})
	closeLater(rate)
	srv := stack.NewServer(stack.ServerConfig{})
	closeLater(srv)

	handlers := map[string]func(http.Handler) http.Handler{
		"breaker: Breaker.Handler":    b.Handler,
		"breaker: Set.Handler":        set.Handler,
		"degrade: Fallback.Handler":   fb.Handler,
		"degrade: Shedder.Handler":    sh.Handler,
		"chaos: Injector.Handler":     inj.Handler,
		"session: Manager.Handler":    sm.Handler,
		"idempotency: Keeper.Handler": kp.Handler,
		"health: Health.Handler":      h.Handler,
		"timeout: Timeout.Handler":    to.Handler,
		"limit: Handler":              rate.Handler,
		"stack: Server.Handler":       srv.Handler,
	}
	for name, wrap := range handlers {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if r == nil || !strings.HasPrefix(msg, name) || !strings.Contains(msg, "nil") || !strings.Contains(msg, "next") {
					t.Fatalf("%s(nil) panicked with %v; want a message starting %q naming the nil next", name, r, name)
				}
			}()
			wrap(nil)
		})
	}

	pol := retry.New(retry.Config{})
	bal := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: "127.0.0.1:1"}}})
	closeLater(bal)
	hc := cache.NewHTTP(cache.HTTPConfig{})
	closeLater(hc)
	cl := stack.NewClient(stack.ClientConfig{})
	closeLater(cl)
	rts := map[string]func(http.RoundTripper) http.RoundTripper{
		"breaker.Breaker":  b.RoundTripper,
		"breaker.Set":      set.RoundTripper,
		"degrade.Fallback": fb.RoundTripper,
		"chaos.Injector":   inj.RoundTripper,
		"timeout.Timeout":  to.RoundTripper,
		"retry.Policy":     pol.RoundTripper,
		"lb.Balancer":      bal.RoundTripper,
		"cache.HTTP":       hc.RoundTripper,
		"stack.Client":     cl.RoundTripper,
		"limit.Rate":       func(next http.RoundTripper) http.RoundTripper { return rate.RoundTripper(next) },
	}
	for name, wrap := range rts {
		if wrap(nil) == nil {
			t.Errorf("%s.RoundTripper(nil) returned nil; want one sending through http.DefaultTransport", name)
		}
	}
}
