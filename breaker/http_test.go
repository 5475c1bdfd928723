package breaker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

func TestRoundTripperOverRealServer(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "backend down", http.StatusBadGateway)
	}))
	defer srv.Close()
	b, clk := mk(t, Config{ConsecutiveFailures: 2, OpenDuration: time.Second})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: b.RoundTripper(tr)}

	for range 2 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "backend down") {
			t.Fatalf("5xx not handed to caller: %d %q", resp.StatusCode, body)
		}
	}
	wantState(t, b, Open)

	body := &closeTracker{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest("POST", srv.URL, body)
	_, err := client.Do(req)
	if !errors.Is(err, ErrOpen) {
		t.Fatalf("open breaker: %v", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("server hit %d times, want 2: the open breaker touched the network", hits.Load())
	}
	if !body.closed.Load() {
		t.Fatal("rejected request's body not closed")
	}
	clk.Advance(time.Second)
	resp, err := client.Get(srv.URL) // the half-open probe goes through
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 3 {
		t.Fatalf("probe did not reach the server")
	}
	wantState(t, b, Open)
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRoundTripperClassification(t *testing.T) {
	codes := map[int]bulwarkOutcome{200: success, 404: success, 501: success, 500: failure, 503: failure, 408: failure, 429: failure}
	for code, want := range codes {
		b, _ := mk(t, Config{ConsecutiveFailures: 1})
		rt := b.RoundTripper(rtFunc(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: code, Body: http.NoBody}, nil
		}))
		req := httptest.NewRequest("GET", "http://x/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != code {
			t.Fatalf("%d: %v", code, err)
		}
		if got := b.State() == Open; got != (want == failure) {
			t.Errorf("status %d: open = %v", code, got)
		}
	}
	// A transport error is a failure; a cancellation by the caller is not.
	b, _ := mk(t, Config{ConsecutiveFailures: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rt := b.RoundTripper(rtFunc(func(r *http.Request) (*http.Response, error) { return nil, r.Context().Err() }))
	_, _ = rt.RoundTrip(httptest.NewRequest("GET", "http://x/", nil).WithContext(ctx))
	wantState(t, b, Closed)
	rt = b.RoundTripper(rtFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") }))
	_, _ = rt.RoundTrip(httptest.NewRequest("GET", "http://x/", nil))
	wantState(t, b, Open)
}

type bulwarkOutcome int

const (
	success bulwarkOutcome = iota
	failure
)

func TestHandlerShedsWith503AndRetryAfter(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 2, OpenDuration: 5 * time.Second})
	var runs atomic.Int64
	h := b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 500 {
			t.Fatalf("code %d", rec.Code)
		}
	}
	clk.Advance(1500 * time.Millisecond)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "4" || runs.Load() != 2 {
		t.Fatalf("shed: code %d Retry-After %q runs %d", rec.Code, rec.Header().Get("Retry-After"), runs.Load())
	}
	if !strings.Contains(rec.Body.String(), "breaker: circuit open") {
		t.Fatalf("body %q", rec.Body.String())
	}
	b.ForceOpen()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("forced open: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if WriteRejection(httptest.NewRecorder(), errors.New("other")) {
		t.Fatal("WriteRejection accepted a non-breaker error")
	}
}

func TestHandlerPanicIsAFailure(t *testing.T) {
	b, _ := mk(t, Config{ConsecutiveFailures: 1})
	h := b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Fatalf("recovered %v", r)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	wantState(t, b, Open)
}

// TestHTTPConformance runs the shared suite (request untouched, bodies
// closed, nil next, Flusher and ResponseController through Handler, panics
// recorded and re-raised, a caller's cancellation neutral) against the
// Breaker's and the Set's RoundTripper and Handler.
func TestHTTPConformance(t *testing.T) {
	conformanceCounts := func(c Counts) conformance.Counts {
		return conformance.Counts{Successes: c.Successes, Failures: c.Failures}
	}
	var b *Breaker
	var s *Set
	// A breaker that never opens during the suite: its counts are what is
	// checked, not its trips.
	cfg := Config{ConsecutiveFailures: 1000}
	newB := func() *Breaker {
		if b != nil {
			b.Close()
		}
		b = New(cfg)
		return b
	}
	newS := func() *Set {
		if s != nil {
			s.Close()
		}
		s = NewSet(SetConfig{Config: cfg, KeyFunc: func(*http.Request) string { return "k" }})
		return s
	}
	t.Cleanup(func() {
		if b != nil {
			b.Close()
		}
		if s != nil {
			s.Close()
		}
	})
	t.Run("Breaker", func(t *testing.T) {
		counts := func() conformance.Counts { return conformanceCounts(b.Counts()) }
		conformance.RoundTripper(t, conformance.Client{
			Wrap:   func(next http.RoundTripper) http.RoundTripper { return newB().RoundTripper(next) },
			Counts: counts,
		})
		conformance.Handler(t, conformance.Server{
			Wrap:   func(next http.Handler) http.Handler { return newB().Handler(next) },
			Counts: counts,
		})
	})
	t.Run("Set", func(t *testing.T) {
		counts := func() conformance.Counts { return conformanceCounts(s.Get("k").Counts()) }
		conformance.RoundTripper(t, conformance.Client{
			Wrap:   func(next http.RoundTripper) http.RoundTripper { return newS().RoundTripper(next) },
			Counts: counts,
		})
		conformance.Handler(t, conformance.Server{
			Wrap:   func(next http.Handler) http.Handler { return newS().Handler(next) },
			Counts: counts,
		})
	})
}

// TestHandlerKeepsFlusher guards issue 6: the handler behind
// Breaker.Handler once saw no http.Flusher (the status recorder hid it).
func TestHandlerKeepsFlusher(t *testing.T) {
	b, _ := mk(t, Config{})
	var flusher, unwrap bool
	h := b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, flusher = w.(http.Flusher)
		_, unwrap = w.(interface{ Unwrap() http.ResponseWriter })
		io.WriteString(w, "hi")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !flusher || !unwrap || rec.Body.String() != "hi" || b.Counts().Successes != 1 {
		t.Fatalf("flusher %v unwrap %v body %q counts %+v", flusher, unwrap, rec.Body.String(), b.Counts())
	}
}

func TestSetHandlerPerKey(t *testing.T) {
	s, _ := mkSet(t, SetConfig{Config: Config{ConsecutiveFailures: 1},
		KeyFunc: func(r *http.Request) string { return r.URL.Path }})
	h := s.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	for _, path := range []string{"/bad", "/bad", "/good"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/bad", nil))
	if rec.Code != http.StatusServiceUnavailable || s.Get("/good").State() != Closed {
		t.Fatalf("/bad answered %d, /good %v: want 503 and closed", rec.Code, s.Get("/good").State())
	}
}

func TestClassifyHTTPOverridesStatusRules(t *testing.T) {
	// An upstream rate limiter's 429s must not trip the breaker when the
	// Config says so; 503s still do.
	not429 := func(ctx context.Context, resp *http.Response, err error) bulwark.Outcome {
		if err != nil || resp.StatusCode >= 500 {
			return bulwark.Failure
		}
		return bulwark.Success
	}
	b, _ := mk(t, Config{ConsecutiveFailures: 1, ClassifyHTTP: not429})
	code := http.StatusTooManyRequests
	rt := b.RoundTripper(rtFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: code, Body: http.NoBody}, nil
	}))
	if _, err := rt.RoundTrip(httptest.NewRequest("GET", "http://x/", nil)); err != nil {
		t.Fatal(err)
	}
	wantState(t, b, Closed)
	code = http.StatusServiceUnavailable
	_, _ = rt.RoundTrip(httptest.NewRequest("GET", "http://x/", nil))
	wantState(t, b, Open)

	// Handler passes the written status and headers to the classifier.
	var seen []string
	hb, _ := mk(t, Config{ConsecutiveFailures: 1, ClassifyHTTP: func(ctx context.Context, resp *http.Response, err error) bulwark.Outcome {
		seen = append(seen, strconv.Itoa(resp.StatusCode)+" "+resp.Header.Get("X-Upstream"))
		return not429(ctx, resp, err)
	}})
	h := hb.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "limited")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	wantState(t, hb, Closed)
	if len(seen) != 1 || seen[0] != "429 limited" {
		t.Fatalf("classifier saw %q", seen)
	}
}

func TestHalfOpenRejectionSuggestsAShortWait(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 1, OpenDuration: 10 * time.Second, HalfOpenMaxWait: time.Minute})
	feed(t, b, "F")
	clk.Advance(10 * time.Second)
	probe := b.mustAllow(t) // takes the only probe slot
	_, err := b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrHalfOpenFull) {
		t.Fatalf("Allow = %v, want ErrHalfOpenFull", err)
	}
	if d := oe.RetryAfter(); d != time.Second {
		t.Fatalf("RetryAfter = %v, want 1s (not the one-minute HalfOpenMaxWait)", d)
	}
	if !oe.Until.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("Until = %v, want the HalfOpenMaxWait bound", oe.Until)
	}
	rec := httptest.NewRecorder()
	WriteRejection(rec, err)
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After = %q, want 1", got)
	}
	clk.Advance(time.Minute)
	if d := oe.RetryAfter(); d != 0 {
		t.Fatalf("RetryAfter past Until = %v", d)
	}
	b.Done(probe, nil)
}

// A call the breaker (or the set's breaker for the host) admits allocates
// nothing of its own.
func TestRoundTripperAllocatesNothing(t *testing.T) {
	resp := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}
	next := rtFunc(func(*http.Request) (*http.Response, error) { return resp, nil })
	b := New(Config{})
	defer b.Close()
	s := NewSet(SetConfig{})
	defer s.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://svc/p", nil)
	for name, rt := range map[string]http.RoundTripper{"Breaker": b.RoundTripper(next), "Set": s.RoundTripper(next)} {
		rt.RoundTrip(req) // the set makes the host's breaker
		if n := testing.AllocsPerRun(100, func() {
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}
