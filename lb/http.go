package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/pushback"
	"github.com/bulwark-go/bulwark/internal/tried"
)

// RoundTripper returns an [http.RoundTripper] that sends each request to
// an endpoint picked by the balancer, through next (nil means
// [http.DefaultTransport]).
//
// For each attempt it picks an endpoint (by Config.HashKey's key, if
// set) and sends a copy of the request whose URL host is the
// endpoint's address; the scheme, path and query are kept, and the Host
// header follows Config.Host (by default the request's own host). The
// caller's request is never modified. The copy has a URL of its own and
// shares the rest (the Header map included) with the caller's request, as
// req.WithContext does: the layers below must not modify the request they
// are given (the RoundTripper contract); every bulwark layer that sets a
// header clones first. That makes an attempt one allocation, its
// response's body wrapper included.
//
// The response's status is judged when its headers arrive, by
// Config.ClassifyHTTP or bulwark's HTTP rules (5xx except 501, 408 and 429
// are failures; a caller's cancellation is neutral); a 429 or 503 with a
// Retry-After counts, for P2C, as a call that took that long. The latency
// recorded is to the last byte: the call finishes when the body has been
// read to its end or closed, whichever comes first, so close every body.
// An error reading the body (other than the caller's cancellation) turns
// the outcome into a failure. Every response is returned to the caller,
// whatever its status; on a 101 Switching Protocols the body stays the
// io.ReadWriteCloser net/http returns (the call lasts, as for any body,
// until it is closed or read to its end).
//
// With Config.Breakers, an endpoint whose breaker rejects the call is
// passed over for another before anything is sent, for any request; if
// the breaker of every endpoint in rotation rejects, RoundTrip returns
// the rejection (an error matching breaker.ErrOpen or
// breaker.ErrHalfOpenFull) and closes the request body. When the connection to an endpoint cannot be made (a dial
// error: the request never left), or a breaker below this RoundTripper
// rejected it, and the request is safe to repeat, RoundTrip tries another
// endpoint, up to Config.MaxAttempts endpoints. Safe to repeat means: an
// idempotent method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or an
// Idempotency-Key header, and a body that can be sent again (none, or
// req.GetBody set, as http.NewRequest does for in-memory bodies); each
// such attempt goes to an endpoint the request has not been sent to,
// while one is left. Any other failure is returned: retrying on errors
// and statuses is package retry's job, above this RoundTripper.
//
// A retry or hedge of retry's goes to an endpoint that the call's other
// attempts have not used, while one is left (see "Retries and hedges go
// elsewhere" in the package doc). For that, a request that is safe to
// repeat, sent with no record of its call's endpoints in its context (a
// first attempt), hands one back: an error (other than the caller's
// cancellation) is wrapped in a type that prints as the error, whose
// Unwrap returns it (errors.Is and errors.As see through it) and whose
// Timeout method answers as the error's does (for url.Error.Timeout); a
// response keeps its status, header and body, its body carrying the
// record (a failing status's http.NoBody is replaced by an empty body of
// lb's). retry unwraps the error before its caller sees it.
func (b *Balancer) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &roundTripper{b: b, next: next}
}

type roundTripper struct {
	b    *Balancer
	next http.RoundTripper
}

func (rt *roundTripper) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	b := rt.b
	ctx := req.Context()
	var key uint64
	hasKey := false
	if b.hashKey != nil {
		if k := b.hashKey(req); k != "" {
			key, hasKey = hashString(k), true
		}
	}
	safe := safeToRepeat(req)
	attempts := 1
	if safe {
		attempts = b.s.maxAttempts
	}
	logical := req.Host
	if logical == "" {
		logical = req.URL.Host
	}
	// rec is the call's record of the endpoints its attempts went to,
	// when a retry layer above keeps one (see avoid.go); own is this
	// RoundTrip's, made when it tries a second endpoint without one.
	rec := ctxRecord(ctx)
	var own *tried.Record
	var t Ticket
	sending := false
	defer func() { // a panic in next: record the failure, let the panic go on
		if sending {
			b.finish(t, bulwark.Failure, 0)
		}
	}()
	for a := 0; a < attempts; a++ {
		r := rec
		if r == nil {
			r = own
		}
		t, err = b.pickCall(r, key, hasKey)
		if err != nil {
			if a == 0 && req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		at := newAttempt(req)
		out := &at.req
		out.URL.Host = t.m.ep.Addr
		if b.host == HostEndpoint {
			out.Host = t.m.ep.Addr
		} else {
			out.Host = logical
		}
		if a > 0 && req.Body != nil && req.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				b.finish(t, bulwark.Neutral, 0)
				return nil, gerr
			}
			out.Body = body
		}
		sending = true
		resp, err = rt.next.RoundTrip(out)
		sending = false
		if err != nil {
			o := b.judgeHTTP(ctx, nil, err)
			b.finish(t, o, 0)
			if neverSent(err) && ctx.Err() == nil && a+1 < attempts {
				if rec == nil && own == nil {
					own = recordOf(nil, t)
				}
				continue
			}
			if rec == nil && safe && o != bulwark.Neutral {
				return nil, tagErr(err, own, t)
			}
			return nil, err
		}
		o := b.judgeHTTP(ctx, resp, nil)
		var wait time.Duration
		if o == bulwark.Failure && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			if v := resp.Header.Get("Retry-After"); v != "" {
				wait, _ = pushback.HTTP(v, time.Now())
			}
		}
		// Any response may be retried (retry may judge it by rules of
		// its own): its body carries the record, built only if asked.
		tag := rec == nil && safe
		if resp.Body == nil || resp.Body == http.NoBody {
			b.finish(t, o, wait)
			if tag && o == bulwark.Failure && resp.Body != nil {
				// An empty body that carries the attempt's record.
				at.body = body{ReadCloser: http.NoBody, t: t, tagged: true, prev: own}
				at.body.done.Store(true)
				resp.Body = &at.body
			}
			return resp, nil
		}
		// An upgraded connection (WebSocket, h2c): net/http's body is an
		// io.ReadWriteCloser, which callers type-assert; KeepWrite keeps it.
		at.body = body{ReadCloser: resp.Body, b: b, t: t, o: o, wait: wait, ctx: ctx, tagged: tag, prev: own}
		resp.Body = httpx.KeepWrite(resp.Body, &at.body)
		return resp, nil
	}
	return nil, err // not reached: the last attempt returns
}

// attempt is what one attempt allocates, in one allocation: the request it
// sends and the wrapper of its response's body.
//
// The request is a shallow copy of the caller's (as req.WithContext makes)
// with a URL of its own, the only part RoundTrip changes: its Header,
// Trailer, Form and body are the caller's, shared, not copied (req.Clone
// would copy the header map, three more allocations per attempt). Sharing
// is safe under the RoundTripper contract: no RoundTripper below may
// modify the request it is given, the Header included; one that needs to
// (a timeout layer setting Request-Timeout-Ms) clones it first.
type attempt struct {
	req  http.Request
	url  url.URL
	body body
}

func newAttempt(req *http.Request) *attempt {
	at := &attempt{req: *req}
	if req.URL != nil {
		at.url = *req.URL
	}
	at.req.URL = &at.url
	return at
}

func (b *Balancer) judgeHTTP(ctx context.Context, resp *http.Response, err error) bulwark.Outcome {
	if b.classifyHTTP != nil {
		return b.classifyHTTP(ctx, resp, err)
	}
	if err != nil {
		return b.classifyCtx(ctx, err)
	}
	return outcome.HTTP(ctx, resp, nil)
}

// safeToRepeat reports whether req may be sent to a second endpoint.
func safeToRepeat(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		if req.Header.Get("Idempotency-Key") == "" {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// neverSent reports whether err shows that the request never reached the
// endpoint: the connection could not be made, or a breaker rejected it.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, breaker.ErrOpen) || errors.Is(err, breaker.ErrHalfOpenFull)
}

// body finishes its call at EOF, on a read error or at Close, whichever
// comes first.
type body struct {
	io.ReadCloser
	b    *Balancer
	t    Ticket
	o    bulwark.Outcome
	wait time.Duration
	ctx  context.Context
	done atomic.Bool
	// tagged: the attempt failed with no record of the call's endpoints
	// in its context; TriedRecord hands one (prev's endpoints and t's)
	// to a retry layer above.
	tagged bool
	prev   *tried.Record
}

// TriedRecord returns a record of the endpoints the response's attempt
// went to, if it failed without one in its context (internal/tried).
func (r *body) TriedRecord() *tried.Record {
	if !r.tagged {
		return nil
	}
	return recordOf(r.prev, r.t)
}

func (r *body) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil {
		o := r.o
		if err != io.EOF {
			o = outcome.Error(r.ctx, err)
			if o == bulwark.Success { // not reached: err != nil
				o = bulwark.Failure
			}
		}
		r.finish(o)
	}
	return n, err
}

func (r *body) Close() error {
	err := r.ReadCloser.Close()
	r.finish(r.o)
	return err
}

func (r *body) finish(o bulwark.Outcome) {
	if r.done.CompareAndSwap(false, true) {
		r.b.finish(r.t, o, r.wait)
	}
}

// ---- hash keys

// HeaderKey returns a Config.HashKey that keys a request by the value of
// its header name (the first value, as is).
func HeaderKey(name string) func(*http.Request) string {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) string { return r.Header.Get(name) }
}

// CookieKey returns a Config.HashKey that keys a request by the value of
// its cookie name ("" if the request has none, or more than one cookie
// of that name disagreeing is resolved by taking the first).
func CookieKey(name string) func(*http.Request) string {
	return func(r *http.Request) string {
		c, err := r.Cookie(name)
		if err != nil {
			return ""
		}
		return c.Value
	}
}

// ClientIPKey is a Config.HashKey that keys a request by its client's IP
// address, for a gateway forwarding its callers' requests: the first
// address of X-Forwarded-For, else X-Real-IP, else the host of
// req.RemoteAddr (set on requests a server received). Values that are
// not IP addresses are ignored. Forwarding headers can be forged by
// clients, so use this key for stickiness, never for security.
func ClientIPKey(r *http.Request) string {
	if v := r.Header.Get("X-Forwarded-For"); v != "" {
		first, _, _ := strings.Cut(v, ",")
		if ip := parseIP(first); ip != "" {
			return ip
		}
	}
	if ip := parseIP(r.Header.Get("X-Real-IP")); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return parseIP(host)
}

// parseIP returns s, trimmed, in canonical form if it is an IP address
// (brackets and a zone allowed), else "".
func parseIP(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	ip := net.ParseIP(s)
	if ip == nil {
		return ""
	}
	return ip.String()
}
