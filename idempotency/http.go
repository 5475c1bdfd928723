package idempotency

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/internal/httpx"
)

// ReplayedHeader is set to "true" on every replayed response.
const ReplayedHeader = "Idempotent-Replayed"

// Handler returns server middleware that makes next idempotent for
// requests of Config.Methods (default POST and PATCH) that carry an
// Idempotency-Key. Other requests pass through untouched.
//
// The key is parsed by [ParseKey]; the request body (at most
// MaxRequestBytes) is read to fingerprint the request and handed to next
// unchanged. Then, as [Keeper.Do] describes:
//
//	first request with the key          next runs; its response is sent and stored
//	same key and payload, completed     the stored response: status, headers, body, byte
//	                                    for byte, plus "Idempotent-Replayed: true"
//	same key, still in progress         409 Conflict, Retry-After (or, with Config.Wait,
//	                                    the first response once it is stored)
//	same key, different payload         422 Unprocessable Content
//	key missing and Config.Required     400 Bad Request
//	key malformed, or header repeated   400 Bad Request
//	body over MaxRequestBytes           413 Content Too Large
//	store unreachable (Redis down)      503 Service Unavailable, Retry-After: 1; next does not run
//
// Error answers are RFC 9457 problem details (application/problem+json)
// whose "type" is the address of the matching sentinel's documentation
// (e.g. https://pkg.go.dev/github.com/bulwark-go/bulwark/idempotency#ErrMismatch).
//
// A response is not stored, and the key is released so that a retry runs
// again, when its status is 500 or more (unless Config.StoreServerErrors),
// when its body exceeds MaxResponseBytes, when the handler hijacks the
// connection, or when it panics (the panic goes on). The writer next gets
// keeps http.Flusher, http.Hijacker (where the server's has it) and
// Unwrap for http.ResponseController.
func (k *Keeper) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(k.s.methods, r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		values := r.Header.Values(k.s.header)
		switch {
		case len(values) == 0 && !k.s.required:
			next.ServeHTTP(w, r)
			return
		case len(values) == 0:
			k.telem.count(resultInvalid)
			writeProblem(w, ErrKeyMissing, 0)
			return
		case len(values) > 1:
			k.telem.count(resultInvalid)
			writeProblem(w, malformed("more than one "+k.s.header+" field"), 0)
			return
		}
		key, err := ParseKey(values[0], k.s.maxKey)
		if err != nil {
			k.telem.count(resultInvalid)
			writeProblem(w, err, 0)
			return
		}
		body, err := readBody(r, k.s.maxReq)
		if err != nil {
			k.telem.count(resultInvalid)
			writeProblem(w, err, 0)
			return
		}
		req := Request{Scope: k.s.scope(r), Key: key, Fingerprint: k.s.fingerprint(r, body)}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec, replayed, err := k.Do(r.Context(), req, func(ctx context.Context) (*Record, error) {
			c := &capture{ResponseWriter: w, max: k.s.maxResp, keep: k.s.replayHeaders}
			next.ServeHTTP(c.writer(), r)
			return c.record(), nil
		})
		switch {
		case err == nil && replayed:
			replay(w, rec)
		case err != nil:
			var ip *InProgressError
			wait := time.Duration(0)
			if errors.As(err, &ip) {
				wait = ip.Wait
			} else if errors.Is(err, ErrStoreUnavailable) {
				wait = time.Second
			}
			if r.Context().Err() == nil {
				writeProblem(w, err, wait)
			}
		}
	})
}

// readBody reads r's whole body, at most max bytes.
func readBody(r *http.Request, max int) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > int64(max) {
		return nil, ErrTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		return nil, errors.Join(errReadBody, err)
	}
	if len(b) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}

var errReadBody = errors.New("idempotency: could not read the request body")

func replay(w http.ResponseWriter, rec *Record) {
	h := w.Header()
	for k, vs := range rec.Header {
		h[k] = slices.Clone(vs)
	}
	h.Set(ReplayedHeader, "true")
	h.Set("Content-Length", strconv.Itoa(len(rec.Body)))
	w.WriteHeader(rec.Status)
	w.Write(rec.Body)
}

// problem types, by sentinel.
var problems = []struct {
	err    error
	status int
	name   string
	title  string
}{
	{ErrKeyMissing, http.StatusBadRequest, "ErrKeyMissing", "Idempotency-Key header required"},
	{ErrKeyMalformed, http.StatusBadRequest, "ErrKeyMalformed", "Malformed Idempotency-Key"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "ErrTooLarge", "Request body too large"},
	{ErrInProgress, http.StatusConflict, "ErrInProgress", "A request with this Idempotency-Key is in progress"},
	{ErrMismatch, http.StatusUnprocessableEntity, "ErrMismatch", "Idempotency-Key reused with a different request"},
	{ErrStoreUnavailable, http.StatusServiceUnavailable, "ErrStoreUnavailable", "Idempotency store unavailable"},
	{errReadBody, http.StatusBadRequest, "", "Could not read the request body"},
}

// ProblemTypeBase prefixes the "type" of every problem document the
// Handler writes; the sentinel's name follows.
const ProblemTypeBase = "https://pkg.go.dev/github.com/bulwark-go/bulwark/idempotency#"

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, err error, retryAfter time.Duration) {
	p := problem{Type: "about:blank", Title: "Service Unavailable", Status: http.StatusServiceUnavailable, Detail: err.Error()}
	for _, c := range problems {
		if errors.Is(err, c.err) {
			p.Title, p.Status = c.title, c.status
			if c.name != "" {
				p.Type = ProblemTypeBase + c.name
			}
			break
		}
	}
	if errors.Is(err, ErrStoreFull) {
		p.Type, p.Title = ProblemTypeBase+"ErrStoreUnavailable", "Idempotency store unavailable"
		retryAfter = time.Second
	}
	b, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("Cache-Control", "no-store")
	httpx.SetRetryAfter(h, retryAfter)
	w.WriteHeader(p.Status)
	w.Write(append(b, '\n'))
}

// hopByHop are never stored: they describe one connection, or are
// recomputed on replay.
var hopByHop = []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Content-Length", "Date", "Set-Cookie"}

// capture passes a response through to the client while keeping a copy to
// store.
type capture struct {
	http.ResponseWriter
	max      int
	keep     []string // canonical names to store; nil means all but hopByHop
	code     int
	header   http.Header
	body     []byte
	overflow bool
	hijacked bool
}

func (c *capture) writer() http.ResponseWriter {
	if _, ok := c.ResponseWriter.(http.Hijacker); ok {
		return hijackCapture{c}
	}
	return c
}

func (c *capture) WriteHeader(code int) {
	if c.code == 0 && (code < 100 || code > 199) {
		c.code = code
		c.header = c.snapshot()
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) snapshot() http.Header {
	h := make(http.Header)
	for k, vs := range c.ResponseWriter.Header() {
		if c.keep != nil {
			if !slices.Contains(c.keep, k) {
				continue
			}
		} else if slices.Contains(hopByHop, k) || strings.HasPrefix(k, "Proxy-") {
			continue
		}
		h[k] = slices.Clone(vs)
	}
	return h
}

func (c *capture) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if !c.overflow {
		if len(c.body)+len(p) > c.max {
			c.overflow, c.body = true, nil
		} else {
			c.body = append(c.body, p...)
		}
	}
	return c.ResponseWriter.Write(p)
}

// ReadFrom copies through Write, so the copy is kept.
func (c *capture) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(writeOnly{c}, src)
}

type writeOnly struct{ io.Writer }

func (c *capture) Flush() {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(c.ResponseWriter).Flush()
}

// FlushError is Flush reporting an error, for http.ResponseController.
func (c *capture) FlushError() error {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(c.ResponseWriter).Flush()
}

func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// record returns what to store, or nil if the response must not be.
func (c *capture) record() *Record {
	if c.overflow || c.hijacked {
		return nil
	}
	if c.code == 0 {
		c.code, c.header = http.StatusOK, c.snapshot()
	}
	return &Record{Status: c.code, Header: c.header, Body: c.body}
}

type hijackCapture struct{ *capture }

func (h hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := h.ResponseWriter.(http.Hijacker).Hijack()
	if err == nil {
		h.hijacked = true
	}
	return conn, rw, err
}
