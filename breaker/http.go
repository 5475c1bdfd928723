package breaker

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// RoundTripper returns an [http.RoundTripper] that sends each request
// through the breaker to next (nil means [http.DefaultTransport]).
//
// A rejected request never reaches next, so nothing touches the network
// while the breaker is open: RoundTrip closes the request body and returns
// the [*OpenError] (the http.Client wraps it in a *url.Error; errors.Is
// still finds ErrOpen). Otherwise the response is judged by
// Config.ClassifyHTTP, or by default by bulwark's HTTP rules (5xx except
// 501, 408 and 429 are failures; a transport error is classified as by Do,
// with Config.Classify if set: a request whose own context was cancelled,
// whatever the cause, is neutral, unless the cause is
// [bulwark.ErrSuperseded]), and the response is returned to the caller
// whatever its status: a 5xx counts as a failure but is still the caller's
// to read. A panic in next is recorded as a failure and goes on.
func (b *Breaker) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper{next: next, pick: func(*http.Request) *Breaker { return b }}
}

type roundTripper struct {
	next http.RoundTripper
	pick func(*http.Request) *Breaker
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return roundTrip(rt.pick(req), rt.next, req)
}

func roundTrip(b *Breaker, next http.RoundTripper, req *http.Request) (resp *http.Response, err error) {
	ctx := req.Context()
	t, err := b.allowCtx(ctx)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	returned := false
	defer outcome.OnAbort(&returned, func() { b.recordCtx(ctx, t, bulwark.Failure) })
	resp, err = next.RoundTrip(req)
	returned = true
	b.recordCtx(ctx, t, b.judgeHTTP(ctx, resp, err))
	return resp, err
}

func (b *Breaker) judgeHTTP(ctx context.Context, resp *http.Response, err error) bulwark.Outcome {
	if b.classifyHTTP != nil {
		return b.classifyHTTP(ctx, resp, err)
	}
	if err != nil {
		return b.classifyCtx(ctx, err)
	}
	return outcome.HTTP(ctx, resp, nil)
}

// Handler returns server-side middleware that guards next with the
// breaker, for a handler whose own dependency is failing: while the
// breaker rejects, requests are answered 503 Service Unavailable with a
// Retry-After header (see [WriteRejection]) without running next, which
// sheds load from a struggling backend. next's responses are judged by
// Config.ClassifyHTTP, or by default by their status code (5xx except 501,
// 408 and 429 are failures); a request whose client went away before the
// handler wrote a failure status is neutral. The ResponseWriter next gets
// keeps what the server's offers ([http.Flusher], [http.Hijacker],
// [io.ReaderFrom], and Unwrap for [http.ResponseController]). A panicking
// handler is recorded as a failure and the panic continues. A nil next
// panics.
func (b *Breaker) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("breaker: Breaker.Handler called with a nil next")
	}
	return handler(next, func(*http.Request) *Breaker { return b })
}

func handler(next http.Handler, pick func(*http.Request) *Breaker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := pick(r)
		ctx := r.Context()
		t, err := b.allowCtx(ctx)
		if err != nil {
			WriteRejection(w, err)
			return
		}
		rec := httpx.NewRecorder(w)
		returned := false
		defer outcome.OnAbort(&returned, func() { b.recordCtx(ctx, t, bulwark.Failure) })
		next.ServeHTTP(rec.Writer(), r)
		returned = true
		b.recordCtx(ctx, t, httpx.ServerOutcome(r, rec.Status(), w.Header(), b.classifyHTTP))
	})
}

// WriteRejection answers a request that a breaker rejected: 503 Service
// Unavailable, a Retry-After header with the wait rounded up to whole
// seconds (omitted when the wait is unknown, as for ForcedOpen), and the
// error's message as a plain-text body. It reports false, writing
// nothing, if err is not a breaker rejection, so a handler can write:
//
//	if err := b.Do(ctx, work); err != nil && !breaker.WriteRejection(w, err) {
//		http.Error(w, "internal error", http.StatusInternalServerError)
//	}
func WriteRejection(w http.ResponseWriter, err error) bool {
	var oe *OpenError
	if !errors.As(err, &oe) {
		return false
	}
	httpx.SetRetryAfter(w.Header(), oe.RetryAfter())
	http.Error(w, oe.Error(), http.StatusServiceUnavailable)
	return true
}
