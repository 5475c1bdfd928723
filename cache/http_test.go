package cache_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestHTTPConformance(t *testing.T) {
	conformance.RoundTripper(t, conformance.Client{
		Wrap: func(next http.RoundTripper) http.RoundTripper {
			h := cache.NewHTTP(cache.HTTPConfig{})
			t.Cleanup(func() { h.Close() })
			return h.RoundTripper(next)
		},
	})
}

// server is a real HTTP server whose handler the test sets, counting what
// it answers by status.
type server struct {
	*httptest.Server
	mu      sync.Mutex
	handle  http.HandlerFunc
	n200    atomic.Int64
	n304    atomic.Int64
	nOther  atomic.Int64
	lastReq atomic.Pointer[http.Request]
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	s := &server{handle: h}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.lastReq.Store(r)
		s.mu.Lock()
		h := s.handle
		s.mu.Unlock()
		rec := &statusWriter{ResponseWriter: w, code: 200}
		h(rec, r)
		switch rec.code {
		case 200:
			s.n200.Add(1)
		case 304:
			s.n304.Add(1)
		default:
			s.nOther.Add(1)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(h http.HandlerFunc) { s.mu.Lock(); s.handle = h; s.mu.Unlock() }

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int)        { w.code = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// etagged serves body with an ETag, answering 304 to a matching
// If-None-Match.
func etagged(cc, etag, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cc)
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, body)
	}
}

type httpCase struct {
	h      *cache.HTTP
	fake   *clock.Fake
	client *http.Client
}

func newHTTPCase(t *testing.T, cfg cache.HTTPConfig) *httpCase {
	h := cache.NewHTTP(cfg)
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cache.SetHTTPClock(h, fake)
	tr := &http.Transport{}
	t.Cleanup(func() { h.Close(); tr.CloseIdleConnections() })
	return &httpCase{h: h, fake: fake, client: &http.Client{Transport: h.RoundTripper(tr)}}
}

func (c *httpCase) get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestHTTPMaxAgeServesFromCache(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	for i := range 3 {
		resp, body := c.get(t, s.URL+"/a")
		if body != "hello" || resp.StatusCode != 200 {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if s.n200.Load() != 1 {
		t.Fatalf("server answered %d times, want 1", s.n200.Load())
	}
	c.fake.Advance(30 * time.Second)
	resp, _ := c.get(t, s.URL+"/a")
	if resp.Header.Get("Age") != "30" {
		t.Fatalf("Age = %q, want 30", resp.Header.Get("Age"))
	}
	c.fake.Advance(30 * time.Second) // 60s: stale, no validator
	c.get(t, s.URL+"/a")
	if s.n200.Load() != 2 {
		t.Fatalf("server answered %d times after max-age, want 2", s.n200.Load())
	}
	if st := c.h.Stats(); st.HitsL1 != 3 || st.Misses != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHTTPSMaxAgeWinsForASharedCache(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, s-maxage=100")
		io.WriteString(w, "x")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	c.fake.Advance(50 * time.Second)
	c.get(t, s.URL)
	if s.n200.Load() != 1 {
		t.Fatalf("server answered %d times, want 1 (s-maxage)", s.n200.Load())
	}
}

func TestHTTPExpires(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		w.Header().Set("Date", now.Format(http.TimeFormat))
		w.Header().Set("Expires", now.Add(20*time.Second).Format(http.TimeFormat))
		io.WriteString(w, "x")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	c.fake.Advance(19 * time.Second)
	c.get(t, s.URL)
	if s.n200.Load() != 1 {
		t.Fatalf("within Expires: %d server answers, want 1", s.n200.Load())
	}
	c.fake.Advance(time.Second)
	c.get(t, s.URL)
	if s.n200.Load() != 2 {
		t.Fatalf("at Expires: %d server answers, want 2", s.n200.Load())
	}
}

func TestHTTPRevalidationWithETag(t *testing.T) {
	s := newServer(t, etagged("max-age=10", `"v1"`, "one"))
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	c.fake.Advance(11 * time.Second)
	resp, body := c.get(t, s.URL)
	if resp.StatusCode != 200 || body != "one" {
		t.Fatalf("after a 304: %d %q, want the stored 200 one", resp.StatusCode, body)
	}
	if s.n200.Load() != 1 || s.n304.Load() != 1 {
		t.Fatalf("server: %d 200s, %d 304s; want 1 and 1", s.n200.Load(), s.n304.Load())
	}
	if got := s.lastReq.Load().Header.Get("If-None-Match"); got != `"v1"` {
		t.Fatalf("If-None-Match sent = %q", got)
	}
	// The 304 made it fresh again.
	c.fake.Advance(5 * time.Second)
	c.get(t, s.URL)
	if s.n200.Load()+s.n304.Load() != 2 {
		t.Fatal("a revalidated response was not fresh again")
	}
	// A new version: 200 with the new body.
	s.set(etagged("max-age=10", `"v2"`, "two"))
	c.fake.Advance(11 * time.Second)
	if _, body := c.get(t, s.URL); body != "two" {
		t.Fatalf("after a change: %q, want two", body)
	}
	if s.n200.Load() != 2 || s.n304.Load() != 1 {
		t.Fatalf("server: %d 200s, %d 304s; want 2 and 1", s.n200.Load(), s.n304.Load())
	}
}

func TestHTTPRevalidationWithLastModified(t *testing.T) {
	lm := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", lm)
		if r.Header.Get("If-Modified-Since") == lm {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "doc") // a validator, no freshness: stored stale
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	for range 3 {
		if _, body := c.get(t, s.URL); body != "doc" {
			t.Fatalf("body %q", body)
		}
	}
	if s.n200.Load() != 1 || s.n304.Load() != 2 {
		t.Fatalf("server: %d 200s, %d 304s; want 1 and 2", s.n200.Load(), s.n304.Load())
	}
}

func TestHTTPNoCacheAlwaysRevalidates(t *testing.T) {
	s := newServer(t, etagged("no-cache", `"e"`, "body"))
	c := newHTTPCase(t, cache.HTTPConfig{})
	for range 3 {
		c.get(t, s.URL)
	}
	if s.n200.Load() != 1 || s.n304.Load() != 2 {
		t.Fatalf("server: %d 200s, %d 304s; want 1 and 2", s.n200.Load(), s.n304.Load())
	}
	// A request's no-cache does too.
	s.set(etagged("max-age=100", `"e"`, "body"))
	c.get(t, s.URL)
	c.get(t, s.URL, "Cache-Control", "no-cache")
	if s.n304.Load() != 4 {
		t.Fatalf("request no-cache: %d 304s, want 4", s.n304.Load())
	}
}

func TestHTTPNoStore(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store, max-age=100")
		w.Header().Set("ETag", `"x"`)
		io.WriteString(w, "secret")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	for range 3 {
		c.get(t, s.URL)
	}
	if s.n200.Load() != 3 {
		t.Fatalf("no-store response: %d server answers, want 3", s.n200.Load())
	}
	// A request's no-store bypasses the cache too.
	s.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		io.WriteString(w, "ok")
	})
	c.get(t, s.URL+"/r", "Cache-Control", "no-store")
	c.get(t, s.URL+"/r", "Cache-Control", "no-store")
	if s.n200.Load() != 5 {
		t.Fatalf("no-store request: %d server answers, want 5", s.n200.Load())
	}
}

func TestHTTPPrivateAndAuthorizationNotStored(t *testing.T) {
	cc := "private, max-age=100"
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cc)
		io.WriteString(w, "mine")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	c.get(t, s.URL)
	if s.n200.Load() != 2 {
		t.Fatalf("private: %d answers, want 2", s.n200.Load())
	}
	cc = "max-age=100"
	c.get(t, s.URL+"/auth", "Authorization", "Bearer a")
	c.get(t, s.URL+"/auth", "Authorization", "Bearer b")
	if s.n200.Load() != 4 {
		t.Fatalf("authorized: %d answers, want 4", s.n200.Load())
	}
}

func TestHTTPVary(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "hello in "+r.Header.Get("Accept-Language"))
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	for _, step := range []struct {
		lang, want string
		answers    int64
	}{
		{"en", "hello in en", 1},
		{"en", "hello in en", 1}, // cached
		{"fr", "hello in fr", 2}, // another variant: never the en body
		{"fr", "hello in fr", 2},
		{"en", "hello in en", 3}, // one variant per URL: fr replaced en
	} {
		if _, body := c.get(t, s.URL, "Accept-Language", step.lang); body != step.want {
			t.Fatalf("%s: %q, want %q", step.lang, body, step.want)
		}
		if s.n200.Load() != step.answers {
			t.Fatalf("%s: %d answers, want %d", step.lang, s.n200.Load(), step.answers)
		}
	}
	s.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("Vary", "*")
		io.WriteString(w, "x")
	})
	c.get(t, s.URL+"/star")
	c.get(t, s.URL+"/star")
	if s.n200.Load() != 5 {
		t.Fatal("Vary: * was stored")
	}
}

func TestHTTPStaleWhileRevalidate(t *testing.T) {
	s := newServer(t, etagged("max-age=10, stale-while-revalidate=60", `"v1"`, "one"))
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	s.set(etagged("max-age=10, stale-while-revalidate=60", `"v2"`, "two"))
	c.fake.Advance(20 * time.Second)
	if _, body := c.get(t, s.URL); body != "one" {
		t.Fatalf("within stale-while-revalidate: %q, want the stale one at once", body)
	}
	cache.WaitHTTP(c.h)
	if s.n200.Load() != 2 {
		t.Fatalf("background revalidation: %d 200s, want 2", s.n200.Load())
	}
	if _, body := c.get(t, s.URL); body != "two" {
		t.Fatalf("after the revalidation: %q, want two", body)
	}
	if st := c.h.Stats(); st.StaleWhileRevalidate != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Past the window: a blocking revalidation.
	c.fake.Advance(100 * time.Second)
	c.get(t, s.URL)
	if s.n304.Load() != 1 {
		t.Fatalf("past the window: %d 304s, want 1", s.n304.Load())
	}
}

func TestHTTPStaleIfError(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		io.WriteString(w, "good")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	s.set(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	c.fake.Advance(30 * time.Second)
	resp, body := c.get(t, s.URL)
	if resp.StatusCode != 200 || body != "good" {
		t.Fatalf("origin failing within stale-if-error: %d %q, want the stale 200", resp.StatusCode, body)
	}
	if st := c.h.Stats(); st.StaleIfError != 1 {
		t.Fatalf("stats %+v", st)
	}
	c.fake.Advance(60 * time.Second)
	if resp, _ := c.get(t, s.URL); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("past stale-if-error: %d, want the 503", resp.StatusCode)
	}
}

func TestHTTPStaleIfErrorOnTransportError(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		io.WriteString(w, "good")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	url := s.URL
	s.Close()
	c.fake.Advance(30 * time.Second)
	if _, body := c.get(t, url); body != "good" {
		t.Fatalf("server gone: %q, want the stale body", body)
	}
}

func TestHTTPUnsafeMethodInvalidates(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		io.WriteString(w, "x")
	})
	c := newHTTPCase(t, cache.HTTPConfig{})
	c.get(t, s.URL)
	resp, err := c.client.Post(s.URL, "text/plain", strings.NewReader("change"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.get(t, s.URL)
	if s.n200.Load() != 3 {
		t.Fatalf("%d answers, want 3: the POST dropped the stored GET", s.n200.Load())
	}
}

func TestHTTPLargeBodyPassesUnstored(t *testing.T) {
	big := strings.Repeat("z", 100)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		http.NewResponseController(w).Flush() // no Content-Length: the cache finds out by reading
		io.WriteString(w, big)
	})
	c := newHTTPCase(t, cache.HTTPConfig{MaxBodyBytes: 10})
	for range 2 {
		if _, body := c.get(t, s.URL); body != big {
			t.Fatalf("body of %d bytes, want %d", len(body), len(big))
		}
	}
	if s.n200.Load() != 2 {
		t.Fatal("a body over MaxBodyBytes was stored")
	}
}

func TestHTTPCallerCancellation(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := newHTTPCase(t, cache.HTTPConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	cancel()
	if _, err := c.client.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestHTTPConfigValidate(t *testing.T) {
	for _, cfg := range []cache.HTTPConfig{{MaxBodyBytes: -1}, {MaxBodyBytes: cache.MaxMaxBodyBytes + 1}, {Retain: -1}, {RevalidateTimeout: -1}} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: Validate = nil", cfg)
		}
	}
}
