package retry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/pushback"
	"github.com/bulwark-go/bulwark/internal/tried"
)

// RoundTripper returns an [http.RoundTripper] that sends requests through
// next (nil means [http.DefaultTransport]) and retries them per the
// policy. It retries only requests that are safe to repeat: GET, HEAD,
// OPTIONS, TRACE, PUT and DELETE, and any request that carries an
// Idempotency-Key header (see Config.IdempotencyKey); other requests go
// through once.
//
// It honours the RoundTripper contract: the caller's request is never
// modified (each retry sends a copy, its body rewound through GetBody or
// from a buffer, see Config.MaxBufferedBody); every response it discards,
// on every path, hedged or not, is drained (up to 64 KiB) and closed so its
// connection returns to the pool; when the attempts are exhausted on a failing status (a 503,
// say) the last response is returned with a nil error, as a plain
// transport would, and its body is readable. A Retry-After header on a 429
// or 503 sets the delay (capped by Config.MaxPushback; ignored if
// malformed). An error from next with a RetryAfter method (an open
// breaker below) is a local rejection: by default RoundTrip returns at once
// with an *ExhaustedError that unwraps to it (see Config.WaitRejected).
// The request's context is honoured between attempts: a cancelled request
// returns at once with the context's error. With hedging, each attempt
// runs under a context of its own; the winner's lives until its response
// body is closed, and the losers' are cancelled with the cause
// bulwark.ErrSuperseded, which the layers below (a breaker) count as a
// failure. A 101 Switching Protocols response (a WebSocket or h2c upgrade)
// keeps its body an io.ReadWriteCloser, hedged or not, so the caller can
// talk over the upgraded connection. A next that breaks the contract by
// returning neither a response nor an error is taken to have failed with a
// transport error. Over lb's RoundTripper, each retry and hedge goes to an
// endpoint that the request's other attempts did not use, while one is
// left (see the package doc).
func (p *Policy) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &roundTripper{p: p, next: next}
}

type roundTripper struct {
	p    *Policy
	next http.RoundTripper
}

// errNoResponse replaces the (nil, nil) of a transport that breaks the
// RoundTripper contract, so that it is judged as a transport error
// instead of crashing the policy.
var errNoResponse = errors.New("retry: transport returned neither response nor error")

// send runs one round trip through next.
func (t *roundTripper) send(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if resp == nil && err == nil {
		err = errNoResponse
	}
	return resp, err
}

// sendOnce sends a request that will not be retried: without the record
// of its endpoint that a balancer below attaches to a failure for a retry
// (internal/tried).
func (t *roundTripper) sendOnce(r *http.Request) (*http.Response, error) {
	resp, err := t.send(r)
	return resp, tried.Strip(err)
}

// idempotent reports whether method is safe to repeat (RFC 9110 §9.2.2).
func idempotent(method string) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

const idempotencyHeader = "Idempotency-Key"

// newIdempotencyKey returns a random (version 4) UUID.
func newIdempotencyKey() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go 1.24+)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

type bodyReadCloser struct {
	io.Reader
	io.Closer
}

func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.p
	_, hasKey := req.Header[idempotencyHeader]
	retryable := hasKey || idempotent(req.Method)
	addKey := !retryable && p.idempotencyKey &&
		(req.Method == http.MethodPost || req.Method == http.MethodPatch)
	if (!retryable && !addKey) || p.maxAttempts == 1 {
		p.calls.Add(1)
		return t.sendOnce(req)
	}

	// Attempts send shallow copies of req (req.WithContext, not
	// req.Clone), with a header of their own (httpx.HeaderWith) only to
	// carry an Idempotency-Key: the URL, trailer and form are shared, as
	// no layer below may modify the request it is given.
	first := req
	getBody := req.GetBody
	if req.Body != nil && req.Body != http.NoBody && getBody == nil {
		if p.maxBuffered < 0 {
			p.calls.Add(1)
			return t.sendOnce(req)
		}
		buf, err := io.ReadAll(io.LimitReader(req.Body, p.maxBuffered+1))
		if err != nil {
			req.Body.Close()
			return nil, err
		}
		if int64(len(buf)) > p.maxBuffered {
			// Too large to keep: send it once, the buffered head first.
			r := req.WithContext(req.Context())
			r.Body = bodyReadCloser{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
			p.calls.Add(1)
			return t.sendOnce(r)
		}
		req.Body.Close()
		getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
		first = req.WithContext(req.Context())
		first.Body, _ = getBody()
		first.GetBody = getBody
	}
	var key string
	if addKey {
		key = newIdempotencyKey()
		if first == req {
			first = req.WithContext(req.Context())
		}
		first.Header = httpx.HeaderWith(req.Header, idempotencyHeader, []string{key})
	}

	ctx := req.Context()
	if p.hedge.enabled && ctx.Value(noHedgeKey{}) == nil {
		return hedged(ctx, p, t.exec(req, first, getBody, key))
	}
	var start int64
	if p.maxDuration > 0 {
		start = p.clock.Nanotime()
	}
	p.calls.Add(1)
	resp, err := t.send(first)
	if err == nil && p.classifyHTTP == nil && !outcome.HTTPStatusFailure(resp.StatusCode) {
		return resp, nil
	}
	return t.exec(req, first, getBody, key).run(ctx, start, resp, err)
}

// exec builds the retry loop of one request, once its first attempt has
// failed (or up front, for hedging).
func (t *roundTripper) exec(req, first *http.Request, getBody func() (io.ReadCloser, error), key string) *exec[*http.Response] {
	ctx := req.Context()
	build := func(actx context.Context, n int) (*http.Request, error) {
		if n == 1 {
			if actx == ctx {
				return first, nil
			}
			return first.WithContext(actx), nil
		}
		r := req.WithContext(actx)
		if getBody != nil {
			body, err := getBody()
			if err != nil {
				return nil, err
			}
			r.Body, r.GetBody = body, getBody
		}
		if key != "" {
			r.Header = httpx.HeaderWith(req.Header, idempotencyHeader, []string{key})
		}
		return r, nil
	}
	return &exec[*http.Response]{
		p: t.p,
		fn: func(actx context.Context) (*http.Response, error) {
			r, err := build(actx, Attempt(actx))
			if err != nil {
				return nil, Permanent(err)
			}
			return t.send(r)
		},
		judgeResult: t.p.judgeHTTP,
		discard:     httpx.DrainClose,
		tag:         httpTag,
		giveUp: func(attempts int, reason Reason, resp *http.Response, err error) (*http.Response, error) {
			if resp != nil {
				return resp, nil
			}
			return nil, &ExhaustedError{Attempts: attempts, Last: err, Reason: reason}
		},
		keep: func(resp *http.Response, cancel context.CancelFunc) *http.Response {
			httpx.CancelOnClose(resp, cancel)
			return resp
		},
	}
}

// httpTag returns the record of the endpoints a failed round trip went
// to, from its error or its response's body, as a balancer below attaches
// it (internal/tried).
func httpTag(resp *http.Response, err error) *tried.Record {
	if err != nil {
		return tried.Of(err)
	}
	if resp != nil {
		return tried.OfBody(resp.Body)
	}
	return nil
}

// judgeHTTP judges one round trip.
func (p *Policy) judgeHTTP(ctx context.Context, resp *http.Response, err error) verdict {
	if resp == nil && err == nil {
		err = errNoResponse // send makes this unreachable; never dereference nil
	}
	var o bulwark.Outcome
	switch {
	case p.classifyHTTP != nil:
		o = p.classifyHTTP(ctx, resp, err)
	case err != nil:
		if e, ok := isPermanent(err); ok {
			return verdict{err: e}
		}
		o = p.classify(ctx, err)
	case outcome.HTTPStatusFailure(resp.StatusCode):
		o = bulwark.Failure
	default:
		o = bulwark.Success
	}
	if o != bulwark.Failure {
		return verdict{err: strip(err)}
	}
	if err != nil {
		if e, ok := isPermanent(err); ok {
			return verdict{err: e}
		}
		return failed(err)
	}
	vd := verdict{retry: true, err: &StatusError{StatusCode: resp.StatusCode}}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if v := resp.Header.Get("Retry-After"); v != "" {
			vd.pushback, vd.hasPushback = pushback.HTTP(v, p.clock.Now())
		}
	}
	return vd
}
