package cache_test

import (
	"bytes"
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
)

// closeCounter is a real transport whose response bodies report when they
// are closed.
type closeCounter struct {
	next           http.RoundTripper
	opened, closed atomic.Int64
}

type countedBody struct {
	io.ReadCloser
	c    *closeCounter
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.c.closed.Add(1) })
	return b.ReadCloser.Close()
}

func (c *closeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil {
		c.opened.Add(1)
		resp.Body = &countedBody{ReadCloser: resp.Body, c: c}
	}
	return resp, err
}

type outHTTP struct {
	h      *cache.HTTP
	tr     *closeCounter
	client *http.Client
}

func newOutHTTP(t *testing.T, cfg cache.HTTPConfig) *outHTTP {
	t.Helper()
	h := cache.NewHTTP(cfg)
	base := &http.Transport{}
	cc := &closeCounter{next: base}
	t.Cleanup(func() {
		h.Close()
		base.CloseIdleConnections()
		if o, c := cc.opened.Load(), cc.closed.Load(); o != c {
			t.Errorf("%d response bodies opened, %d closed", o, c)
		}
	})
	return &outHTTP{h: h, tr: cc, client: &http.Client{Transport: h.RoundTripper(cc)}}
}

func (o *outHTTP) do(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := o.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

func TestOutsideHTTPLargeBodyIntact(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB
	for _, withLen := range []bool{true, false} {
		s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			if !withLen {
				http.NewResponseController(w).Flush()
			}
			w.Write(big)
		})
		o := newOutHTTP(t, cache.HTTPConfig{MaxBodyBytes: 1000})
		for range 2 {
			_, body := o.do(t, "GET", s.URL)
			if body != string(big) {
				t.Fatalf("withLen=%v: body of %d bytes, want %d intact", withLen, len(body), len(big))
			}
		}
		if n := s.n200.Load(); n != 2 {
			t.Fatalf("withLen=%v: server 200s = %d, want 2 (too large to store)", withLen, n)
		}
	}
	// At exactly MaxBodyBytes it is stored.
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(big[:1000])
	})
	o := newOutHTTP(t, cache.HTTPConfig{MaxBodyBytes: 1000})
	o.do(t, "GET", s.URL)
	if _, body := o.do(t, "GET", s.URL); len(body) != 1000 || s.n200.Load() != 1 {
		t.Fatalf("body of MaxBodyBytes: len %d, 200s %d", len(body), s.n200.Load())
	}
}

func TestOutsideHTTPCallerRequestUntouched(t *testing.T) {
	s := newServer(t, etagged("max-age=0", `"v1"`, "hello"))
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	req, _ := http.NewRequest("GET", s.URL, nil)
	req.Header.Set("X-Mine", "1")
	before := req.Header.Clone()
	resp, err := o.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" || resp.StatusCode != 200 {
		t.Fatalf("revalidated response %d %q", resp.StatusCode, b)
	}
	if s.n304.Load() != 1 {
		t.Fatalf("304s = %d, want 1", s.n304.Load())
	}
	if len(req.Header) != len(before) || req.Header.Get("If-None-Match") != "" {
		t.Fatalf("caller's request mutated: %v", req.Header)
	}
	if resp.Request != req {
		t.Fatalf("resp.Request is not the caller's request")
	}
}

func TestOutsideHTTPCallersOwnConditionalPassesThrough(t *testing.T) {
	s := newServer(t, etagged("max-age=60", `"v1"`, "hello"))
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	resp, _ := o.do(t, "GET", s.URL, "If-None-Match", `"v1"`)
	if resp.StatusCode != 200 && resp.StatusCode != 304 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The caller's own 304 must not replace or drop the stored response.
	if _, body := o.do(t, "GET", s.URL); body != "hello" {
		t.Fatalf("after the caller's conditional request: %q", body)
	}
}

func TestOutsideHTTP304UpdatesHeaders(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("X-Version", string(rune('0'+version.Load())))
		if version.Load() == 1 {
			w.Header().Set("Cache-Control", "max-age=0")
		} else {
			w.Header().Set("Cache-Control", "max-age=600")
		}
		if r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(304)
			return
		}
		io.WriteString(w, "body")
	})
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	version.Store(2)
	resp, body := o.do(t, "GET", s.URL)
	if resp.StatusCode != 200 || body != "body" || resp.Header.Get("X-Version") != "2" {
		t.Fatalf("after 304: %d %q X-Version=%q", resp.StatusCode, body, resp.Header.Get("X-Version"))
	}
	resp, body = o.do(t, "GET", s.URL)
	if s.n304.Load() != 1 || s.n200.Load() != 1 || body != "body" {
		t.Fatalf("the 304's max-age=600 not used: 200s %d 304s %d", s.n200.Load(), s.n304.Load())
	}
	if resp.Header.Get("Age") == "" {
		t.Fatalf("no Age header on a cached response")
	}
}

func TestHTTPUpstreamAgeCountsTowardsStaleness(t *testing.T) {
	// max-age=60 with Age: 120 from upstream: already stale, not served.
	s := newServer(t, fixed("x", "Cache-Control", "max-age=60", "Age", "120"))
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	o.do(t, "GET", s.URL)
	if n := s.n200.Load(); n != 2 {
		t.Fatalf("200s = %d, want 2", n)
	}
}

func TestOutsideHTTPDirectiveSpelling(t *testing.T) {
	for _, tc := range []struct {
		cc     []string
		stored bool
	}{
		{[]string{"Max-Age=60"}, true},
		{[]string{"public", "max-age=60"}, true},
		{[]string{`max-age="60"`}, true},
		{[]string{"max-age=99999999999999999999"}, true},
		{[]string{"max-age=60", "no-store"}, false},
		{[]string{"max-age=60, s-maxage=0"}, false},
		{[]string{"max-age=-5"}, false},
		{[]string{"No-Store, max-age=60"}, false},
		{[]string{"max-age=60, private"}, false},
	} {
		s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			for _, v := range tc.cc {
				w.Header().Add("Cache-Control", v)
			}
			io.WriteString(w, "x")
		})
		o := newOutHTTP(t, cache.HTTPConfig{})
		o.do(t, "GET", s.URL)
		o.do(t, "GET", s.URL)
		want := int64(2)
		if tc.stored {
			want = 1
		}
		if n := s.n200.Load(); n != want {
			t.Errorf("Cache-Control %q: 200s = %d, want %d", tc.cc, n, want)
		}
	}
}

func TestOutsideHTTPRequestDirectives(t *testing.T) {
	s := newServer(t, fixed("x", "Cache-Control", "max-age=60"))
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL, "Cache-Control", "no-store")
	o.do(t, "GET", s.URL)
	if n := s.n200.Load(); n != 2 {
		t.Fatalf("request no-store stored the response: 200s %d", n)
	}
	o.do(t, "GET", s.URL)
	if n := s.n200.Load(); n != 2 {
		t.Fatalf("not served from cache: 200s %d", n)
	}
	o.do(t, "GET", s.URL, "Cache-Control", "no-cache")
	o.do(t, "GET", s.URL, "Pragma", "no-cache")
	o.do(t, "GET", s.URL, "Cache-Control", "max-age=0")
	if n := s.n200.Load(); n != 5 {
		t.Fatalf("no-cache / Pragma / max-age=0 requests: 200s %d, want 5", n)
	}
}

func TestOutsideHTTPAuthorization(t *testing.T) {
	for cc, stored := range map[string]bool{"max-age=60": false, "public, max-age=60": true, "s-maxage=60": true} {
		s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", cc)
			io.WriteString(w, "x")
		})
		o := newOutHTTP(t, cache.HTTPConfig{})
		o.do(t, "GET", s.URL, "Authorization", "Bearer x")
		o.do(t, "GET", s.URL, "Authorization", "Bearer x")
		want := int64(2)
		if stored {
			want = 1
		}
		if n := s.n200.Load(); n != want {
			t.Errorf("%q with Authorization: 200s %d, want %d", cc, n, want)
		}
	}
}

func TestOutsideHTTPHeadAndUnsafe(t *testing.T) {
	var posts atomic.Int64
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "POST":
			b, _ := io.ReadAll(r.Body)
			if string(b) != "payload" {
				w.WriteHeader(400)
				return
			}
			posts.Add(1)
			w.WriteHeader(204)
			return
		case "DELETE":
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "x")
	})
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	resp, body := o.do(t, "HEAD", s.URL)
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	// A failed DELETE does not invalidate.
	o.do(t, "DELETE", s.URL)
	before := s.n200.Load()
	o.do(t, "GET", s.URL)
	if s.n200.Load() != before {
		t.Fatalf("a failed DELETE dropped the stored response")
	}
	resp, err := o.client.Post(s.URL, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if posts.Load() != 1 {
		t.Fatalf("POST body did not reach the server")
	}
	before = s.n200.Load()
	o.do(t, "GET", s.URL)
	if s.n200.Load() != before+1 {
		t.Fatalf("a successful POST did not drop the stored response")
	}
}

func TestOutsideHTTPCachedResponseIsolated(t *testing.T) {
	s := newServer(t, fixed("hello", "Cache-Control", "max-age=60", "X-A", "a"))
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	resp, _ := o.do(t, "GET", s.URL)
	resp.Header.Set("X-A", "changed")
	resp.Header.Set("X-B", "new")
	resp, body := o.do(t, "GET", s.URL)
	if resp.Header.Get("X-A") != "a" || resp.Header.Get("X-B") != "" || body != "hello" {
		t.Fatalf("a caller's change to a served response leaked into the cache: %v %q", resp.Header, body)
	}
	if resp.ContentLength != 5 {
		t.Fatalf("ContentLength %d", resp.ContentLength)
	}
	// Concurrent readers.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			resp, err := o.client.Get(s.URL)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "hello" {
				t.Errorf("body %q", b)
			}
		})
	}
	wg.Wait()
}

func TestOutsideHTTPStaleIfErrorByAge(t *testing.T) {
	var fail atomic.Bool
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(503)
			io.WriteString(w, "down")
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
		w.Header().Set("Age", "5")
		io.WriteString(w, "good")
	})
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	fail.Store(true)
	resp, body := o.do(t, "GET", s.URL)
	if resp.StatusCode != 200 || body != "good" {
		t.Fatalf("stale-if-error: %d %q", resp.StatusCode, body)
	}
	if st := o.h.Stats(); st.StaleIfError != 1 {
		t.Fatalf("StaleIfError %d", st.StaleIfError)
	}
}

func TestOutsideHTTPStaleWhileRevalidateByAge(t *testing.T) {
	reval := make(chan struct{}, 4)
	var n atomic.Int64
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=600")
		w.Header().Set("Age", "5")
		w.Header().Set("ETag", `"e"`)
		if v > 1 {
			defer func() { reval <- struct{}{} }()
		}
		if r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(304)
			return
		}
		io.WriteString(w, "good")
	})
	o := newOutHTTP(t, cache.HTTPConfig{})
	o.do(t, "GET", s.URL)
	resp, body := o.do(t, "GET", s.URL)
	if resp.StatusCode != 200 || body != "good" {
		t.Fatalf("stale-while-revalidate: %d %q", resp.StatusCode, body)
	}
	select {
	case <-reval:
	case <-time.After(10 * time.Second): // a bound, not a wait for an effect
		t.Fatal("no background revalidation")
	}
	if o.h.Stats().StaleWhileRevalidate != 1 {
		t.Fatalf("stats %+v", o.h.Stats())
	}
}

func TestOutsideHTTPUnreadBodyOfStoredResponse(t *testing.T) {
	// A caller closes a cacheable response without reading it.
	s := newServer(t, fixed("hello", "Cache-Control", "max-age=60"))
	o := newOutHTTP(t, cache.HTTPConfig{})
	resp, err := o.client.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, body := o.do(t, "GET", s.URL)
	if body != "hello" {
		t.Fatalf("%q", body)
	}
}

func TestOutsideHTTPCancelledRequest(t *testing.T) {
	s := newServer(t, fixed("hello", "Cache-Control", "max-age=60"))
	o := newOutHTTP(t, cache.HTTPConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	if _, err := o.client.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	_ = httptest.NewRecorder
}

// fixed answers every request with body and the header pairs kv.
func fixed(body string, kv ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Set(kv[i], kv[i+1])
		}
		io.WriteString(w, body)
	}
}

func TestOutsideHTTPConfigValidate(t *testing.T) {
	for name, cfg := range map[string]cache.HTTPConfig{
		"neg MaxBodyBytes":  {MaxBodyBytes: -1},
		"huge MaxBodyBytes": {MaxBodyBytes: cache.MaxMaxBodyBytes + 1},
		"neg Retain":        {Retain: -1},
		"huge Retain":       {Retain: cache.MaxTTL + 1},
		"neg Revalidate":    {RevalidateTimeout: -1},
		"huge Revalidate":   {RevalidateTimeout: cache.MaxLoadTimeout + 1},
		"huge MaxEntries":   {MaxEntries: cache.MaxMaxEntries + 1},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate = nil", name)
		}
	}
}

func TestOutsideHTTPVaryVariants(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	})
	o := newOutHTTP(t, cache.HTTPConfig{})
	if _, b := o.do(t, "GET", s.URL, "Accept-Language", "fr"); b != "lang=fr" {
		t.Fatal(b)
	}
	if _, b := o.do(t, "GET", s.URL, "Accept-Language", "de"); b != "lang=de" {
		t.Fatalf("served the fr variant to a de request: %q", b)
	}
	if _, b := o.do(t, "GET", s.URL, "Accept-Language", "de"); b != "lang=de" || s.n200.Load() != 2 {
		t.Fatalf("de variant not served from cache: %q, 200s %d", b, s.n200.Load())
	}
	if _, b := o.do(t, "GET", s.URL); b != "lang=" {
		t.Fatalf("served a variant to a request without the header: %q", b)
	}
}
