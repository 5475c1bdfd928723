package limit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestHandlerAnswers429WithRateLimitFields(t *testing.T) {
	r := NewRate(RateConfig{Name: "api", Every: time.Minute, Burst: 2})
	defer r.Close()
	srv := httptest.NewServer(r.Handler(okHandler()))
	defer srv.Close()

	resp, body := get(t, srv.Client(), srv.URL)
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("first request: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("RateLimit-Policy"); got != `"api";q=1;w=60` {
		t.Errorf("RateLimit-Policy = %q, want \"api\";q=1;w=60", got)
	}
	if got := resp.Header.Get("RateLimit"); got != `"api";r=1;t=60` {
		t.Errorf("RateLimit = %q, want \"api\";r=1;t=60", got)
	}
	get(t, srv.Client(), srv.URL)
	resp, body = get(t, srv.Client(), srv.URL)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, ErrRateLimited.Error()) {
		t.Fatalf("third request: %d %q, want 429 with the error message", resp.StatusCode, body)
	}
	ra := resp.Header.Get("Retry-After")
	if ra != "60" && ra != "59" {
		t.Errorf("Retry-After = %q, want about 60", ra)
	}
	if got := resp.Header.Get("RateLimit"); got != `"api";r=0;t=`+ra {
		t.Errorf("RateLimit on a 429 = %q, want r=0 and t equal to Retry-After %s", got, ra)
	}
}

// A *rate.Limiter plugs in where a Limiter is taken, with its state
// described in the same fields.
func TestHandlerTakesAnXTimeRateLimiter(t *testing.T) {
	l := rate.NewLimiter(rate.Every(10*time.Second), 1)
	srv := httptest.NewServer(Handler(l, okHandler()))
	defer srv.Close()
	resp, _ := get(t, srv.Client(), srv.URL)
	if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Policy") != `"default";q=1;w=10` {
		t.Fatalf("first: %d, policy %q", resp.StatusCode, resp.Header.Get("RateLimit-Policy"))
	}
	resp, _ = get(t, srv.Client(), srv.URL)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The rejected request's reservation was given back: the limiter
	// has not gone further into debt.
	if tok := l.Tokens(); tok < -0.01 {
		t.Fatalf("tokens = %v after a rejection, want about 0", tok)
	}
}

func TestKeyedHandlerLimitsEachClient(t *testing.T) {
	k := NewKeyed(KeyedConfig{
		Rate:    RateConfig{Every: time.Minute, Burst: 1},
		KeyFunc: func(r *http.Request) string { return r.Header.Get("X-API-Key") },
	})
	defer k.Close()
	srv := httptest.NewServer(k.Handler(okHandler()))
	defer srv.Close()
	do := func(key string) int {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-API-Key", key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if do("a") != 200 || do("b") != 200 || do("a") != 429 || do("b") != 429 || do("c") != 200 {
		t.Fatal("keys were not limited independently")
	}
}

func TestConcurrencyHandlerAnswers503(t *testing.T) {
	b := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	release := make(chan struct{})
	entered := make(chan struct{})
	srv := httptest.NewServer(b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})))
	defer srv.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := srv.Client().Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	resp, body := get(t, srv.Client(), srv.URL)
	close(release)
	<-done
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(body, ErrConcurrencyLimited.Error()) {
		t.Fatalf("request over the cap: %d, Retry-After %q, body %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if b.InFlight() != 0 {
		t.Fatal("a slot was not released")
	}
}

func TestRoundTripperWaitsOrRejects(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	r := NewRate(RateConfig{Every: time.Hour, Burst: 1})
	defer r.Close()

	// NoWait: the second request is rejected and never reaches the server.
	c := &http.Client{Transport: r.RoundTripper(srv.Client().Transport, NoWait())}
	if resp, err := c.Get(srv.URL); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	body := &closeCounter{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest("POST", srv.URL, body)
	_, err := c.Do(req)
	var re *RejectedError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &re) || re.Wait <= 59*time.Minute {
		t.Fatalf("second request = %v, want ErrRateLimited with about an hour to wait", err)
	}
	if hits.Load() != 1 || body.closed.Load() != 1 {
		t.Fatalf("server hits %d (want 1), request body closed %d times (want 1)", hits.Load(), body.closed.Load())
	}

	// Waiting: a deadline that comes before the turn fails at once.
	c = &http.Client{Transport: r.RoundTripper(srv.Client().Transport)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	start := time.Now()
	if _, err := c.Do(req); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("waiting request with a 1-minute deadline = %v, want ErrRateLimited", err)
	}
	if time.Since(start) > 10*time.Second || hits.Load() != 1 {
		t.Fatal("the request waited or reached the server")
	}

	// A *rate.Limiter whose deadline cannot be met is a rejection too.
	l := rate.NewLimiter(rate.Every(time.Hour), 1)
	l.Allow()
	c = &http.Client{Transport: RoundTripper(l, srv.Client().Transport)}
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if _, err := c.Do(req); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("rate.Limiter past the deadline = %v, want ErrRateLimited", err)
	}
}

func TestKeyedRoundTripperLimitsPerHost(t *testing.T) {
	srvA := httptest.NewServer(okHandler())
	defer srvA.Close()
	srvB := httptest.NewServer(okHandler())
	defer srvB.Close()
	k := NewKeyed(KeyedConfig{Rate: RateConfig{Every: time.Hour, Burst: 1}})
	defer k.Close()
	c := &http.Client{Transport: k.RoundTripper(nil, NoWait())}
	for _, u := range []string{srvA.URL, srvB.URL} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("first request to %s: %v", u, err)
		}
		resp.Body.Close()
	}
	if _, err := c.Get(srvA.URL); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second request to A = %v, want ErrRateLimited", err)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func TestConcurrencyRoundTripperHoldsTheSlotUntilTheBodyIsClosed(t *testing.T) {
	srv := httptest.NewServer(okHandler())
	defer srv.Close()
	b := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	c := &http.Client{Transport: b.RoundTripper(srv.Client().Transport)}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(srv.URL); !errors.Is(err, ErrConcurrencyLimited) {
		t.Fatalf("second request with the first body open = %v, want ErrConcurrencyLimited", err)
	}
	resp.Body.Close()
	if resp, err = c.Get(srv.URL); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	resp.Body.Close()
	if b.InFlight() != 0 {
		t.Fatal("slot leaked")
	}
}

type closeCounter struct {
	io.Reader
	closed atomic.Int64
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

// outcomeCounter wraps a ConcurrencyLimiter's permits to count outcomes
// for the conformance suite.
type outcomeCounter struct {
	*Bulkhead
	succ, fail atomic.Int64
}

func (o *outcomeCounter) Acquire(ctx context.Context) (Permit, error) {
	p, err := o.Bulkhead.Acquire(ctx)
	if err != nil {
		return p, err
	}
	return Permit{l: o, start: p.start}, nil
}

func (o *outcomeCounter) release(p Permit, out bulwark.Outcome) {
	switch out {
	case bulwark.Success:
		o.succ.Add(1)
	case bulwark.Failure:
		o.fail.Add(1)
	}
	o.Bulkhead.Release()
}

func (o *outcomeCounter) counts() conformance.Counts {
	return conformance.Counts{Successes: o.succ.Load(), Failures: o.fail.Load()}
}

func TestConformance(t *testing.T) {
	t.Run("Handler", func(t *testing.T) {
		conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
			return NewRate(RateConfig{Rate: 1e6}).Handler(next)
		}})
	})
	t.Run("KeyedHandler", func(t *testing.T) {
		conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
			return NewKeyed(KeyedConfig{Rate: RateConfig{Rate: 1e6}}).Handler(next)
		}})
	})
	t.Run("ConcurrencyHandler", func(t *testing.T) {
		var oc *outcomeCounter
		conformance.Handler(t, conformance.Server{
			Wrap: func(next http.Handler) http.Handler {
				oc = &outcomeCounter{Bulkhead: NewBulkhead(BulkheadConfig{})}
				return ConcurrencyHandler(oc, next)
			},
			Counts: func() conformance.Counts { return oc.counts() },
		})
	})
	t.Run("AdaptiveHandler", func(t *testing.T) {
		conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
			return NewAdaptive(AdaptiveConfig{MinLimit: 10}).Handler(next)
		}})
	})
	t.Run("RoundTripper", func(t *testing.T) {
		conformance.RoundTripper(t, conformance.Client{Wrap: func(next http.RoundTripper) http.RoundTripper {
			return NewRate(RateConfig{Rate: 1e6}).RoundTripper(next)
		}})
	})
	t.Run("KeyedRoundTripper", func(t *testing.T) {
		conformance.RoundTripper(t, conformance.Client{Wrap: func(next http.RoundTripper) http.RoundTripper {
			return NewKeyed(KeyedConfig{Rate: RateConfig{Rate: 1e6}}).RoundTripper(next)
		}})
	})
	t.Run("ConcurrencyRoundTripper", func(t *testing.T) {
		var oc *outcomeCounter
		conformance.RoundTripper(t, conformance.Client{
			Wrap: func(next http.RoundTripper) http.RoundTripper {
				oc = &outcomeCounter{Bulkhead: NewBulkhead(BulkheadConfig{})}
				return ConcurrencyRoundTripper(oc, next)
			},
			Counts: func() conformance.Counts { return oc.counts() },
		})
	})
}

func FuzzSetHeaders(f *testing.F) {
	f.Add("default", int64(5), int64(3))
	f.Add("a\"b\\c\x00\xff", int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, name string, remaining, quota int64) {
		h := http.Header{}
		SetHeaders(h, Decision{Allowed: remaining >= 0, Remaining: remaining, RetryAfter: time.Duration(quota),
			Policy: Policy{Name: name, Quota: quota, Window: time.Second}})
		for _, f := range []string{"RateLimit", "RateLimit-Policy"} {
			v := h.Get(f)
			if f == "RateLimit-Policy" && quota <= 0 {
				continue
			}
			if len(v) < 2 || v[0] != '"' {
				t.Fatalf("%s = %q: not a quoted policy name", f, v)
			}
			// The name is one valid sf-string: printable ASCII, and the
			// closing quote is the first unescaped one.
			i := 1
			for ; i < len(v); i++ {
				c := v[i]
				if c < 0x20 || c > 0x7e {
					t.Fatalf("%s = %q: byte %#x", f, v, c)
				}
				if c == '\\' {
					i++
					continue
				}
				if c == '"' {
					break
				}
			}
			if rest := v[i+1:]; !strings.HasPrefix(rest, ";") || strings.ContainsAny(rest, "\"\\-") {
				t.Fatalf("%s = %q: bad parameters %q", f, v, rest)
			}
		}
	})
}
