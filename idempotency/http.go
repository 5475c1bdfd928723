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
//	same key, still in progress         409 Conflict, Retry-After: 1 (or, with Config.Wait,
//	                                    the first response once it is stored)
//	same key, different payload         422 Unprocessable Content
//	key missing and Config.Required     400 Bad Request
//	key malformed, or header repeated   400 Bad Request
//	body over MaxRequestBytes (or over  413 Content Too Large
//	an outer http.MaxBytesReader)
//	body unreadable (cut, bad framing)  400 Bad Request, problem type "about:blank"
//	store unreachable (Redis down)      503 Service Unavailable, Retry-After: 1; next does not run
//
// Error answers are RFC 9457 problem details (application/problem+json)
// whose "type" is the address of the matching sentinel's documentation
// (e.g. https://pkg.go.dev/github.com/bulwark-go/bulwark/idempotency#ErrMismatch),
// except for an unreadable body, which no sentinel names ("about:blank").
//
// A response is not stored, and the key is released so that a retry runs
// again, when its status is 500 or more (unless Config.StoreServerErrors),
// when its body exceeds MaxResponseBytes, when the handler hijacks the
// connection, when it panics (the panic goes on), or when the client went
// away (the request's context is done) and the handler returned without
// writing anything (the implicit empty 200 is not a response to replay). The writer next gets
// keeps http.Flusher, http.Hijacker (where the writer it wraps, or one
// down its Unwrap chain, has it) and Unwrap for http.ResponseController.
// A nil next panics.
func (k *Keeper) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("idempotency: Keeper.Handler called with a nil next")
	}
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
			if c.code == 0 && ctx.Err() != nil {
				// The client went away and the handler returned without
				// answering: the implicit 200 is nobody's response.
				return nil, nil
			}
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
	var tooLarge *http.MaxBytesError // an outer http.MaxBytesReader's limit
	if errors.As(err, &tooLarge) {
		return nil, ErrTooLarge
	}
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
	flushed  bool
}

// writer is the writer next gets: with a Hijack method that marks the
// response hijacked if a writer down the Unwrap chain can hijack (so that
// http.ResponseController, which stops at the first Hijack it finds, never
// hijacks past the capture), without one otherwise.
func (c *capture) writer() http.ResponseWriter {
	for w := c.ResponseWriter; w != nil; {
		if _, ok := w.(http.Hijacker); ok {
			return hijackCapture{c}
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
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

func (c *capture) Flush() { c.FlushError() }

// FlushError is Flush reporting an error, for http.ResponseController.
func (c *capture) FlushError() error {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	c.noteFirstFlush()
	return http.NewResponseController(c.ResponseWriter).Flush()
}

// noteFirstFlush keeps, at the first flush, the Content-Type that net/http
// then settles by sniffing what was written so far (none if nothing was),
// so that the replay, whose body is written at once, carries the same one
// rather than one sniffed from the whole body.
func (c *capture) noteFirstFlush() {
	if c.flushed {
		return
	}
	c.flushed = true
	h := c.ResponseWriter.Header()
	if _, typed := h["Content-Type"]; typed || c.overflow || c.header == nil ||
		h.Get("Content-Encoding") != "" || h.Get("Transfer-Encoding") != "" ||
		(c.keep != nil && !slices.Contains(c.keep, "Content-Type")) ||
		c.code == http.StatusNoContent || c.code == http.StatusNotModified {
		return
	}
	if len(c.body) == 0 {
		c.header["Content-Type"] = nil // present and empty: no sniffing on replay
		return
	}
	c.header["Content-Type"] = []string{http.DetectContentType(c.body)}
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
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.hijacked = true
	}
	return conn, rw, err
}
