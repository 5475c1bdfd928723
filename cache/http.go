package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults and bounds of [HTTPConfig].
const (
	// DefaultMaxBodyBytes is the largest response body an [HTTP] cache
	// stores; larger responses pass through unstored.
	DefaultMaxBodyBytes = 1 << 20
	// MaxMaxBodyBytes bounds MaxBodyBytes.
	MaxMaxBodyBytes = 64 << 20
	// DefaultRetain is how long past its freshness a response with a
	// validator (ETag or Last-Modified) is kept, to be revalidated with a
	// conditional request rather than fetched again.
	DefaultRetain = 10 * time.Minute
)

// HTTPConfig configures an [HTTP] cache. Its zero value is useful.
type HTTPConfig struct {
	// Name identifies the cache in telemetry.
	Name string
	// MaxEntries is the in-process tier's capacity, as Config.MaxEntries
	// (default [DefaultMaxEntries]; negative: none).
	MaxEntries int
	// Store is the shared second tier, as Config.Store (nil: none). The
	// HTTP cache is then a shared cache in RFC 9111's sense; it is treated
	// as one in any case (see [HTTP]).
	Store Store
	// MaxBodyBytes is the largest body stored. Default
	// [DefaultMaxBodyBytes], at most [MaxMaxBodyBytes].
	MaxBodyBytes int64
	// Retain is how long past its freshness (and stale windows) a
	// response with a validator is kept for revalidation. Default
	// [DefaultRetain], at most [MaxTTL].
	Retain time.Duration
	// RevalidateTimeout bounds a background revalidation
	// (stale-while-revalidate). Default [DefaultLoadTimeout], at most
	// [MaxLoadTimeout].
	RevalidateTimeout time.Duration
	// MeterProvider provides the instruments (nil: the global provider).
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad field as a [*bulwark.ConfigError], or
// nil.
func (c *HTTPConfig) Validate() error {
	v := validate.New(pkg)
	if c.MaxEntries >= 0 {
		v.Size("HTTPConfig.MaxEntries", c.MaxEntries, MaxMaxEntries)
	}
	v.Check(c.MaxBodyBytes >= 0 && c.MaxBodyBytes <= MaxMaxBodyBytes, "HTTPConfig.MaxBodyBytes", c.MaxBodyBytes,
		fmt.Sprintf("0 (default) or a value in [1, %d]", MaxMaxBodyBytes))
	v.Duration("HTTPConfig.Retain", c.Retain, MaxTTL)
	v.Duration("HTTPConfig.RevalidateTimeout", c.RevalidateTimeout, MaxLoadTimeout)
	return v.Err()
}

// HTTP is a client-side HTTP cache following the essentials of RFC 9111,
// in the tiers of a [Cache]: build one with [NewHTTP] and put its
// [HTTP.RoundTripper] in a client. It is safe for concurrent use.
//
// What it does:
//
//   - It stores responses to GET requests without Range or conditional
//     headers of the caller's own, with status 200, 203, 204, 300, 301,
//     308, 404, 405, 410, 414 or 501, whose body is at most MaxBodyBytes,
//     and that have explicit freshness (s-maxage, max-age or Expires) or a
//     validator (ETag, Last-Modified). As a shared cache it stores nothing
//     marked private or no-store (in the request or the response), and
//     nothing requested with Authorization unless the response says
//     public, s-maxage or must-revalidate. There is no heuristic
//     freshness: a response with a validator only is stored stale, to be
//     revalidated.
//   - Freshness: s-maxage, else max-age, else Expires minus Date; the age
//     follows RFC 9111 section 4.2.3 (Age header, Date, response delay).
//     A fresh response is served with an Age header and no request. A
//     response with no-cache, or a request with no-cache, max-age=0 or
//     Pragma: no-cache, is always revalidated.
//   - Validation: a stale stored response with an ETag or Last-Modified
//     is revalidated with If-None-Match / If-Modified-Since; a 304 updates
//     the stored headers and the caller gets the stored response, status
//     200 (or whatever was stored).
//   - Vary: the response is stored with the request's values of the
//     headers it names, and served only to requests with the same values
//     (one variant per URL: a new variant replaces the old). Vary: * is
//     never stored.
//   - RFC 5861: within the response's stale-while-revalidate window a
//     stale response is served at once while one background revalidation
//     per URL runs; within stale-if-error (of the response or the
//     request), a stale response is served instead of a transport error
//     or a 500, 502, 503 or 504. must-revalidate, proxy-revalidate and
//     no-cache forbid both.
//   - A successful POST, PUT, PATCH or DELETE drops the stored response
//     of its URL (in every instance, through a [Broadcaster] Store).
//
// What it does not: several variants per URL, heuristic freshness,
// max-stale and min-fresh request directives, partial content, and
// coalescing concurrent misses (two concurrent requests for one URL both
// reach the server). A response to be stored is read whole before
// RoundTrip returns.
type HTTP struct {
	c            *Cache[string, storedResponse]
	maxBody      int64
	retain       time.Duration
	revalTimeout time.Duration

	mu           sync.Mutex
	revalidating map[string]bool
}

// storedResponse is what an HTTP cache keeps per URL.
type storedResponse struct {
	Status int
	Header http.Header
	Body   []byte
	// RequestTime and ResponseTime are Unix ns, for the age computation.
	RequestTime, ResponseTime int64
	// AgeValue is the Age header the response arrived with, in seconds
	// (the header itself is not stored: it is recomputed on each serve).
	AgeValue int64
	// Vary holds the request's values of the headers the response's Vary
	// names, by canonical name.
	Vary map[string][]string
}

// NewHTTP returns an HTTP cache for cfg. It panics with a
// [*bulwark.ConfigError] if cfg.Validate fails.
func NewHTTP(cfg HTTPConfig) *HTTP {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	h := &HTTP{
		maxBody:      or(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		retain:       or(cfg.Retain, DefaultRetain),
		revalTimeout: or(cfg.RevalidateTimeout, DefaultLoadTimeout),
		revalidating: map[string]bool{},
	}
	h.c = New(Config[string, storedResponse]{
		Name:          cfg.Name,
		Load:          func(context.Context, string) (storedResponse, error) { return storedResponse{}, ErrNotFound },
		MaxEntries:    cfg.MaxEntries,
		Store:         cfg.Store,
		Jitter:        -1,
		NegativeTTL:   -1,
		LoadTimeout:   or(cfg.RevalidateTimeout, DefaultLoadTimeout),
		MeterProvider: cfg.MeterProvider,
	})
	return h
}

// Stats returns the cache's counts: HitsL1 and HitsL2 count responses
// served without a request (fresh, or stale while revalidating), Misses
// requests sent to the server, StaleWhileRevalidate and StaleIfError stale
// responses served, LoadErrors transport errors and 5xx answers.
func (h *HTTP) Stats() Stats { return h.c.Stats() }

// Close stops the background revalidations (waiting for them) and the
// invalidation subscription, and unregisters the instruments. The
// RoundTripper keeps working after Close, without the Store's
// invalidations and without background revalidation. Close is safe to
// call more than once.
func (h *HTTP) Close() error { return h.c.Close() }

// RoundTripper returns next (nil: http.DefaultTransport) wrapped by the
// cache. Every RoundTripper of one HTTP shares its tiers.
func (h *HTTP) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &httpTransport{h: h, next: next}
}

type httpTransport struct {
	h    *HTTP
	next http.RoundTripper
}

func cacheKey(req *http.Request) string { return "GET " + req.URL.String() }

// get is h.Get(k) for a k already in canonical form, as every header name
// this package writes is (TestHeaderNamesAreCanonical checks them): it
// skips Get's canonicalization of k, most of Get's cost, on every request.
func get(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (t *httpTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.h
	if req.Method != http.MethodGet {
		resp, err := t.next.RoundTrip(req)
		if err == nil && resp.StatusCode < 400 && unsafeMethod(req.Method) {
			h.c.Delete(req.Context(), cacheKey(req))
		}
		return resp, err
	}
	reqCC := parseCacheControl(req.Header)
	if reqCC.has("no-store") || get(req.Header, "Range") != "" ||
		get(req.Header, "If-None-Match") != "" || get(req.Header, "If-Modified-Since") != "" {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	key := cacheKey(req)
	stored, tier, ok := h.c.peek(ctx, key)
	if ok && !stored.matches(req) {
		ok = false
	}
	if ok {
		now := h.c.clk.Now()
		respCC := parseCacheControl(stored.Header)
		age := stored.age(now)
		life := stored.lifetime(respCC)
		noCache := reqCC.has("no-cache") || respCC.has("no-cache") || reqCC["max-age"] == "0" ||
			(len(req.Header["Cache-Control"]) == 0 && strings.EqualFold(get(req.Header, "Pragma"), "no-cache"))
		if !noCache && age < life {
			h.hit(tier)
			closeBody(req)
			return stored.response(req, age), nil
		}
		strict := noCache || respCC.has("must-revalidate") || respCC.has("proxy-revalidate")
		if swr, ok := respCC.seconds("stale-while-revalidate"); ok && !strict && age < life+swr {
			h.hit(tier)
			h.c.st.staleSWR.Add(1)
			closeBody(req)
			t.revalidate(req, key, stored)
			return stored.response(req, age), nil
		}
		resp, err := t.send(req, key, &stored)
		if !strict && failed(resp, err) {
			sie, ok1 := respCC.seconds("stale-if-error")
			if rsie, ok2 := reqCC.seconds("stale-if-error"); ok2 && (!ok1 || rsie > sie) {
				sie, ok1 = rsie, true
			}
			if ok1 && age < life+sie {
				httpx.DrainClose(resp)
				h.c.st.staleErr.Add(1)
				return stored.response(req, stored.age(h.c.clk.Now())), nil
			}
		}
		return resp, err
	}
	return t.send(req, key, nil)
}

func (h *HTTP) hit(tier int) {
	if tier == 2 {
		h.c.st.hitsL2.Add(1)
	} else {
		h.c.st.hitsL1.Add(1)
	}
}

func unsafeMethod(m string) bool {
	switch m {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// failed reports a response that stale-if-error may replace.
func failed(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	switch resp.StatusCode {
	case 500, 502, 503, 504:
		return true
	}
	return false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// send makes the request, conditional when stored has a validator, and
// stores what it may.
func (t *httpTransport) send(req *http.Request, key string, stored *storedResponse) (*http.Response, error) {
	h := t.h
	out := req
	conditional := false
	if stored != nil {
		etag, lm := get(stored.Header, "Etag"), get(stored.Header, "Last-Modified")
		if etag != "" || lm != "" {
			out = req.Clone(req.Context())
			if etag != "" {
				out.Header.Set("If-None-Match", etag)
			}
			if lm != "" {
				out.Header.Set("If-Modified-Since", lm)
			}
			conditional = true
		}
	}
	h.c.st.misses.Add(1)
	h.c.st.loads.Add(1)
	reqTime := h.c.clk.Now()
	resp, err := t.next.RoundTrip(out)
	if failed(resp, err) {
		h.c.st.loadErrors.Add(1)
	}
	if err != nil {
		return nil, err
	}
	respTime := h.c.clk.Now()
	if conditional && resp.StatusCode == http.StatusNotModified {
		httpx.DrainClose(resp)
		upd := stored.updated(resp.Header, reqTime, respTime)
		h.store(req.Context(), key, upd)
		return upd.response(req, upd.age(respTime)), nil
	}
	return h.maybeStore(req, key, resp, reqTime, respTime), nil
}

// maybeStore stores resp if it may, and returns the response for the
// caller (with its body read, if stored).
func (h *HTTP) maybeStore(req *http.Request, key string, resp *http.Response, reqTime, respTime time.Time) *http.Response {
	if !h.storable(req, resp) {
		return resp
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, h.maxBody+1))
	if err != nil || int64(len(buf)) > h.maxBody {
		// Give the caller everything, unstored: what was read, then the
		// rest (or the read error again).
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
		return resp
	}
	resp.Body.Close()
	s := storedResponse{
		Status: resp.StatusCode, Header: storableHeader(resp.Header), Body: buf,
		RequestTime: reqTime.UnixNano(), ResponseTime: respTime.UnixNano(),
		AgeValue: ageHeader(resp.Header),
	}
	if v := resp.Header["Vary"]; len(v) > 0 {
		s.Vary = map[string][]string{}
		for _, f := range v {
			for name := range strings.SplitSeq(f, ",") {
				if name = strings.TrimSpace(name); name != "" {
					name = http.CanonicalHeaderKey(name)
					s.Vary[name] = req.Header.Values(name)
				}
			}
		}
	}
	h.store(req.Context(), key, s)
	resp.Body = io.NopCloser(bytes.NewReader(buf))
	resp.ContentLength = int64(len(buf))
	return resp
}

func (h *HTTP) storable(req *http.Request, resp *http.Response) bool {
	switch resp.StatusCode {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
	default:
		return false
	}
	cc := parseCacheControl(resp.Header)
	if cc.has("no-store") || cc.has("private") {
		return false
	}
	if get(req.Header, "Authorization") != "" && !cc.has("public") && !cc.has("s-maxage") && !cc.has("must-revalidate") {
		return false
	}
	for _, v := range resp.Header["Vary"] {
		if strings.Contains(v, "*") {
			return false
		}
	}
	if resp.ContentLength > h.maxBody {
		return false
	}
	_, explicit := cc.seconds("s-maxage")
	if _, ok := cc.seconds("max-age"); ok {
		explicit = true
	}
	if get(resp.Header, "Expires") != "" {
		explicit = true
	}
	return explicit || get(resp.Header, "Etag") != "" || get(resp.Header, "Last-Modified") != ""
}

// store keeps s for its freshness lifetime plus its stale windows, and
// Retain more if it has a validator.
func (h *HTTP) store(ctx context.Context, key string, s storedResponse) {
	cc := parseCacheControl(s.Header)
	keep := s.lifetime(cc) - s.age(h.c.clk.Now())
	swr, _ := cc.seconds("stale-while-revalidate")
	sie, _ := cc.seconds("stale-if-error")
	keep += max(swr, sie)
	if get(s.Header, "Etag") != "" || get(s.Header, "Last-Modified") != "" {
		keep += h.retain
	}
	if keep <= 0 {
		return
	}
	keep = min(keep, MaxTTL)
	h.c.put(ctx, key, h.c.keepFor(s, keep)) // a Store failure is counted; the response is served anyway
}

// revalidate starts one background revalidation of key, detached from
// the caller's context and bounded by RevalidateTimeout. A panic in next
// during it is recovered and counted as a load error, since no caller is
// there to receive it.
func (t *httpTransport) revalidate(req *http.Request, key string, stored storedResponse) {
	h := t.h
	h.mu.Lock()
	if h.revalidating[key] {
		h.mu.Unlock()
		return
	}
	h.revalidating[key] = true
	h.mu.Unlock()
	done := func() {
		h.mu.Lock()
		delete(h.revalidating, key)
		h.mu.Unlock()
	}
	errc := h.c.detach(req.Context(), func(ctx context.Context) {
		defer done()
		out := req.Clone(ctx)
		out.Body, out.GetBody = nil, nil
		if resp, err := t.send(out, key, &stored); err == nil {
			httpx.DrainClose(resp)
		}
	})
	select {
	case err := <-errc: // closed: fn never ran
		if errors.Is(err, ErrClosed) {
			done()
		}
	default:
	}
}

// storableHeader copies h without the hop-by-hop fields and the length,
// which describe one transfer, not the stored representation.
func storableHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, f := range h["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Content-Length", "Age"} {
		out.Del(name)
	}
	return out
}

func (s *storedResponse) matches(req *http.Request) bool {
	for name, want := range s.Vary {
		got := req.Header.Values(name)
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
	}
	return true
}

// lifetime is the freshness lifetime (RFC 9111 section 4.2.1), for a
// shared cache; zero when no-cache or nothing explicit.
func (s *storedResponse) lifetime(cc directives) time.Duration {
	if cc.has("no-cache") {
		return 0
	}
	if d, ok := cc.seconds("s-maxage"); ok {
		return d
	}
	if d, ok := cc.seconds("max-age"); ok {
		return d
	}
	if e := get(s.Header, "Expires"); e != "" {
		exp, err := http.ParseTime(e)
		if err != nil {
			return 0
		}
		date := time.Unix(0, s.ResponseTime)
		if d, err := http.ParseTime(get(s.Header, "Date")); err == nil {
			date = d
		}
		return max(exp.Sub(date), 0)
	}
	return 0
}

// age is the current age (RFC 9111 section 4.2.3).
func (s *storedResponse) age(now time.Time) time.Duration {
	respTime := time.Unix(0, s.ResponseTime)
	apparent := time.Duration(0)
	if d, err := http.ParseTime(get(s.Header, "Date")); err == nil {
		apparent = max(respTime.Sub(d), 0)
	}
	ageValue := time.Duration(s.AgeValue) * time.Second
	delay := time.Duration(s.ResponseTime - s.RequestTime)
	initial := max(apparent, ageValue+delay)
	return initial + max(now.Sub(respTime), 0)
}

// updated merges the headers of a 304 into a copy of s (RFC 9111 section
// 4.3.4) and restarts its age.
func (s *storedResponse) updated(h http.Header, reqTime, respTime time.Time) storedResponse {
	u := *s
	u.Header = s.Header.Clone()
	for name, vals := range storableHeader(h) {
		u.Header[name] = append([]string(nil), vals...)
	}
	u.RequestTime, u.ResponseTime = reqTime.UnixNano(), respTime.UnixNano()
	u.AgeValue = ageHeader(h)
	return u
}

// ageHeader is the Age of a received response in seconds (RFC 9111
// section 5.1): 0 when absent or invalid, at most 2^31.
func ageHeader(h http.Header) int64 {
	v := h.Get("Age")
	if v == "" {
		return 0
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0
		}
	}
	a, err := strconv.ParseInt(v, 10, 64)
	if err != nil || a > 1<<31 { // too many digits for int64, or past the cap
		return 1 << 31
	}
	return a
}

// response builds the caller's response from s.
func (s *storedResponse) response(req *http.Request, age time.Duration) *http.Response {
	h := s.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", s.Status, http.StatusText(s.Status)),
		StatusCode:    s.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(s.Body)),
		ContentLength: int64(len(s.Body)),
		Request:       req,
	}
}
