package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

// recorder is a test server that records every request it gets and
// answers with the next scripted status (200 when the script runs out).
type recorder struct {
	mu      sync.Mutex
	bodies  []string
	keys    []string
	script  []int
	header  http.Header // extra header on scripted (non-200) answers
	payload int         // size of the body of non-200 answers
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	n := len(r.bodies)
	r.bodies = append(r.bodies, string(b))
	r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
	code := http.StatusOK
	if n < len(r.script) {
		code = r.script[n]
	}
	r.mu.Unlock()
	if code != http.StatusOK {
		for k, v := range r.header {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(code)
	if code != http.StatusOK && r.payload > 0 {
		w.Write(bytes.Repeat([]byte("x"), r.payload))
		return
	}
	fmt.Fprintf(w, "attempt %d", n+1)
}

func (r *recorder) got() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...), append([]string(nil), r.keys...)
}

func serve(t *testing.T, r *recorder) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(r)
	t.Cleanup(s.Close)
	return s
}

// instantPolicy retries at once (no delay), so tests need no clock.
func instantPolicy(cfg Config) *Policy {
	cfg.NewBackOff = zeroBackOff
	if cfg.Budget == nil {
		cfg.Budget = UnlimitedBudget()
	}
	return New(cfg)
}

func client(p *Policy, s *httptest.Server) *http.Client {
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1
	return &http.Client{Transport: p.RoundTripper(tr)}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHTTPBodyRewoundForEveryAttempt(t *testing.T) {
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"GetBody", func() io.Reader { return strings.NewReader("payload") }},
		{"buffered", func() io.Reader { return io.NopCloser(strings.NewReader("payload")) }}, // no GetBody
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{script: []int{503, 502}}
			s := serve(t, r)
			p := instantPolicy(Config{})
			defer p.Close()
			req, _ := http.NewRequest(http.MethodPut, s.URL, tc.body())
			resp, err := client(p, s).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, resp); resp.StatusCode != 200 || got != "attempt 3" {
				t.Fatalf("%d %q", resp.StatusCode, got)
			}
			if bodies, _ := r.got(); fmt.Sprint(bodies) != "[payload payload payload]" {
				t.Fatalf("server got %q", bodies)
			}
		})
	}
}

func TestHTTPLargeBodyWithoutGetBodyNotRetried(t *testing.T) {
	r := &recorder{script: []int{503}}
	s := serve(t, r)
	p := instantPolicy(Config{MaxBufferedBody: 10})
	defer p.Close()
	big := strings.Repeat("b", 100)
	req, _ := http.NewRequest(http.MethodPut, s.URL, io.NopCloser(strings.NewReader(big)))
	resp, err := client(p, s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if bodies, _ := r.got(); resp.StatusCode != 503 || len(bodies) != 1 || bodies[0] != big {
		t.Fatalf("status %d, server got %d bodies", resp.StatusCode, len(bodies))
	}
}

func TestHTTPExhaustedReturnsLastResponse(t *testing.T) {
	r := &recorder{script: []int{500, 502, 503}}
	s := serve(t, r)
	p := instantPolicy(Config{})
	defer p.Close()
	resp, err := client(p, s).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 503 || got != "attempt 3" {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
}

func TestHTTPDiscardedResponsesDrainedForReuse(t *testing.T) {
	r := &recorder{script: []int{503, 503}, payload: 8 << 10}
	s := serve(t, r)
	p := instantPolicy(Config{})
	defer p.Close()
	var mu sync.Mutex
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		mu.Lock()
		reused = append(reused, i.Reused)
		mu.Unlock()
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, s.URL, nil)
	resp, err := client(p, s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if fmt.Sprint(reused) != "[false true true]" {
		t.Fatalf("connection reuse per attempt: %v", reused)
	}
}

func TestHTTPPostWithoutKeyNeverRetried(t *testing.T) {
	r := &recorder{script: []int{503, 503}}
	s := serve(t, r)
	p := instantPolicy(Config{})
	defer p.Close()
	resp, err := client(p, s).Post(s.URL, "text/plain", strings.NewReader("charge"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if bodies, keys := r.got(); resp.StatusCode != 503 || len(bodies) != 1 || keys[0] != "" {
		t.Fatalf("status %d, %d requests, key %q", resp.StatusCode, len(bodies), keys)
	}
}

func TestHTTPPostWithAutoKeySameKeyEveryAttempt(t *testing.T) {
	r := &recorder{script: []int{503, 429}}
	s := serve(t, r)
	p := instantPolicy(Config{IdempotencyKey: true})
	defer p.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("charge"))
	req.Header.Set("X-Caller", "1")
	before := fmt.Sprint(req.Header)
	resp, err := client(p, s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	bodies, keys := r.got()
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if len(keys) != 3 || !uuid.MatchString(keys[0]) || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("keys %q", keys)
	}
	if fmt.Sprint(bodies) != "[charge charge charge]" {
		t.Fatalf("bodies %q", bodies)
	}
	if fmt.Sprint(req.Header) != before || req.Header.Get("Idempotency-Key") != "" {
		t.Fatalf("caller's request modified: %v", req.Header)
	}
	// A second request gets a new key.
	resp, err = client(p, s).Do(req.Clone(context.Background()))
	if err == nil {
		readAll(t, resp)
	}
	if _, keys2 := r.got(); len(keys2) != 4 || keys2[3] == keys[0] {
		t.Fatalf("keys %q", keys2)
	}
}

func TestHTTPCallerKeyMakesPostRetryable(t *testing.T) {
	r := &recorder{script: []int{503}}
	s := serve(t, r)
	p := instantPolicy(Config{})
	defer p.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("x"))
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := client(p, s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if _, keys := r.got(); fmt.Sprint(keys) != "[k1 k1]" || resp.StatusCode != 200 {
		t.Fatalf("keys %q status %d", keys, resp.StatusCode)
	}
}

// roundTrip runs c.Do(req) in a goroutine.
func roundTrip(c *http.Client, req *http.Request) <-chan error {
	ch := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		ch <- err
	}()
	return ch
}

func TestHTTPRetryAfter(t *testing.T) {
	start := newFake().Now()
	for _, tc := range []struct {
		name, value string
		want        time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"date", start.Add(20 * time.Second).UTC().Format(http.TimeFormat), 20 * time.Second},
		{"malformed", "soon", time.Second}, // the schedule's own delay
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := clock.NewFake(start)
			r := &recorder{script: []int{503}, header: http.Header{"Retry-After": {tc.value}}}
			s := serve(t, r)
			delays := make(chan time.Duration, 1)
			p := New(Config{BaseDelay: time.Second, Jitter: NoJitter, clock: c, Budget: UnlimitedBudget(),
				OnRetry: func(_ context.Context, ev Event) { delays <- ev.Delay }})
			defer p.Close()
			req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
			done := roundTrip(client(p, s), req)
			if d := <-delays; d != tc.want {
				t.Fatalf("delay %v, want %v", d, tc.want)
			}
			c.BlockUntil(1)
			c.Advance(tc.want)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if bodies, _ := r.got(); len(bodies) != 2 {
				t.Fatalf("%d requests", len(bodies))
			}
		})
	}
}

func TestHTTPCancelledBetweenAttemptsReturnsPromptly(t *testing.T) {
	c := newFake()
	r := &recorder{script: []int{503, 503}, header: http.Header{"Retry-After": {"20"}}}
	s := serve(t, r)
	p := New(Config{clock: c})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	done := roundTrip(client(p, s), req)
	c.BlockUntil(1)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 {
		t.Fatalf("err %v does not carry the last status", err)
	}
	if bodies, _ := r.got(); len(bodies) != 1 {
		t.Fatalf("%d requests", len(bodies))
	}
}

func TestHTTPTransportErrorExhausted(t *testing.T) {
	p := instantPolicy(Config{})
	defer p.Close()
	n := 0
	rt := p.RoundTripper(roundTripFunc(func(*http.Request) (*http.Response, error) {
		n++
		return nil, errBoom
	}))
	req, _ := http.NewRequest(http.MethodGet, "http://example.invalid/", nil)
	resp, err := rt.RoundTrip(req)
	if resp != nil || !errors.Is(err, ErrExhausted) || !errors.Is(err, errBoom) || n != 3 {
		t.Fatalf("resp %v err %v after %d", resp, err, n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A transport that breaks the contract with (nil, nil) gets a transport
// error, judged and retried like any other, never a nil dereference.
func TestHTTPNilResponseAndNilErrorIsTransportError(t *testing.T) {
	nilnil := func(n *int) http.RoundTripper {
		return roundTripFunc(func(*http.Request) (*http.Response, error) { *n++; return nil, nil })
	}
	for _, tc := range []struct {
		name     string
		cfg      Config
		method   string
		attempts int
	}{
		{"retried", Config{}, http.MethodGet, 3},
		{"own classify", Config{ClassifyHTTP: func(context.Context, *http.Response, error) bulwark.Outcome {
			return bulwark.Failure
		}}, http.MethodGet, 3},
		{"hedged", Config{clock: newFake(), Hedge: HedgeConfig{Delay: time.Hour}}, http.MethodGet, 3},
		{"single attempt", Config{MaxAttempts: 1}, http.MethodGet, 1},
		{"not retryable", Config{}, http.MethodPost, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := instantPolicy(tc.cfg)
			defer p.Close()
			n := 0
			req, _ := http.NewRequest(tc.method, "http://example.invalid/", nil)
			resp, err := p.RoundTripper(nilnil(&n)).RoundTrip(req)
			if resp != nil || !errors.Is(err, errNoResponse) || n != tc.attempts {
				t.Fatalf("resp %v, err %v after %d attempts", resp, err, n)
			}
			if tc.attempts > 1 && !errors.Is(err, ErrExhausted) {
				t.Fatalf("err %v", err)
			}
		})
	}
}

// The shared conformance suite, for the plain and the hedged RoundTripper.
func TestRoundTripperConformance(t *testing.T) {
	for name, cfg := range map[string]Config{
		"plain":  {BaseDelay: time.Millisecond},
		"hedged": {BaseDelay: time.Millisecond, Hedge: HedgeConfig{Delay: time.Millisecond, MaxInFlight: 3}},
	} {
		t.Run(name, func(t *testing.T) {
			conformance.RoundTripper(t, conformance.Client{
				Wrap: func(next http.RoundTripper) http.RoundTripper {
					cfg.Budget = UnlimitedBudget()
					return New(cfg).RoundTripper(next)
				},
			})
		})
	}
}

// retry's instruments follow the naming scheme, have units other than
// "1" and explicit histogram buckets.
func TestInstrumentsConformance(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	p := New(Config{Name: "conformance", BaseDelay: time.Millisecond, MaxAttempts: 2, Budget: UnlimitedBudget(), MeterProvider: mp})
	defer p.Close()
	p.Do(context.Background(), func(context.Context) error { return errBoom })
	conformance.Instruments(t, reader)
}

// The RoundTripper's path for a request whose first attempt succeeds
// allocates nothing of its own, so that a stack built on it (package
// stack) adds no allocation beyond its transport's.
func TestRoundTripperFirstAttemptSuccessAllocatesNothing(t *testing.T) {
	p := New(Config{IdempotencyKey: true})
	defer p.Close()
	resp := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}
	rt := p.RoundTripper(roundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil }))
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, "http://svc/p", nil)
		if n := testing.AllocsPerRun(100, func() {
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", method, n)
		}
	}
}

// Every attempt of a retried request, the first with its new key and the
// retries, carries every header value of the caller's request, which is
// left as it was; resp.Request is the last attempt's request, with the
// key, the caller's URL and the caller's context.
func TestHTTPAttemptsCarryTheCallersHeaderAndLeaveItAlone(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		var mu sync.Mutex
		var seen []string
		n := 0
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			n++
			seen = append(seen, fmt.Sprintf("%v %s %s", r.Header["X-Multi"], r.Header.Get("X-One"), b))
			first := n == 1
			mu.Unlock()
			if first {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		p := instantPolicy(Config{IdempotencyKey: true})
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader("charge")
		}
		ctx := context.WithValue(context.Background(), ctxKey{}, "v")
		req, _ := http.NewRequestWithContext(ctx, method, s.URL+"/p?q=1", body)
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		req.Header.Set("X-One", "1")
		before := req.Header.Clone()
		resp, err := client(p, s).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		want := "[a b] 1 "
		if method == http.MethodPost {
			want += "charge"
		}
		if len(seen) != 2 || seen[0] != want || seen[1] != want {
			t.Errorf("%s: the server saw %q, want %q twice", method, seen, want)
		}
		if !reflect.DeepEqual(req.Header, before) {
			t.Errorf("%s: caller's header changed to %v", method, req.Header)
		}
		hasKey := resp.Request.Header.Get("Idempotency-Key") != ""
		if resp.Request == req || hasKey != (method == http.MethodPost) ||
			resp.Request.URL.String() != req.URL.String() || resp.Request.Context().Value(ctxKey{}) != "v" {
			t.Errorf("%s: resp.Request: the caller's %v, key %v, URL %v, context value %v", method,
				resp.Request == req, hasKey, resp.Request.URL, resp.Request.Context().Value(ctxKey{}))
		}
		p.Close()
		s.Close()
	}
}

type ctxKey struct{}
