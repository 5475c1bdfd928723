package lb_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
)

func TestRoundTripperConformance(t *testing.T) {
	var latest atomic.Pointer[lb.Balancer]
	conformance.RoundTripper(t, conformance.Client{
		// The checks send to their own server: the endpoint set follows
		// the request's host, so the balancer sends each request where
		// the check expects it.
		Wrap: func(next http.RoundTripper) http.RoundTripper {
			b := lb.New(lb.Config{})
			t.Cleanup(func() { b.Close() })
			latest.Store(b)
			rt := b.RoundTripper(next)
			return rtFunc(func(r *http.Request) (*http.Response, error) {
				if err := b.Update([]lb.Endpoint{{Addr: r.URL.Host}}); err != nil {
					return nil, err
				}
				return rt.RoundTrip(r)
			})
		},
		Counts: func() conformance.Counts {
			var c conformance.Counts
			for _, e := range latest.Load().Endpoints() {
				c.Successes += e.Successes
				c.Failures += e.Failures
			}
			return c
		},
	})
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	b := lb.New(lb.Config{Name: "svc", Endpoints: endpoints(2), MeterProvider: mp})
	defer b.Close()
	tk, _ := b.Pick()
	b.Done(tk, nil)
	conformance.Instruments(t, reader)
}

// backend is a loopback server that counts its requests and answers with
// its own name, or with status when failing.
type backend struct {
	srv   *httptest.Server
	name  string
	hits  atomic.Int64
	fail  atomic.Bool
	hosts sync.Map // Host headers seen
}

func newBackend(t *testing.T, name string) *backend {
	be := &backend{name: name}
	be.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		be.hits.Add(1)
		be.hosts.Store(r.Host, true)
		io.Copy(io.Discard, r.Body)
		if be.fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(be.srv.Close)
	return be
}

func (be *backend) addr() string { return be.srv.Listener.Addr().String() }

func TestRoundTripperThreeServersOneFailingNoRequestLost(t *testing.T) {
	bes := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	bes[1].fail.Store(true)
	var eps []lb.Endpoint
	for _, be := range bes {
		eps = append(eps, lb.Endpoint{Addr: be.addr()})
	}
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin()})
	defer b.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	policy := retry.New(retry.Config{MaxAttempts: 3, Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 1})})
	defer policy.Close()
	client := &http.Client{Transport: policy.RoundTripper(b.RoundTripper(tr))}
	for i := range 300 {
		resp, err := client.Get("http://service/work")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d lost: %d %q", i, resp.StatusCode, body)
		}
	}
	// The failing server was ejected after its 5th failure in a row and
	// got nothing more.
	if n := bes[1].hits.Load(); n != lb.DefaultConsecutiveFailures {
		t.Fatalf("failing server got %d requests, want %d before its ejection", n, lb.DefaultConsecutiveFailures)
	}
	if st := state(b, bes[1].addr()); st != lb.Ejected {
		t.Fatalf("failing server is %v", st)
	}
	// Host policy: the logical host by default.
	if _, ok := bes[0].hosts.Load("service"); !ok {
		t.Fatal("backend did not see the logical Host header")
	}
}

func TestRoundTripperMovesOnWhenAConnectionFails(t *testing.T) {
	good := newBackend(t, "good")
	dead := newBackend(t, "dead")
	deadAddr := dead.addr()
	dead.srv.Close() // connection refused from now on
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: deadAddr}, {Addr: good.addr()}}, Policy: lb.RoundRobin(),
		Outlier: lb.OutlierConfig{ConsecutiveFailures: -1}, Host: lb.HostEndpoint})
	defer b.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: b.RoundTripper(tr)}
	for i := range 20 { // GET and PUT with a rewindable body are safe to repeat
		req, _ := http.NewRequest(http.MethodPut, "http://service/x", strings.NewReader("payload"))
		if i%2 == 0 {
			req, _ = http.NewRequest(http.MethodGet, "http://service/x", nil)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
	if _, ok := good.hosts.Load(good.addr()); !ok {
		t.Fatal("HostEndpoint: backend did not see its own address as Host")
	}
	// A POST without an Idempotency-Key is sent once: picked on the dead
	// endpoint, it fails.
	failed := 0
	for range 4 {
		resp, err := client.Post("http://service/x", "text/plain", strings.NewReader("p"))
		if err != nil {
			var op *net.OpError
			if !errors.As(err, &op) {
				t.Fatalf("POST error %v, want the dial error", err)
			}
			failed++
			continue
		}
		resp.Body.Close()
	}
	if failed != 2 {
		t.Fatalf("%d of 4 POSTs failed, want the 2 picked on the dead endpoint", failed)
	}
	// With an Idempotency-Key it moves on.
	for range 4 {
		req, _ := http.NewRequest(http.MethodPost, "http://service/x", strings.NewReader("p"))
		req.Header.Set("Idempotency-Key", "k")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST with Idempotency-Key: %v", err)
		}
		resp.Body.Close()
	}
}

func TestRoundTripperRecordsAtEndOfBody(t *testing.T) {
	be := newBackend(t, "a")
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: be.addr()}}})
	defer b.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: b.RoundTripper(tr)}).Get("http://svc/")
	if err != nil {
		t.Fatal(err)
	}
	if e := b.Endpoints()[0]; e.InFlight != 1 || e.Successes != 0 {
		t.Fatalf("before the body is read: %+v, want the call in flight", e)
	}
	io.ReadAll(resp.Body)
	if e := b.Endpoints()[0]; e.InFlight != 0 || e.Successes != 1 {
		t.Fatalf("after EOF: %+v", e)
	}
	resp.Body.Close()
	if e := b.Endpoints()[0]; e.Successes != 1 {
		t.Fatalf("Close after EOF counted again: %+v", e)
	}
}

func TestHTTPChecker(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "svc" {
			w.WriteHeader(http.StatusMisdirectedRequest)
		}
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ep := lb.Endpoint{Addr: srv.Listener.Addr().String()}
	c := lb.HTTPChecker{Path: "/healthz", Host: "svc", Client: srv.Client()}
	if err := c.Check(context.Background(), ep); err != nil {
		t.Fatalf("healthy endpoint: %v", err)
	}
	c.Path = "sick"
	if err := c.Check(context.Background(), ep); err == nil {
		t.Fatal("503 passed the check")
	}
	srv.Close()
	c.Path = "/healthz"
	if err := c.Check(context.Background(), ep); err == nil {
		t.Fatal("closed server passed the check")
	}
}

func TestHashKeys(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	r.Header.Set("X-User", "alice")
	r.AddCookie(&http.Cookie{Name: "sid", Value: "s1"})
	if k := lb.HeaderKey("x-user")(r); k != "alice" {
		t.Errorf("HeaderKey = %q", k)
	}
	if k := lb.CookieKey("sid")(r); k != "s1" {
		t.Errorf("CookieKey = %q", k)
	}
	if k := lb.CookieKey("none")(r); k != "" {
		t.Errorf("CookieKey(missing) = %q", k)
	}
	if k := lb.ClientIPKey(r); k != "192.0.2.7" {
		t.Errorf("ClientIPKey(RemoteAddr) = %q", k)
	}
	r.Header.Set("X-Real-IP", " 2001:db8::1 ")
	if k := lb.ClientIPKey(r); k != "2001:db8::1" {
		t.Errorf("ClientIPKey(X-Real-IP) = %q", k)
	}
	r.Header.Set("X-Forwarded-For", "198.51.100.9, 10.0.0.1")
	if k := lb.ClientIPKey(r); k != "198.51.100.9" {
		t.Errorf("ClientIPKey(X-Forwarded-For) = %q", k)
	}
	r.Header.Set("X-Forwarded-For", "garbage")
	if k := lb.ClientIPKey(r); k != "2001:db8::1" {
		t.Errorf("ClientIPKey with a bad X-Forwarded-For = %q", k)
	}
}

func TestHashKeyRoutesStickily(t *testing.T) {
	bes := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	var eps []lb.Endpoint
	for _, be := range bes {
		eps = append(eps, lb.Endpoint{Addr: be.addr()})
	}
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RingHash(lb.HashConfig{}), HashKey: lb.HeaderKey("X-User")})
	defer b.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: b.RoundTripper(tr)}
	for _, user := range []string{"alice", "bob", "carol", "dave"} {
		seen := map[string]bool{}
		for range 5 {
			req, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
			req.Header.Set("X-User", user)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen[string(body)] = true
		}
		if len(seen) != 1 {
			t.Fatalf("user %s reached %v, want one backend", user, seen)
		}
	}
}

func FuzzClientIPKey(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.2.3.4, 5.6.7.8", "[::1]", "fe80::1%eth0", "", ",", "::ffff:1.2.3.4", "\x00"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, xff, real, remote string) {
		r := &http.Request{Header: http.Header{}, RemoteAddr: remote}
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("X-Real-IP", real)
		k := lb.ClientIPKey(r)
		if k != "" && net.ParseIP(k) == nil {
			t.Fatalf("ClientIPKey = %q, not an IP", k)
		}
	})
}

type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

func TestRoundTripperEveryBreakerOpen(t *testing.T) {
	be := newBackend(t, "a")
	set := breaker.NewSet(breaker.SetConfig{})
	defer set.Close()
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: be.addr()}}, Breakers: set})
	defer b.Close()
	set.Get(be.addr()).ForceOpen()
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, "http://svc/", body)
	_, err := b.RoundTripper(nil).RoundTrip(req)
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("RoundTrip with the only breaker open: %v, want breaker.ErrOpen", err)
	}
	if !body.closed.Load() || be.hits.Load() != 0 {
		t.Fatalf("body closed %v, server hits %d: want closed and none", body.closed.Load(), be.hits.Load())
	}
}

func TestRoundTripperRetryAfterSteersP2C(t *testing.T) {
	// The good endpoint takes 5 ms (simulated work, not a wait for an
	// effect), so its cost is well above the busy one's fast 503s.
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
	}))
	defer good.Close()
	var busyHits atomic.Int64
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		busyHits.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: good.Listener.Addr().String()}, {Addr: busy.Listener.Addr().String()}},
		Policy: lb.P2C(lb.P2CConfig{Penalty: time.Nanosecond}), Outlier: lb.OutlierConfig{ConsecutiveFailures: -1}})
	defer b.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: b.RoundTripper(tr)}
	get := func() int {
		resp, err := client.Get("http://svc/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for busyHits.Load() == 0 { // until P2C has tried the busy one once
		get()
	}
	// It asked for 30 s: with a 1 ns penalty alone its cost would be its
	// latency, below the good one's, and it would be tried again at once;
	// its Retry-After keeps it out.
	for range 50 {
		if code := get(); code != 200 {
			t.Fatalf("got %d after the endpoint asked for 30 s", code)
		}
	}
}

type ctxKey struct{}

// Regression guard for the attempt's one-allocation copy: each attempt
// sends a request of its own with a URL of its own, so the caller's
// request keeps its URL and Host, a second attempt (after a dial error)
// does not change the first's URL and gets its body anew from GetBody, and
// the attempt carries the caller's method, headers and context and comes
// back as the response's Request.
func TestRoundTripperAttemptIsACopyWithItsOwnURL(t *testing.T) {
	b := lb.New(lb.Config{
		Endpoints: []lb.Endpoint{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}},
		Policy:    lb.RoundRobin(),
		Outlier:   lb.OutlierConfig{ConsecutiveFailures: -1, FailureRate: -1}, PanicThreshold: -1,
	})
	defer b.Close()
	var sent []*http.Request
	var hosts, bodies []string
	next := rtFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r)
		hosts = append(hosts, r.URL.Host)
		p, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(p))
		if len(sent) == 1 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	})
	ctx := context.WithValue(context.Background(), ctxKey{}, "v")
	const raw = "http://user:pw@svc/p?q=1"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, raw, strings.NewReader("payload"))
	req.Header.Set("X-Caller", "a")
	resp, err := b.RoundTripper(next).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 {
		t.Fatalf("%d attempts, want 2 (the first one's dial failed)", len(sent))
	}
	if req.URL.String() != raw || req.Host != "svc" {
		t.Fatalf("caller's request modified: URL %v, Host %q", req.URL, req.Host)
	}
	if sent[0].URL == sent[1].URL || sent[0].URL.Host != hosts[0] || hosts[0] == hosts[1] {
		t.Fatalf("the attempts share a URL: first sent to %q, now %q; second to %q", hosts[0], sent[0].URL.Host, hosts[1])
	}
	for i, r := range sent {
		if r == req || r.URL == req.URL {
			t.Fatalf("attempt %d sent the caller's request or URL", i)
		}
		if r.URL.Host != "10.0.0.1:80" && r.URL.Host != "10.0.0.2:80" {
			t.Fatalf("attempt %d sent to %q, not an endpoint", i, r.URL.Host)
		}
		if r.URL.Scheme != "http" || r.URL.Path != "/p" || r.URL.RawQuery != "q=1" || r.URL.User.String() != "user:pw" {
			t.Fatalf("attempt %d URL %v lost a part of the caller's", i, r.URL)
		}
		if r.Method != http.MethodPut || r.Host != "svc" || r.Header.Get("X-Caller") != "a" || r.Context().Value(ctxKey{}) != "v" {
			t.Fatalf("attempt %d: method %q, Host %q, X-Caller %q, context value %v", i, r.Method, r.Host, r.Header.Get("X-Caller"), r.Context().Value(ctxKey{}))
		}
		if bodies[i] != "payload" {
			t.Fatalf("attempt %d body %q, want payload", i, bodies[i])
		}
	}
	if resp.Request != sent[1] {
		t.Fatal("resp.Request is not the request the transport got")
	}
}

// staticTransport answers every request with the same response, without
// allocating.
type staticTransport struct{ resp *http.Response }

func (s staticTransport) RoundTrip(*http.Request) (*http.Response, error) { return s.resp, nil }

// An attempt costs one allocation: the request copy and its body
// wrapper share it (req.Clone and a wrapper of its own cost three to four).
func TestRoundTripperAllocatesOncePerAttempt(t *testing.T) {
	b := lb.New(lb.Config{Endpoints: endpoints(3)})
	defer b.Close()
	for _, tc := range []struct {
		name string
		body io.ReadCloser
	}{{"no body", http.NoBody}, {"body", io.NopCloser(strings.NewReader(""))}} {
		resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}}
		rt := b.RoundTripper(staticTransport{resp})
		req, _ := http.NewRequest(http.MethodGet, "http://svc/p", nil)
		if n := testing.AllocsPerRun(100, func() {
			resp.Body = tc.body
			r, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
		}); n != 1 {
			t.Errorf("%s: %v allocations per call, want 1", tc.name, n)
		}
	}
}
