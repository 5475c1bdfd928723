package stack_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClient builds a client for a test and closes it (and its idle
// connections) when the test ends.
func newClient(t *testing.T, cfg stack.ClientConfig) *stack.Client {
	t.Helper()
	c := stack.NewClient(cfg)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func get(t *testing.T, c *stack.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// fast retries, so that tests spend no time in backoff.
var fast = &retry.Config{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, IdempotencyKey: true}

func TestClientRetriesA503(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := newClient(t, stack.ClientConfig{Retry: fast})
	code, body, err := get(t, c, srv.URL)
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("got %d %q %v, want 200 ok", code, body, err)
	}
	if hits.Load() != 2 {
		t.Fatalf("server saw %d requests, want 2 (the 503, then the retry)", hits.Load())
	}
}

func TestClientDefaultsRetryPOSTWithIdempotencyKey(t *testing.T) {
	var hits atomic.Int32
	keys := make(chan string, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		keys <- r.Header.Get("Idempotency-Key") + " " + string(body)
		if hits.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "created")
	}))
	defer srv.Close()
	// The zero ClientConfig: retry's default schedule (a 100ms base delay)
	// and automatic keys.
	c := newClient(t, stack.ClientConfig{})
	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || hits.Load() != 2 {
		t.Fatalf("status %d after %d requests, want 200 after 2", resp.StatusCode, hits.Load())
	}
	first, second := <-keys, <-keys
	if !strings.HasSuffix(first, " order-1") || first != second || len(first) < len("x order-1")+10 {
		t.Fatalf("attempts sent %q and %q: want the same generated Idempotency-Key and the whole body on both", first, second)
	}
}

func TestClientOpenBreakerFailsFast(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	c := newClient(t, stack.ClientConfig{
		Retry:   &retry.Config{MaxAttempts: 1},
		Breaker: &breaker.Config{ConsecutiveFailures: 2, OpenDuration: time.Hour},
	})
	for range 2 {
		if code, _, err := get(t, c, srv.URL); err != nil || code != 500 {
			t.Fatalf("got %d %v, want the 500 itself", code, err)
		}
	}
	_, _, err := get(t, c, srv.URL)
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("third call: %v, want breaker.ErrOpen", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("server saw %d requests, want 2: the open breaker reached the network", hits.Load())
	}
}

func TestClientBreakerPerHost(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer good.Close()
	c := newClient(t, stack.ClientConfig{
		Retry:   &retry.Config{MaxAttempts: 1},
		Breaker: &breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour},
	})
	get(t, c, bad.URL)
	if _, _, err := get(t, c, bad.URL); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("bad host: %v, want breaker.ErrOpen", err)
	}
	if code, _, err := get(t, c, good.URL); err != nil || code != 200 {
		t.Fatalf("good host: %d %v: one host's open breaker stopped another's calls", code, err)
	}
}

func TestClientAttemptTimeoutRetriesAHungAttempt(t *testing.T) {
	var hits atomic.Int32
	budgets := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		budgets <- r.Header.Get(timeout.DefaultHeader)
		if hits.Add(1) == 1 {
			<-r.Context().Done() // hangs until the client gives up on the attempt
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := newClient(t, stack.ClientConfig{Retry: fast, AttemptTimeout: 50 * time.Millisecond})
	code, body, err := get(t, c, srv.URL)
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("got %d %q %v, want 200 ok from the second attempt", code, body, err)
	}
	for range 2 {
		ms, err := strconv.Atoi(<-budgets)
		if err != nil || ms < 1 || ms > 50 {
			t.Errorf("%s = %d (%v), want the attempt's budget, 1 to 50 ms", timeout.DefaultHeader, ms, err)
		}
	}
}

func TestClientTotalTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	c := newClient(t, stack.ClientConfig{Timeout: 50 * time.Millisecond, Retry: fast})
	_, _, err := get(t, c, srv.URL)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, timeout.ErrTimeout) {
		t.Fatalf("got %v, want a timeout error (timeout.ErrTimeout)", err)
	}
}

func TestClientTimeoutDefaults(t *testing.T) {
	// The default attempt timeout sends its 10 s budget (less the time
	// spent); the total timeout sends none of its own.
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(timeout.DefaultHeader)
	}))
	defer srv.Close()
	if _, _, err := get(t, newClient(t, stack.ClientConfig{}), srv.URL); err != nil {
		t.Fatal(err)
	}
	if ms, err := strconv.Atoi(<-got); err != nil || ms <= 9000 || ms > 10000 {
		t.Errorf("zero Config: %s = %d (%v), want just under 10000", timeout.DefaultHeader, ms, err)
	}
	// With a total timeout shorter than the attempt's, the budget sent is
	// the total's.
	if _, _, err := get(t, newClient(t, stack.ClientConfig{Timeout: 2 * time.Second}), srv.URL); err != nil {
		t.Fatal(err)
	}
	if ms, err := strconv.Atoi(<-got); err != nil || ms <= 1000 || ms > 2000 {
		t.Errorf("Timeout 2s: %s = %d (%v), want just under 2000", timeout.DefaultHeader, ms, err)
	}
	// With neither, no budget header.
	c := newClient(t, stack.ClientConfig{Timeout: -1, AttemptTimeout: -1})
	if _, _, err := get(t, c, srv.URL); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h != "" {
		t.Errorf("AttemptTimeout -1 and Timeout -1: %s = %q, want none", timeout.DefaultHeader, h)
	}
}

// TestClientAndServerStackRunAPOSTOnceWhenItsResponseIsLost is the point of
// the two stacks together: the server did the work, its response never
// reached the client, the client retried, and the server replayed the
// stored response instead of doing the work again.
func TestClientAndServerStackRunAPOSTOnceWhenItsResponseIsLost(t *testing.T) {
	var orders atomic.Int32
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := orders.Add(1)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "order "+strconv.Itoa(int(n)))
	})
	srvStack := stack.NewServer(stack.ServerConfig{Idempotency: &idempotency.Config{}})
	defer srvStack.Close()
	h := srvStack.Handler(app)
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) > 1 {
			h.ServeHTTP(w, r)
			return
		}
		// The first time, run the whole stack, then drop the response:
		// the connection closes before a byte of it is written.
		h.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	defer srv.Close()
	c := newClient(t, stack.ClientConfig{Retry: fast})
	resp, err := c.Post(srv.URL, "application/json", strings.NewReader(`{"item":42}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(body) != "order 1" || resp.Header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("got %d %q (%s: %q), want the first run's 201 \"order 1\", replayed",
			resp.StatusCode, body, idempotency.ReplayedHeader, resp.Header.Get(idempotency.ReplayedHeader))
	}
	if orders.Load() != 1 || served.Load() != 2 {
		t.Fatalf("the order ran %d times over %d requests, want once over 2", orders.Load(), served.Load())
	}
}

func TestClientConformance(t *testing.T) {
	conformance.RoundTripper(t, conformance.Client{Wrap: func(next http.RoundTripper) http.RoundTripper {
		c := newClient(t, stack.ClientConfig{Retry: fast})
		return c.RoundTripper(next)
	}})
}

func TestClientConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   stack.ClientConfig
		field string // "" for a valid Config
	}{
		{"zero", stack.ClientConfig{}, ""},
		{"off", stack.ClientConfig{Timeout: -1, AttemptTimeout: -1}, ""},
		{"max", stack.ClientConfig{Timeout: stack.MaxTimeout, AttemptTimeout: stack.MaxTimeout}, ""},
		{"timeout past max", stack.ClientConfig{Timeout: stack.MaxTimeout + 1}, "Timeout"},
		{"attempt timeout past max", stack.ClientConfig{AttemptTimeout: stack.MaxTimeout + 1}, "AttemptTimeout"},
		{"retry", stack.ClientConfig{Retry: &retry.Config{MaxAttempts: -1}}, "Retry.MaxAttempts"},
		{"breaker", stack.ClientConfig{Breaker: &breaker.Config{WindowSize: -1}}, "Breaker.WindowSize"},
		{"cache", stack.ClientConfig{Cache: &cache.HTTPConfig{MaxBodyBytes: -1}}, "Cache.MaxBodyBytes"},
		{"balancer", stack.ClientConfig{Balancer: &lb.Config{MaxAttempts: -1}}, "Balancer.MaxAttempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				newClient(t, tc.cfg)
				return
			}
			var ce *bulwark.ConfigError
			if !errors.As(err, &ce) || ce.Package != "stack" || ce.Field != tc.field || !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want a stack ConfigError for %s", err, tc.field)
			}
			defer func() {
				if r, _ := recover().(error); !errors.Is(r, bulwark.ErrInvalidConfig) || r.Error() != err.Error() {
					t.Fatalf("NewClient panicked with %v, want Validate's error", r)
				}
			}()
			stack.NewClient(tc.cfg)
		})
	}
}

func TestClientCloseTwice(t *testing.T) {
	c := stack.NewClient(stack.ClientConfig{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestClientCallerTransportIsKept(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	var used atomic.Int32
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := newClient(t, stack.ClientConfig{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		used.Add(1)
		return tr.RoundTrip(r)
	})})
	if code, _, err := get(t, c, srv.URL); err != nil || code != 200 || used.Load() != 1 {
		t.Fatalf("got %d %v, transport used %d times, want 200 through the caller's transport once", code, err, used.Load())
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClientCacheServesAFreshResponse(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "catalogue v"+strconv.Itoa(int(hits.Add(1))))
	}))
	defer srv.Close()
	c := newClient(t, stack.ClientConfig{Cache: &cache.HTTPConfig{}})
	for range 3 {
		if code, body, err := get(t, c, srv.URL); err != nil || code != 200 || body != "catalogue v1" {
			t.Fatalf("got %d %q %v, want the first response", code, body, err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1: the fresh response was not served from the cache", hits.Load())
	}
	// Without Cache, every GET reaches the server.
	c2 := newClient(t, stack.ClientConfig{})
	get(t, c2, srv.URL)
	if hits.Load() != 2 {
		t.Fatalf("no Cache: server saw %d requests, want 2", hits.Load())
	}
}

// TestClientBalancerSpreadsAndRetriesElsewhere: with a Balancer, requests
// to a logical host go to the endpoints; an endpoint that fails has its
// breaker open, and the retry lands on a healthy one.
func TestClientBalancerSpreadsAndRetriesElsewhere(t *testing.T) {
	var goodHits, badHits atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	c := newClient(t, stack.ClientConfig{
		Retry:    fast,
		Balancer: &lb.Config{Policy: lb.RoundRobin(), Endpoints: []lb.Endpoint{{Addr: good.Listener.Addr().String()}, {Addr: bad.Listener.Addr().String()}}},
		Breaker:  &breaker.Config{ConsecutiveFailures: 2, OpenDuration: time.Hour},
	})
	for i := range 20 {
		code, body, err := get(t, c, "http://service/items")
		if err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v, want every request served by the good endpoint", i, code, body, err)
		}
	}
	if badHits.Load() != 2 {
		t.Fatalf("the failing endpoint saw %d requests, want 2: its breaker should have opened after 2 failures", badHits.Load())
	}
	if goodHits.Load() != 20 {
		t.Fatalf("the good endpoint saw %d requests, want 20", goodHits.Load())
	}
}

// TestClientBalancerRetryLeavesTheRequestAlone: through the whole stack
// with a Balancer, a PUT whose first attempt gets a 503 is sent again
// whole to the other endpoint; the caller's request is not modified (URL,
// Host, headers: no Request-Timeout-Ms added to its map), each attempt
// carries the caller's headers and its own Request-Timeout-Ms, and
// resp.Request is the last attempt's request, sent to its endpoint.
func TestClientBalancerRetryLeavesTheRequestAlone(t *testing.T) {
	type seen struct{ host, body, caller, budget string }
	var mu sync.Mutex
	var got []seen
	handler := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			p, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, seen{r.Host, string(p), r.Header.Get("X-Caller"), r.Header.Get(timeout.DefaultHeader)})
			mu.Unlock()
			w.WriteHeader(status)
		}
	}
	bad := httptest.NewServer(handler(http.StatusServiceUnavailable))
	defer bad.Close()
	good := httptest.NewServer(handler(http.StatusOK))
	defer good.Close()
	goodAddr := good.Listener.Addr().String()
	c := newClient(t, stack.ClientConfig{
		Retry: fast,
		// Round robin from the bad endpoint: a first attempt that lands
		// on the good one has nothing to retry, and the loop sends again.
		Balancer: &lb.Config{Policy: lb.RoundRobin(), Endpoints: []lb.Endpoint{{Addr: bad.Listener.Addr().String()}, {Addr: goodAddr}}},
	})
	for range 4 {
		mu.Lock()
		got = got[:0]
		mu.Unlock()
		req, _ := http.NewRequest(http.MethodPut, "http://service/items/1", strings.NewReader("payload"))
		req.Header.Set("X-Caller", "a")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		if req.URL.String() != "http://service/items/1" || req.Host != "service" || len(req.Header) != 1 || req.Header.Get("X-Caller") != "a" {
			t.Fatalf("caller's request modified: URL %v, Host %q, Header %v", req.URL, req.Host, req.Header)
		}
		if resp.Request == req || resp.Request.URL.Host != goodAddr || resp.Request.Header.Get(timeout.DefaultHeader) == "" {
			t.Fatalf("resp.Request: the caller's %v, URL host %q, %s %q; want the last attempt's, sent to %q with a budget",
				resp.Request == req, resp.Request.URL.Host, timeout.DefaultHeader, resp.Request.Header.Get(timeout.DefaultHeader), goodAddr)
		}
		mu.Lock()
		attempts := append([]seen(nil), got...)
		mu.Unlock()
		for i, s := range attempts {
			if s.host != "service" || s.body != "payload" || s.caller != "a" || s.budget == "" {
				t.Fatalf("attempt %d of %d: %+v, want Host service, the whole body, the caller's header and a budget", i+1, len(attempts), s)
			}
		}
		if len(attempts) == 2 {
			return
		}
	}
	t.Fatal("no request had its first attempt on the failing endpoint")
}

// staticTransport answers every request with the same response, without
// allocating.
type staticTransport struct{ resp *http.Response }

func (s staticTransport) RoundTrip(*http.Request) (*http.Response, error) { return s.resp, nil }

// The layers between the two timeouts (retry and the breakers) add no
// allocation to a request whose first attempt succeeds, and a Balancer
// adds one per attempt (the copy of the request it sends to its endpoint).
// The timeouts' cost is package timeout's (see the package doc).
func TestClientLayersBetweenTheTimeoutsAllocateNothing(t *testing.T) {
	resp := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}
	for _, tc := range []struct {
		name string
		cfg  stack.ClientConfig
		want float64
	}{
		{"breakers", stack.ClientConfig{Timeout: -1, AttemptTimeout: -1}, 0},
		{"balancer", stack.ClientConfig{Timeout: -1, AttemptTimeout: -1, Balancer: &lb.Config{Endpoints: []lb.Endpoint{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}}}}, 1},
	} {
		tc.cfg.Transport = staticTransport{resp}
		c := newClient(t, tc.cfg)
		req, _ := http.NewRequest(http.MethodGet, "http://service/items/1", nil)
		rt := c.Client.Transport
		if _, err := rt.RoundTrip(req); err != nil { // the host's breaker is made
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() {
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
		}); n != tc.want {
			t.Errorf("%s: %v allocations per call, want %v", tc.name, n, tc.want)
		}
	}
}
