package degrade

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// FallbackHeader marks a response that a [Fallback] served in place of
// the real one; its value is the [Reason] ("breaker", "timeout", ...).
const FallbackHeader = "Bulwark-Fallback"

// storedResponse is an HTTP last good value.
type storedResponse struct {
	status int
	header http.Header
	body   []byte
}

func (s *storedResponse) response(req *http.Request) *http.Response {
	return &http.Response{
		Status:        strconv.Itoa(s.status) + " " + http.StatusText(s.status),
		StatusCode:    s.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        s.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: int64(len(s.body)),
		Request:       req,
	}
}

// httpKey is the last good key of a request, for GET only: its URL and,
// when it carries credentials (Authorization, Cookie), a SHA-256 digest of
// them, so that one user's last good response is never served to another
// and no secret is kept as a key.
func httpKey(req *http.Request) (string, bool) {
	if req.Method != http.MethodGet {
		return "", false
	}
	auth, cookie := req.Header.Values("Authorization"), req.Header.Values("Cookie")
	if len(auth) == 0 && len(cookie) == 0 {
		return req.URL.String(), true
	}
	h := sha256.New()
	for _, vs := range [2][]string{auth, cookie} {
		for _, v := range vs {
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return req.URL.String() + " " + hex.EncodeToString(h.Sum(nil)), true
}

// keepable reports whether a response with headers h may be kept as a last
// good response: not when it sets a cookie (replaying it would hand a
// session to whoever's request fails next) or says no-store.
func keepable(h http.Header) bool {
	if len(h.Values("Set-Cookie")) > 0 {
		return false
	}
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				return false
			}
		}
	}
	return true
}

// fallbackResponse returns the response to serve for a failed req, or nil.
func (f *Fallback) fallbackResponse(req *http.Request, reason Reason, err error) *http.Response {
	resp, ev := f.buildFallback(req, reason, err)
	if resp != nil {
		f.count(req.Context(), ev)
	}
	return resp
}

// buildFallback is fallbackResponse without counting it: it returns the
// fallback response (nil when there is none) and the event to count once
// it is served.
func (f *Fallback) buildFallback(req *http.Request, reason Reason, err error) (*http.Response, Event) {
	if f.lg != nil {
		if key, ok := httpKey(req); ok {
			if v, ok := f.lg.load(key); ok {
				if sr, ok := v.(*storedResponse); ok {
					resp := sr.response(req)
					resp.Header.Set(FallbackHeader, string(reason))
					return resp, Event{Key: key, Reason: reason, Source: SourceLastGood, Err: err}
				}
			}
		}
	}
	if f.cfg.HTTP == nil {
		return nil, Event{}
	}
	resp := f.cfg.HTTP(req, reason, err)
	if resp == nil {
		return nil, Event{}
	}
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	resp.Header.Set(FallbackHeader, string(reason))
	resp.Request = req
	return resp, Event{Reason: reason, Source: SourceFallback, Err: err}
}

func (f *Fallback) judgeHTTP(ctx context.Context, resp *http.Response, err error) bulwark.Outcome {
	if f.cfg.ClassifyHTTP != nil {
		return f.cfg.ClassifyHTTP(ctx, resp, err)
	}
	if err != nil {
		return f.judge(ctx, err)
	}
	return outcome.HTTP(ctx, resp, nil)
}

// RoundTripper returns an [http.RoundTripper] that sends each request to
// next (nil means [http.DefaultTransport]) and, when the round trip fails
// (by Config.ClassifyHTTP, or bulwark's HTTP rules: a transport error, a
// 5xx except 501, 408, 429; a caller's cancellation gets no fallback), or
// when Config.Switch is off (then the request is not sent), returns a
// fallback response instead: the last good response to a GET of the same
// URL with the same credentials (when Config.MaxAge keeps them: a 200
// without Set-Cookie or Cache-Control: no-store whose body the caller read
// to the end within MaxBody), else Config.HTTP's response. A fallback
// response carries the [FallbackHeader] header with the [Reason]; the
// failed response is drained and closed. With no fallback to serve, the
// failure (or, for a switched-off feature, ErrSwitchedOff) is returned
// as is.
func (f *Fallback) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &fallbackRT{f: f, next: next}
}

type fallbackRT struct {
	f    *Fallback
	next http.RoundTripper
}

func (rt *fallbackRT) RoundTrip(req *http.Request) (*http.Response, error) {
	f := rt.f
	if f.cfg.Switch != nil && !f.cfg.Switch.On() {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		if fb := f.fallbackResponse(req, ReasonSwitch, ErrSwitchedOff); fb != nil {
			return fb, nil
		}
		return nil, ErrSwitchedOff
	}
	resp, err := rt.next.RoundTrip(req)
	switch f.judgeHTTP(req.Context(), resp, err) {
	case bulwark.Success:
		if f.lg != nil && err == nil && resp.StatusCode == http.StatusOK {
			if key, ok := httpKey(req); ok && resp.ContentLength <= int64(f.cfg.MaxBody) && keepable(resp.Header) {
				resp.Body = &captureBody{ReadCloser: resp.Body, f: f, key: key, status: resp.StatusCode, header: resp.Header.Clone()}
			}
		}
		return resp, err
	case bulwark.Neutral:
		return resp, err
	}
	if fb := f.fallbackResponse(req, ReasonOf(err), err); fb != nil {
		httpx.DrainClose(resp)
		return fb, nil
	}
	return resp, err
}

// captureBody keeps what the caller reads, and stores it as the last good
// response once the caller has read it all.
type captureBody struct {
	io.ReadCloser
	f      *Fallback
	key    string
	status int
	header http.Header
	buf    []byte
	over   bool
}

func (c *captureBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if !c.over {
		if len(c.buf)+n > c.f.cfg.MaxBody {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, p[:n]...)
		}
	}
	if err == io.EOF && !c.over {
		c.f.lg.store(c.key, &storedResponse{status: c.status, header: c.header, body: c.buf})
		c.over = true // store once
	}
	return n, err
}

// Handler returns server-side middleware that serves a fallback when next
// fails: when next writes a failure status (by Config.ClassifyHTTP, or
// 5xx except 501, 408 and 429), the fallback is chosen at once: the last
// good response to a GET of the same URL with the same credentials (when
// Config.MaxAge keeps them: a 200 within MaxBody, without Set-Cookie or
// Cache-Control: no-store), else
// Config.HTTP's response (so Config.HTTP runs while next is still
// running). If there is one, what next writes is discarded (its headers
// too) and the fallback, marked with [FallbackHeader], is written when
// next returns; if there is none, next's response goes through as it is
// written, whole. A response with any other status streams through
// untouched (Flush works; headers are passed on when next writes its
// status). While Config.Switch is off, next is not called: the fallback is
// served, or 503 Service Unavailable with ErrSwitchedOff's message. A
// panic in next goes on, nothing served (a fallback chosen before the
// panic is discarded, and not counted). A nil next panics.
func (f *Fallback) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("degrade: Fallback.Handler called with a nil next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.cfg.Switch != nil && !f.cfg.Switch.On() {
			if fb := f.fallbackResponse(r, ReasonSwitch, ErrSwitchedOff); fb != nil {
				writeResponse(w, fb)
				return
			}
			http.Error(w, ErrSwitchedOff.Error(), http.StatusServiceUnavailable)
			return
		}
		g := &guardWriter{w: w, f: f, r: r}
		if f.lg != nil && r.Method == http.MethodGet {
			g.capture = true
		}
		var ww http.ResponseWriter = g
		if _, ok := w.(http.Hijacker); ok {
			ww = hijackGuard{g}
		}
		defer func() {
			if g.fb != nil && !g.served {
				_ = g.fb.Body.Close() // next panicked
			}
		}()
		next.ServeHTTP(ww, r)
		switch {
		case g.fb != nil:
			for k := range w.Header() {
				delete(w.Header(), k)
			}
			g.served = true
			writeResponse(w, g.fb)
			f.count(r.Context(), g.ev)
		case g.capture && !g.over && g.code == http.StatusOK && keepable(g.sent):
			key, _ := httpKey(r)
			f.lg.store(key, &storedResponse{status: g.code, header: g.sent, body: g.body})
		}
	})
}

func writeResponse(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, MaxLastGoodBody))
}

// guardWriter passes a response through unless its status is a failure
// for which a fallback exists: then it discards what next writes, and the
// handler serves fb when next returns.
type guardWriter struct {
	w       http.ResponseWriter
	f       *Fallback
	r       *http.Request
	code    int
	fb      *http.Response // the fallback chosen for a failure status
	ev      Event          // fb's event, counted once it is served
	served  bool
	sent    http.Header // next's headers of a passed response, when capturing
	body    []byte      // captured body
	capture bool
	over    bool
}

func (g *guardWriter) Header() http.Header { return g.w.Header() }

func (g *guardWriter) WriteHeader(code int) {
	if g.code != 0 || (code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols) {
		if g.code == 0 {
			g.w.WriteHeader(code) // 1xx informational: pass on
		}
		return
	}
	g.code = code
	if httpx.ServerOutcome(g.r, code, g.w.Header(), g.f.cfg.ClassifyHTTP) == bulwark.Failure {
		if g.fb, g.ev = g.f.buildFallback(g.r, ReasonStatus, nil); g.fb != nil {
			return
		}
		g.capture = false // a failure is never a last good response
	}
	if g.capture {
		g.sent = g.w.Header().Clone()
	}
	g.w.WriteHeader(code)
}

func (g *guardWriter) Write(p []byte) (int, error) {
	if g.code == 0 {
		g.WriteHeader(http.StatusOK)
	}
	if g.fb != nil {
		return len(p), nil
	}
	if g.capture && !g.over {
		if len(g.body)+len(p) > g.f.cfg.MaxBody {
			g.over, g.body = true, nil
		} else {
			g.body = append(g.body, p...)
		}
	}
	return g.w.Write(p)
}

// Flush sends the response so far; a flush before any status means 200.
func (g *guardWriter) Flush() { _ = g.FlushError() }

// FlushError is Flush for http.ResponseController.
func (g *guardWriter) FlushError() error {
	if g.code == 0 {
		g.WriteHeader(http.StatusOK)
	}
	if g.fb != nil {
		return nil
	}
	return http.NewResponseController(g.w).Flush()
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.w }

type hijackGuard struct{ *guardWriter }

// Hijack passes the hijack on; the handler owns the connection.
func (h hijackGuard) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.w.(http.Hijacker).Hijack()
}

// Handler returns server-side middleware that sheds load: each request
// is ranked (Config.Criticality, else Routes, else the criticality
// header, else Default) and admitted or rejected by [Shedder.Allow]. A
// rejected request is answered with ShedderConfig.RejectStatus (503 by
// default) and a Retry-After header (see [WriteRejection]) without
// calling next. An admitted request is passed to next with the
// ResponseWriter untouched, and counted done when next returns (or
// panics). A nil next panics.
func (s *Shedder) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("degrade: Shedder.Handler called with a nil next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.criticality(r)
		t, err := s.Allow(c)
		if err != nil {
			s.onShed(r.Context(), c, err)
			writeRejection(w, err, s.cfg.RejectStatus)
			return
		}
		defer s.Done(t)
		next.ServeHTTP(w, r)
	})
}

// RoundTripper returns an [http.RoundTripper] that throttles the requests
// it sends to next (nil means [http.DefaultTransport]): a request the
// throttler rejects is not sent (its body is closed) and RoundTrip returns
// the [*ThrottleError]; the outcome of every request sent is recorded,
// judged by ThrottlerConfig.ClassifyHTTP or bulwark's HTTP rules (a 5xx
// except 501, 408, 429 or a transport error is a request the backend did
// not accept; a caller's cancellation is not counted). A panic in next is
// recorded as not accepted and goes on.
func (t *Throttler) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &throttleRT{t: t, next: next}
}

type throttleRT struct {
	t    *Throttler
	next http.RoundTripper
}

func (rt *throttleRT) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	t := rt.t
	if err := t.Allow(); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	returned := false
	defer outcome.OnAbort(&returned, func() { t.Done(bulwark.Failure) })
	resp, err = rt.next.RoundTrip(req)
	returned = true
	ctx := req.Context()
	var o bulwark.Outcome
	switch {
	case t.cfg.ClassifyHTTP != nil:
		o = t.cfg.ClassifyHTTP(ctx, resp, err)
	case err != nil:
		o = t.classify(ctx, err)
	default:
		o = outcome.HTTP(ctx, resp, nil)
	}
	t.Done(o)
	return resp, err
}

// WriteRejection answers a request that a Shedder or Throttler rejected,
// or that a switched-off feature refused: 503 Service Unavailable, a
// Retry-After header when the error knows a wait (rounded up to whole
// seconds), and the error's message as a plain-text body. It reports
// false, writing nothing, for any other error.
func WriteRejection(w http.ResponseWriter, err error) bool {
	return writeRejection(w, err, http.StatusServiceUnavailable)
}

func writeRejection(w http.ResponseWriter, err error, status int) bool {
	if !errors.Is(err, ErrShed) && !errors.Is(err, ErrThrottled) && !errors.Is(err, ErrSwitchedOff) {
		return false
	}
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	var ra retryAfterer
	if errors.As(err, &ra) {
		httpx.SetRetryAfter(w.Header(), ra.RetryAfter())
	}
	http.Error(w, err.Error(), status)
	return true
}

// AdminHandler returns an HTTP handler to list and flip the switches,
// for an operator's console. Every request must pass authorize first
// (a caller-supplied check of a token, a client certificate, a network);
// one that does not gets 403 Forbidden. Then:
//
//   - GET answers 200 with the JSON object {"switches": {"name": true, ...}};
//   - POST with the form or query values name and on ("true" or
//     "false") sets that switch (through the Store, if any) and answers
//     200 with the new list; 400 Bad Request for a missing name, an on
//     that is not a boolean, or a name the registry cannot hold; 503
//     Service Unavailable with the Store's error if it failed;
//   - any other method gets 405 Method Not Allowed.
//
// It panics if authorize is nil: an admin endpoint without authorisation
// is never what anyone meant.
func (s *Switches) AdminHandler(authorize func(*http.Request) bool) http.Handler {
	if authorize == nil {
		panic("degrade: Switches.AdminHandler called with a nil authorize")
	}
	list := func(w http.ResponseWriter) {
		body, _ := json.Marshal(map[string]map[string]bool{"switches": s.List()})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(append(body, '\n'))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorize(r) {
			http.Error(w, "degrade: forbidden", http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			list(w)
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "degrade: bad form: "+err.Error(), http.StatusBadRequest)
				return
			}
			name := r.Form.Get("name")
			on, err := strconv.ParseBool(r.Form.Get("on"))
			if name == "" || err != nil {
				http.Error(w, `degrade: want the values name and on ("true" or "false")`, http.StatusBadRequest)
				return
			}
			if err := s.Set(r.Context(), name, on); err != nil {
				code := http.StatusServiceUnavailable
				if errors.Is(err, ErrTooManySwitches) {
					code = http.StatusBadRequest
				}
				http.Error(w, err.Error(), code)
				return
			}
			list(w)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			http.Error(w, "degrade: method not allowed", http.StatusMethodNotAllowed)
		}
	})
}
