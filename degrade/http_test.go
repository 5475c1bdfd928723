package degrade

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestConformance(t *testing.T) {
	t.Run("Fallback.RoundTripper", func(t *testing.T) {
		conformance.RoundTripper(t, conformance.Client{Wrap: func(next http.RoundTripper) http.RoundTripper {
			return New(Config{MaxAge: time.Minute, HTTP: func(*http.Request, Reason, error) *http.Response {
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("fallback"))}
			}}).RoundTripper(next)
		}})
	})
	t.Run("Fallback.Handler", func(t *testing.T) {
		conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
			return New(Config{MaxAge: time.Minute}).Handler(next)
		}})
	})
	t.Run("Shedder.Handler", func(t *testing.T) {
		conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
			return NewShedder(ShedderConfig{}).Handler(next)
		}})
	})
	t.Run("Throttler.RoundTripper", func(t *testing.T) {
		var th *Throttler
		conformance.RoundTripper(t, conformance.Client{
			Wrap: func(next http.RoundTripper) http.RoundTripper {
				th = NewThrottler(ThrottlerConfig{})
				return th.RoundTripper(next)
			},
			Counts: func() conformance.Counts {
				r, a := th.Counts()
				return conformance.Counts{Successes: a, Failures: r - a}
			},
		})
	})
}

func staticFallback(body string) func(*http.Request, Reason, error) *http.Response {
	return func(*http.Request, Reason, error) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{"X-Src": {"static"}}, Body: io.NopCloser(strings.NewReader(body))}
	}
}

func read(t *testing.T) func(*http.Response, error) (int, string, http.Header) {
	return func(resp *http.Response, err error) (int, string, http.Header) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
}

func TestFallbackRoundTripper(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "real "+r.URL.Path)
	}))
	defer srv.Close()
	sw := NewSwitches(SwitchesConfig{})
	defer sw.Close()
	f := New(Config{MaxAge: time.Minute, Switch: sw.Switch("x"), HTTP: staticFallback("static")})
	defer f.Close()
	c := &http.Client{Transport: f.RoundTripper(srv.Client().Transport)}

	if code, body, _ := read(t)(c.Get(srv.URL + "/a")); code != 200 || body != "real /a" {
		t.Fatalf("%d %q", code, body)
	}
	status.Store(503)
	code, body, h := read(t)(c.Get(srv.URL + "/a"))
	if code != 200 || body != "real /a" || h.Get(FallbackHeader) != "status" {
		t.Fatalf("last good: %d %q %v", code, body, h)
	}
	code, body, h = read(t)(c.Get(srv.URL + "/b"))
	if code != 200 || body != "static" || h.Get(FallbackHeader) != "status" || h.Get("X-Src") != "static" {
		t.Fatalf("static: %d %q %v", code, body, h)
	}
	// A 404 is not a failure: no fallback.
	status.Store(404)
	if code, _, h := read(t)(c.Get(srv.URL + "/b")); code != 404 || h.Get(FallbackHeader) != "" {
		t.Fatalf("404: %d %v", code, h)
	}
	// A transport error.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if code, body, h := read(t)(c.Get(dead.URL + "/c")); code != 200 || body != "static" || h.Get(FallbackHeader) != "error" {
		t.Fatalf("transport error: %d %q %v", code, body, h)
	}
	// Switched off: not sent.
	sw.Set(context.Background(), "x", false)
	before := hits.Load()
	if code, body, h := read(t)(c.Get(srv.URL + "/a")); code != 200 || body != "real /a" || h.Get(FallbackHeader) != "switch" || hits.Load() != before {
		t.Fatalf("switch: %d %q %v (hits %d -> %d)", code, body, h, before, hits.Load())
	}
	// No fallback at all: the failure goes through.
	g := New(Config{})
	defer g.Close()
	status.Store(500)
	if code, body, _ := read(t)((&http.Client{Transport: g.RoundTripper(srv.Client().Transport)}).Get(srv.URL + "/z")); code != 500 || body != "real /z" {
		t.Fatalf("no fallback: %d %q", code, body)
	}
}

func TestFallbackHandler(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	f := New(Config{MaxAge: time.Minute})
	defer f.Close()
	srv := httptest.NewServer(f.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Gen", "next")
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "page "+r.URL.Path)
	})))
	defer srv.Close()
	if code, body, _ := read(t)(http.Get(srv.URL + "/p")); code != 200 || body != "page /p" {
		t.Fatal(code, body)
	}
	status.Store(500)
	code, body, h := read(t)(http.Get(srv.URL + "/p"))
	if code != 200 || body != "page /p" || h.Get(FallbackHeader) != "status" || h.Get("X-Gen") != "next" {
		t.Fatalf("last good page: %d %q %v", code, body, h)
	}
	// No last good value: what next wrote goes out.
	if code, body, h := read(t)(http.Get(srv.URL + "/q")); code != 500 || body != "page /q" || h.Get(FallbackHeader) != "" || h.Get("X-Gen") != "next" {
		t.Fatalf("no fallback: %d %q %v", code, body, h)
	}

	g := New(Config{HTTP: staticFallback("sorry")})
	defer g.Close()
	srv2 := httptest.NewServer(g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Leak", "1")
		http.Error(w, "db down", 502)
	})))
	defer srv2.Close()
	if code, body, h := read(t)(http.Get(srv2.URL)); code != 200 || body != "sorry" || h.Get(FallbackHeader) != "status" || h.Get("X-Leak") != "" {
		t.Fatalf("static page: %d %q %v", code, body, h)
	}
}

// overloaded returns a shedder whose fake clock has seen queueing, with n
// requests held in flight.
func overloaded(t *testing.T, cfg ShedderConfig, n int) *Shedder {
	s := NewShedder(cfg)
	fc := clock.NewFake(time.Time{})
	s.clk = fc // unexported: drives the estimate without real time
	s.cur.Store(fc.Nanotime() / s.bucketNs)
	for range 10 { // one bucket: 10 requests of 10ms
		tk, _ := s.Allow(Default)
		fc.Advance(10 * time.Millisecond)
		s.Done(tk)
	}
	fc.Advance(100 * time.Millisecond)
	for range n {
		s.Allow(Critical)
	}
	tk, _ := s.Allow(Critical)
	fc.Advance(50 * time.Millisecond)
	s.Done(tk) // 50ms against a best of 10ms: queueing
	return s
}

func TestShedderHandlerRejects(t *testing.T) {
	s := overloaded(t, ShedderConfig{MinInFlight: 1, Routes: []Route{{Prefix: "/checkout", Criticality: Critical}}}, 2)
	defer s.Close()
	srv := httptest.NewServer(s.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	defer srv.Close()
	get := func(path, crit string) (int, http.Header) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if crit != "" {
			req.Header.Set(DefaultCriticalityHdr, crit)
		}
		code, _, h := read(t)(http.DefaultClient.Do(req))
		return code, h
	}
	if code, h := get("/feed", "sheddable"); code != 503 || h.Get("Retry-After") != "1" {
		t.Fatalf("sheddable: %d %v", code, h)
	}
	if code, _ := get("/checkout", "sheddable"); code != 200 {
		t.Fatalf("a critical route (overriding the header): %d", code)
	}
	if code, _ := get("/feed", "critical"); code != 200 {
		t.Fatalf("critical header: %d", code)
	}
	if st := s.Stats(); st.Shed[Sheddable] != 1 || !st.Overloaded {
		t.Fatalf("stats %+v", st)
	}
	s429 := overloaded(t, ShedderConfig{MinInFlight: 1, RejectStatus: 429, IgnoreHeader: true}, 2)
	defer s429.Close()
	h := s429.Handler(http.NotFoundHandler())
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(DefaultCriticalityHdr, "critical") // ignored: Default
	h.ServeHTTP(w, r)
	if w.Code != 429 {
		t.Fatalf("RejectStatus 429: %d", w.Code)
	}
}

func TestThrottlerRoundTripperBacksOff(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(503)
	}))
	defer srv.Close()
	th := NewThrottler(ThrottlerConfig{})
	defer th.Close()
	c := &http.Client{Transport: th.RoundTripper(srv.Client().Transport)}
	throttled := 0
	for range 200 {
		resp, err := c.Get(srv.URL)
		if errors.Is(err, ErrThrottled) {
			throttled++
			continue
		}
		read(t)(resp, err)
	}
	if throttled < 100 || hits.Load()+int64(throttled) != 200 {
		t.Fatalf("%d throttled, %d sent", throttled, hits.Load())
	}
}

func TestAdminHandler(t *testing.T) {
	s := NewSwitches(SwitchesConfig{Defaults: map[string]bool{"recs": true}})
	defer s.Close()
	srv := httptest.NewServer(s.AdminHandler(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer ops" }))
	defer srv.Close()
	do := func(method, query, auth string) (int, map[string]bool) {
		req, _ := http.NewRequest(method, srv.URL+"?"+query, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		code, body, _ := read(t)(http.DefaultClient.Do(req))
		var out struct{ Switches map[string]bool }
		json.Unmarshal([]byte(body), &out)
		return code, out.Switches
	}
	if code, _ := do("GET", "", ""); code != 403 {
		t.Fatalf("unauthorised: %d", code)
	}
	if code, sws := do("GET", "", "Bearer ops"); code != 200 || !sws["recs"] {
		t.Fatalf("list: %d %v", code, sws)
	}
	q := url.Values{"name": {"recs"}, "on": {"false"}}.Encode()
	if code, sws := do("POST", q, "Bearer ops"); code != 200 || sws["recs"] || s.Switch("recs").On() {
		t.Fatalf("flip: %d %v", code, sws)
	}
	for _, bad := range []string{"name=recs&on=maybe", "on=true", ""} {
		if code, _ := do("POST", bad, "Bearer ops"); code != 400 {
			t.Errorf("POST %q: %d", bad, code)
		}
	}
	if code, _ := do("DELETE", "", "Bearer ops"); code != 405 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := do("POST", q, "Bearer nope"); code != 403 {
		t.Fatalf("unauthorised POST: %d", code)
	}
}

func TestWriteRejection(t *testing.T) {
	w := httptest.NewRecorder()
	if !WriteRejection(w, &ShedError{Wait: 1500 * time.Millisecond}) || w.Code != 503 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	if WriteRejection(httptest.NewRecorder(), errors.New("other")) {
		t.Fatal("wrote for another error")
	}
	_ = bulwark.Success
}

// TestFallbackRoundTripperRejectionsAndTimeouts: composed over a breaker,
// a rejection gets the fallback marked "breaker"; a request that runs out
// of time gets it marked "timeout".
func TestFallbackRoundTripperRejectionsAndTimeouts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "real")
	}))
	defer srv.Close()
	defer close(release)
	b := breaker.New(breaker.Config{})
	defer b.Close()
	f := New(Config{HTTP: staticFallback("static")})
	defer f.Close()
	c := &http.Client{Transport: f.RoundTripper(b.RoundTripper(srv.Client().Transport))}

	b.ForceOpen()
	if code, body, h := read(t)(c.Get(srv.URL)); code != 200 || body != "static" || h.Get(FallbackHeader) != "breaker" {
		t.Fatalf("breaker open: %d %q %v", code, body, h)
	}
	b.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/slow", nil)
	if code, body, h := read(t)(c.Do(req)); code != 200 || body != "static" || h.Get(FallbackHeader) != "timeout" {
		t.Fatalf("timeout: %d %q %v", code, body, h)
	}
}
