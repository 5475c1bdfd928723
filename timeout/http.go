package timeout

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// RoundTripper returns an [http.RoundTripper] that gives each request it
// sends through next (nil means [http.DefaultTransport]) Config.Timeout to
// complete, response body included: the attempt's context lives until the
// caller closes the body or the time runs out, whichever comes first. Put
// it under a retry layer and it is a per-attempt timeout; above one, a
// per-call timeout.
//
// When the request's own context has an earlier deadline, that deadline
// is the one that counts and nothing is derived. Otherwise, once the time
// runs out:
//
//   - before the response headers arrive, RoundTrip returns a
//     [*TimeoutError] (errors.Is ErrTimeout and context.DeadlineExceeded;
//     through an http.Client, a *url.Error whose Timeout() is true and
//     which errors.Is still matches);
//   - while the caller reads the body, Read returns a *TimeoutError.
//
// A request cancelled by its caller fails with the caller's error, never
// ErrTimeout. A 101 Switching Protocols response ends the attempt: it is
// returned as it is (its Body the io.ReadWriteCloser net/http gives an
// upgrade), and the upgraded connection is the caller's, with no limit.
//
// A 101 Switching Protocols response (a WebSocket or h2c upgrade) comes
// back with its body still an io.ReadWriteCloser, the upgraded connection.
// The limit covers the upgrade itself, not the connection's later life:
// net/http hands the connection over with the response, and cancelling
// the attempt's context no longer reaches it.
//
// Unless Config.Header is "-", the request is sent with the header
// (default Request-Timeout-Ms) set to the time it has left, in whole
// milliseconds rounded down: the smaller of Config.Timeout and the time to
// the request's deadline. The caller's request is never modified: the
// header is set in a copy of the request with a header map of its own
// (net/http's contract; the rest of the request is shared, as
// Request.WithContext shares it), and a header of that
// name the caller set, under any spelling of its key, is replaced in the
// clone: the next hop gets one value.
//
// RoundTripper panics at once if t is nil.
func (t *Timeout) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if t == nil {
		panic("timeout: Timeout.RoundTripper called on a nil *Timeout")
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return &roundTripper{t: t, next: next}
}

type roundTripper struct {
	t    *Timeout
	next http.RoundTripper
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	t := rt.t
	ctx := req.Context()
	now := clock.Real.Now()
	deadline := now.Add(t.limit)
	var a *attempt
	if dl, ok := ctx.Deadline(); ok && !dl.After(deadline) {
		deadline = dl
	} else {
		a = &attempt{t: t, ctx: ctx}
		if quiet(ctx) {
			a.c.parent, a.c.deadline, a.c.cause = ctx, deadline, t.causeCtx
			a.c.quiet.Store(true)
			a.actx = &a.c
		} else {
			// A caller's context that can be cancelled must be watched
			// from the start, to tell which ended first; a context of
			// context's own does that cheapest (a *cancelCtx parent
			// keeps it in a map, with no AfterFunc).
			a.actx, a.cancel = context.WithDeadlineCause(ctx, deadline, t.cause)
		}
	}
	actx := ctx
	if a != nil {
		actx = a.actx
	}
	out := req
	switch {
	case t.header != "":
		out = withHeader(req, actx, t.header, t.budget(deadline.Sub(now)))
	case a != nil:
		out = req.WithContext(actx)
	}
	if a == nil {
		return rt.next.RoundTrip(out)
	}
	returned := false
	defer outcome.OnAbort(&returned, a.release)
	resp, err := rt.next.RoundTrip(out)
	returned = true
	if err != nil {
		err = t.judge(ctx, actx, err)
		a.release()
		return nil, err
	}
	if resp == nil || resp.Body == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		// A 101's connection is the caller's now, its Body an
		// io.ReadWriteCloser that a wrapper would hide: the attempt
		// ended with the switch.
		a.release()
		return resp, nil
	}
	a.rc = resp.Body
	resp.Body = httpx.KeepWrite(resp.Body, a)
	return resp, nil
}

// budget returns the header value for a budget of d: the one made at New
// for the whole limit (the common case, which then allocates nothing),
// else a new one.
func (t *Timeout) budget(d time.Duration) []string {
	if d == t.limit {
		return t.budgetValue
	}
	return []string{formatBudget(d)}
}

// withHeader returns a shallow copy of req with ctx and a header map of
// its own in which the canonical key k holds v alone: the values the
// caller may have set under other spellings of k are left out (header
// names are case-insensitive, and net/http sends every key of the map,
// so the next hop would see a repeated header, and ignore it). The other
// keys share the caller's value slices, capped so that an append by a
// layer below copies them (httpx.HeaderWith); nothing else of req is
// modified by a RoundTripper (net/http's contract), so nothing else needs
// a copy.
func withHeader(req *http.Request, ctx context.Context, k string, v []string) *http.Request {
	out := req.WithContext(ctx)
	out.Header = httpx.HeaderWith(req.Header, k, v)
	return out
}

// attempt is one attempt RoundTripper derived a context for: the context
// (under a caller's context that cannot be cancelled, c, made as Do makes
// its own: lazily, in one allocation with the rest of the attempt; else
// context.WithDeadlineCause's) and, once the response has come, its body,
// which ends the context when closed and turns the error of a Read cut
// short by the deadline into a *TimeoutError.
type attempt struct {
	c      callCtx            // the attempt's context under a caller's that cannot be cancelled
	actx   context.Context    // the attempt's context: &c, or context's own
	cancel context.CancelFunc // ends actx when it is context's own
	t      *Timeout
	ctx    context.Context // the caller's
	rc     io.ReadCloser   // the response's body
	seen   bool            // the timeout was counted
}

// release ends the attempt's context.
func (a *attempt) release() {
	if a.cancel != nil {
		a.cancel()
		return
	}
	a.c.release()
}

func (a *attempt) Read(p []byte) (int, error) {
	n, err := a.rc.Read(p)
	if err != nil && err != io.EOF && a.t.expired(a.ctx, a.actx) {
		if !a.seen {
			a.seen = true
			a.t.timedOut(a.ctx, a.t.limit)
		}
		if err != error(a.t.cause) {
			err = &TimeoutError{Limit: a.t.limit, Err: err}
		}
	}
	return n, err
}

// Close closes the body and ends the attempt's context.
func (a *attempt) Close() error {
	err := a.rc.Close()
	a.release()
	return err
}

// Handler returns server-side middleware that gives each request the
// smaller of Config.Timeout and the budget its caller propagated in
// Config.Header (see the package doc for the format; a malformed or
// repeated header is ignored): next runs with a request context that ends
// then, its cause a [*TimeoutError].
//
// Nothing is buffered, and http.Flusher, http.Hijacker (when the server's
// writer, or one down its Unwrap chain, has it) and
// http.ResponseController work as without the middleware; a hijack
// through the controller goes through the middleware too. next's header map is its own until it writes
// its status: the middleware can answer in its place without sharing a
// map with it. When the time runs out:
//
//   - If next has written nothing yet, the client gets 504 Gateway
//     Timeout at once, with a plain-text body naming the limit, a
//     Content-Length and, over HTTP/1, Connection: close. next's later
//     writes and flushes fail with [http.ErrHandlerTimeout], its
//     WriteHeader calls are ignored, Hijack and http.ResponseController's
//     SetReadDeadline, SetWriteDeadline and EnableFullDuplex fail with
//     http.ErrHandlerTimeout, and the client never sees anything of them.
//   - If next has already started its response (written a status or a
//     byte, or flushed), that status stands; the context is cancelled, so
//     a cooperative handler stops. Later writes and flushes fail with
//     http.ErrHandlerTimeout, so the response cannot grow past the
//     deadline. A response that was complete when the time ran out (none
//     of its body left to send: a HEAD request, a 204 or 304, or its
//     declared Content-Length written whole) is left alone, however late
//     next returns. Any other started response is incomplete: only next's
//     return could have ended it, and the time ran out first. Handler
//     then panics with [http.ErrAbortHandler] (when next returns; with
//     Abandon at the deadline), which makes the server close the
//     connection (HTTP/1) or reset the stream (HTTP/2): the client sees
//     an error, never a body cut short that looks complete, even when a
//     cooperative next stops quietly at the deadline.
//   - If next returns after the deadline without having written, the
//     client gets the 504 too.
//
// By default next runs in the server's goroutine, as usual, and Handler
// returns when next does: the 504 reaches the client at the deadline, but
// over HTTP/1 the connection stays busy (hence Connection: close), and
// over HTTP/2 the stream ends, so the client's read of the 504's body
// reaches EOF, only when next returns. With Config.Abandon, next runs in a
// goroutine of its own, and Handler returns at the deadline (the 504
// written, a complete response left as it is, an incomplete one aborted),
// so the server ends the response then even when next ignores its
// context; only a connection next has hijacked stays next's, and Handler
// waits for next to return. The abandoned next runs on, as in
// Do: every use of its writer is refused, its request body is closed by
// the server, a panic in it crashes the program, and it must not touch
// the writer it may have reached through Unwrap. A panic in next before
// the deadline reaches Handler's caller as a [*PanicError]
// (http.ErrAbortHandler as it is).
//
// 504 and not 503: the request did not fail for want of capacity (limit
// and degrade answer 503 for that) but ran out of time, most often waiting
// for a dependency or because its caller's budget was spent; 504 is what
// HTTP gateways answer then and what gRPC's DeadlineExceeded maps to. No
// Retry-After is sent: a timeout says nothing of when to come back.
//
// A propagated budget of 0 (the caller has no time left) is answered 504
// at once, without running next. A request whose client goes away is not
// answered (its context is cancelled, with the client's cause). A panic in
// next goes on (in the default mode with its own stack) once the timer is
// stopped.
//
// Handler panics at once if t or next is nil.
func (t *Timeout) Handler(next http.Handler) http.Handler {
	if t == nil {
		panic("timeout: Timeout.Handler called on a nil *Timeout")
	}
	if next == nil {
		panic("timeout: Timeout.Handler called with a nil next")
	}
	return &handler{t: t, next: next}
}

type handler struct {
	t    *Timeout
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := h.t
	limit := t.limit
	if t.header != "" {
		if vs := r.Header[t.header]; len(vs) == 1 {
			if b, ok := parseBudget(vs[0]); ok && b < limit {
				limit = b
			}
		}
	}
	ctx := r.Context()
	if limit <= 0 {
		t.timedOut(ctx, 0)
		writeTimeout(w, r, (&TimeoutError{Limit: 0}).Error(), false)
		return
	}
	tw := &timeoutWriter{t: t, w: w, r: r, cause: t.cause, h: w.Header().Clone()}
	if tw.h == nil {
		tw.h = make(http.Header)
	}
	if t.abandon {
		tw.settled = make(chan struct{})
	}
	// The request's context is bulwark's own, with one timer that both
	// ends it and wakes the writer (expire) at the deadline:
	// context.WithTimeoutCause and a timer of the writer's own would be
	// two.
	causeCtx := t.causeCtx
	var causeTE *TimeoutError
	if limit != t.limit { // a propagated budget: a cause of its own, made if asked for
		tw.cause = &TimeoutError{Limit: limit}
		causeCtx, causeTE = nil, tw.cause
	}
	tw.ctx = &tw.c // before initHandler: expire may run at once
	tw.c.initHandler(ctx, clock.Real.Now(), limit, causeCtx, causeTE, &tw.exp, tw)
	returned := false
	defer func() {
		if !returned { // a panic (or Goexit) in next: it goes on
			tw.exp.stop()
			tw.mu.Lock()
			tw.finished = true
			tw.countLocked()
			tw.mu.Unlock()
			tw.c.release()
		}
	}()
	if t.abandon {
		returned = true // serveAbandoning cleans up on every path
		h.serveAbandoning(tw, r.WithContext(tw.ctx))
		return
	}
	h.next.ServeHTTP(tw.writer(), r.WithContext(tw.ctx))
	returned = true
	tw.exp.stop()
	abort := tw.finish()
	tw.c.release()
	if abort {
		panic(http.ErrAbortHandler)
	}
}

// serveAbandoning runs next in a goroutine of its own (Config.Abandon) and
// returns when next does, or when the time runs out (unless next hijacked
// the connection): the 504 written, or a started response left as it is
// if complete, aborted if not.
func (h *handler) serveAbandoning(tw *timeoutWriter, r *http.Request) {
	w := tw.writer()
	c := new(call[struct{}])
	c.start(h.t, r.Context(), func(context.Context) (struct{}, error) {
		h.next.ServeHTTP(w, r)
		return struct{}{}, nil
	})
	if !c.wait(h.t, tw.settled) { // next is abandoned; the writer refuses it from now on
		tw.exp.stop()
		tw.mu.Lock()
		tw.finished = true
		abort := tw.cutLocked()
		tw.mu.Unlock()
		tw.c.release()
		if abort {
			panic(http.ErrAbortHandler)
		}
		return
	}
	tw.exp.stop()
	if c.panicked {
		tw.mu.Lock()
		tw.finished = true
		tw.countLocked()
		tw.mu.Unlock()
		tw.c.release()
		c.repanic()
	}
	abort := tw.finish()
	tw.c.release()
	if abort {
		panic(http.ErrAbortHandler)
	}
}

// timeoutWriter is the ResponseWriter next gets. Every use of the server's
// writer, by next or by the timer, holds mu, so the timer can answer 504
// while next runs without a data race. next's headers live in a map of its
// own (h), copied to the server's writer when next commits its response,
// so the timer never touches a map next may be writing.
type timeoutWriter struct {
	t     *Timeout
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context // &c
	cause *TimeoutError
	h     http.Header
	c     callCtx   // the request's context next runs with
	exp   afterFunc // c's registration of expire

	mu          sync.Mutex
	wroteHeader bool  // next committed its response (status, byte or flush)
	status      int   // the status next committed
	declared    int64 // the Content-Length next committed, or -1
	written     int64 // the body bytes next wrote
	timedOut    bool  // the time ran out: next's writes are refused
	answered    bool  // the 504 was written
	hijacked    bool
	finished    bool // next returned (or panicked, or was abandoned)
	counted     bool

	// settled, with Config.Abandon, is closed once the response no
	// longer depends on next: when the time runs out (the 504 written, or
	// a started response's writes refused from then on).
	settled     chan struct{}
	settledDone bool
}

// settleLocked closes settled, once.
func (tw *timeoutWriter) settleLocked() {
	if tw.settled != nil && !tw.settledDone {
		tw.settledDone = true
		close(tw.settled)
	}
}

// writer is the writer next gets: with a Hijack method if a writer down
// the Unwrap chain can hijack (so that http.ResponseController, which
// stops at the first Hijack it finds, never hijacks past the middleware),
// without one otherwise.
func (tw *timeoutWriter) writer() http.ResponseWriter {
	for w := tw.w; w != nil; {
		if _, ok := w.(http.Hijacker); ok {
			return hijackWriter{tw}
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	return tw
}

// wake runs when the request's context ends: expire.
func (tw *timeoutWriter) wake() { tw.expire() }

// expire runs when the request's context ends, at its deadline or the
// caller's.
func (tw *timeoutWriter) expire() {
	if tw.ctx.Err() != context.DeadlineExceeded {
		return // the client went away: there is nobody to answer
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.finished || tw.hijacked {
		return
	}
	tw.timedOutLocked()
}

// timedOutLocked reports whether the time has run out, acting on it
// first if the deadline has passed but the timer has not run yet: a
// handler woken by its context's end must not get a write in before the
// timer's goroutine.
func (tw *timeoutWriter) timedOutLocked() bool {
	if !tw.timedOut && tw.ctx.Err() == context.DeadlineExceeded {
		tw.timeOutLocked()
	}
	return tw.timedOut
}

func (tw *timeoutWriter) timeOutLocked() {
	if tw.timedOut {
		return
	}
	tw.timedOut = true
	tw.countLocked()
	if !tw.wroteHeader {
		writeTimeout(tw.w, tw.r, context.Cause(tw.ctx).Error(), true)
		tw.answered = true
	}
	tw.settleLocked()
}

// cutLocked reports whether the response next started must be aborted
// because the time ran out before it was complete: a response is
// complete once it has no body to come (HEAD, 204, 304) or its declared
// Content-Length has been written whole. Any other started response is
// only complete when next returns, and the time ran out before that, so
// ending it normally would hand the client a body cut short that looks
// complete.
func (tw *timeoutWriter) cutLocked() bool {
	if !tw.timedOut || tw.answered || tw.hijacked {
		return false
	}
	switch {
	case tw.r.Method == http.MethodHead, tw.status == http.StatusNoContent, tw.status == http.StatusNotModified:
		return false
	}
	return tw.declared < 0 || tw.written < tw.declared
}

// countLocked counts the request as timed out if its own deadline passed
// (not its parent's).
func (tw *timeoutWriter) countLocked() {
	if !tw.counted && tw.ctx.Err() != nil && context.Cause(tw.ctx) == error(tw.cause) {
		tw.counted = true
		tw.t.timedOut(tw.r.Context(), tw.cause.Limit)
	}
}

// finish runs when next has returned; it reports whether the response
// must be aborted.
func (tw *timeoutWriter) finish() (abort bool) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.finished = true
	if tw.hijacked {
		return false
	}
	tw.timedOutLocked() // the deadline may have passed without the timer having run yet
	if !tw.answered {
		copyHeader(tw.w.Header(), tw.h) // trailers, or the headers of an empty response
	}
	return tw.cutLocked()
}

// writeTimeout answers 504 with msg as a plain-text body.
func writeTimeout(w http.ResponseWriter, r *http.Request, msg string, closeConn bool) {
	h := w.Header()
	h.Del("Content-Encoding")
	h.Del("Content-Range")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	body := msg + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if closeConn && r.ProtoMajor < 2 {
		h.Set("Connection", "close")
	}
	w.WriteHeader(http.StatusGatewayTimeout)
	_, _ = io.WriteString(w, body)
	_ = http.NewResponseController(w).Flush()
}

// copyHeader makes dst hold exactly src's fields.
func copyHeader(dst, src http.Header) {
	for k := range dst {
		if _, ok := src[k]; !ok {
			delete(dst, k)
		}
	}
	for k, v := range src {
		dst[k] = v
	}
}

// commitLocked sends next's headers on with its first status, byte or
// flush (status 200 unless next wrote another).
func (tw *timeoutWriter) commitLocked(status int) {
	if !tw.wroteHeader {
		copyHeader(tw.w.Header(), tw.h)
		tw.wroteHeader = true
		tw.status = status
		tw.declared = -1
		if v := tw.h.Get("Content-Length"); v != "" { // (ParseInt's error for "" allocates)
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				tw.declared = n
			}
		}
	}
}

// Header returns next's own header map.
func (tw *timeoutWriter) Header() http.Header { return tw.h }

// WriteHeader passes code on, unless the time has run out.
func (tw *timeoutWriter) WriteHeader(code int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.hijacked || tw.timedOutLocked() {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		copyHeader(tw.w.Header(), tw.h) // informational: the final status is still to come
	} else {
		tw.commitLocked(code)
	}
	tw.w.WriteHeader(code)
}

// Write passes p on, or fails with http.ErrHandlerTimeout once the time
// has run out.
func (tw *timeoutWriter) Write(p []byte) (int, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.hijacked {
		return 0, http.ErrHijacked
	}
	if tw.timedOutLocked() {
		return 0, http.ErrHandlerTimeout
	}
	tw.commitLocked(http.StatusOK)
	n, err := tw.w.Write(p)
	tw.written += int64(n)
	return n, err
}

// Flush sends buffered data to the client, as http.Flusher asks.
func (tw *timeoutWriter) Flush() { _ = tw.FlushError() }

// FlushError is Flush reporting an error, the form http.ResponseController
// prefers: http.ErrHandlerTimeout once the time has run out.
func (tw *timeoutWriter) FlushError() error {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.hijacked {
		return http.ErrHijacked
	}
	if tw.timedOutLocked() {
		return http.ErrHandlerTimeout
	}
	tw.commitLocked(http.StatusOK)
	return http.NewResponseController(tw.w).Flush()
}

// Unwrap returns the server's writer, for http.ResponseController.
func (tw *timeoutWriter) Unwrap() http.ResponseWriter { return tw.w }

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex are
// http.ResponseController's, passed on unless the time has run out: an
// abandoned next must not reach the server's writer through Unwrap once
// Handler has returned and the server has recycled it.
func (tw *timeoutWriter) SetReadDeadline(d time.Time) error {
	return tw.control(func(rc *http.ResponseController) error { return rc.SetReadDeadline(d) })
}

func (tw *timeoutWriter) SetWriteDeadline(d time.Time) error {
	return tw.control(func(rc *http.ResponseController) error { return rc.SetWriteDeadline(d) })
}

func (tw *timeoutWriter) EnableFullDuplex() error {
	return tw.control((*http.ResponseController).EnableFullDuplex)
}

func (tw *timeoutWriter) control(f func(*http.ResponseController) error) error {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if !tw.hijacked && (tw.finished || tw.timedOutLocked()) {
		return http.ErrHandlerTimeout
	}
	return f(http.NewResponseController(tw.w))
}

type hijackWriter struct{ *timeoutWriter }

// Hijack passes the hijack on, unless the time has run out; once hijacked,
// the connection is next's and the timer leaves it alone.
func (hw hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	tw := hw.timeoutWriter
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOutLocked() {
		return nil, nil, http.ErrHandlerTimeout
	}
	c, rw, err := http.NewResponseController(tw.w).Hijack()
	if err == nil {
		tw.hijacked = true
	}
	return c, rw, err
}
