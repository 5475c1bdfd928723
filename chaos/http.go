package chaos

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/bulwark-go/bulwark/internal/httpx"
)

// FaultHeader is the response header that names the fault behind an
// injected HTTP error, so that a drill's report can tell injected errors
// from real ones.
const FaultHeader = "Bulwark-Chaos-Fault"

// RoundTripper returns an [http.RoundTripper] that injects faults into the
// requests it sends to next (nil means [http.DefaultTransport]). A request
// no fault hits goes to next untouched; a disabled injector costs one
// atomic load. For a request that is hit it first waits the fault's
// latency (returning context.Cause of the request's context if that ends
// first, without sending), then:
//
//   - None: sends the request;
//   - Error: returns a synthesised response with Fault.HTTPStatus, a
//     plain-text body and the [FaultHeader] header, without sending;
//   - Abort: returns a [*FaultError] without sending, as a refused or
//     reset connection would;
//   - Drop: sends the request, drains and closes the response, and returns
//     a *FaultError: the server did its work, the client never learns it.
//
// The request body is closed whenever the request is not sent.
func (i *Injector) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &roundTripper{i: i, next: next}
}

type roundTripper struct {
	i    *Injector
	next http.RoundTripper
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if !rt.i.enabled.Load() {
		return rt.next.RoundTrip(req)
	}
	p, ok := rt.i.pick(req.URL.Path, req.Method, headerValue(req.Header, rt.i.header), true)
	if !ok {
		return rt.next.RoundTrip(req)
	}
	if err := rt.i.sleep(req.Context(), p.delay); err != nil {
		closeBody(req)
		return nil, err
	}
	switch p.action {
	case Error:
		closeBody(req)
		return errorResponse(req, p), nil
	case Abort:
		closeBody(req)
		return nil, &FaultError{Fault: p.name, Action: Abort}
	case Drop:
		resp, err := rt.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		httpx.DrainClose(resp)
		return nil, &FaultError{Fault: p.name, Action: Drop}
	}
	return rt.next.RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func errorMessage(p plan) string {
	return "chaos: injected fault " + p.name + "\n"
}

func errorResponse(req *http.Request, p plan) *http.Response {
	msg := errorMessage(p)
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set(FaultHeader, p.name)
	return &http.Response{
		Status:        strconv.Itoa(p.status) + " " + http.StatusText(p.status),
		StatusCode:    p.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(msg)),
		ContentLength: int64(len(msg)),
		Request:       req,
	}
}

// Handler returns server-side middleware that injects faults into the
// requests next serves. A request no fault hits goes to next untouched
// (the ResponseWriter is passed through as is); a disabled injector costs
// one atomic load. For a request that is hit it first waits the fault's
// latency (returning without an answer if the client goes away), then:
//
//   - None: serves the request;
//   - Error: answers Fault.HTTPStatus with a plain-text body and the
//     [FaultHeader] header, without calling next;
//   - Abort: closes the connection without an answer and without calling
//     next (hijack and close over HTTP/1; over HTTP/2, where a connection
//     cannot be hijacked, it panics with [http.ErrAbortHandler], which
//     net/http turns into a stream reset without logging);
//   - Drop: calls next with a writer that discards the response (it
//     offers http.Flusher, which does nothing), then closes the connection
//     as Abort does: the handler did its work, the client gets a
//     connection error.
//
// A nil next panics.
func (i *Injector) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("chaos: Injector.Handler called with a nil next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !i.enabled.Load() {
			next.ServeHTTP(w, r)
			return
		}
		p, ok := i.pick(r.URL.Path, r.Method, headerValue(r.Header, i.header), true)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if err := i.sleep(r.Context(), p.delay); err != nil {
			return
		}
		switch p.action {
		case Error:
			w.Header().Set(FaultHeader, p.name)
			http.Error(w, strings.TrimSuffix(errorMessage(p), "\n"), p.status)
		case Abort:
			abort(w)
		case Drop:
			next.ServeHTTP(&sink{h: http.Header{}}, r)
			abort(w)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// abort closes the client's connection without an answer.
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not a clean close: the client sees a broken connection
	}
	_ = conn.Close()
}

// sink is the ResponseWriter of a dropped response: it keeps the headers
// the handler sets (so Header never returns nil) and discards the rest.
type sink struct{ h http.Header }

func (s *sink) Header() http.Header         { return s.h }
func (s *sink) Write(p []byte) (int, error) { return len(p), nil }
func (s *sink) WriteHeader(int)             {}
func (s *sink) Flush()                      {}

var _ http.Flusher = (*sink)(nil)

// headerValue is h.Get(key) for a key already in canonical form.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
