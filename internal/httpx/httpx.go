// Package httpx is the HTTP plumbing every bulwark middleware shares, so
// that each contract net/http sets for middleware is honoured in one place:
//
//   - [Recorder]: the ResponseWriter wrapper that records the status a
//     handler wrote and keeps every optional interface the handler may
//     look for ([http.Flusher], [http.Hijacker] where the underlying
//     writer has it, [io.ReaderFrom], and Unwrap for
//     [http.ResponseController]).
//   - [ServerOutcome]: the server-side classification of a response.
//   - [SetRetryAfter]: the Retry-After header in whole seconds.
//   - [DrainClose]: draining and closing a response that is not returned.
//   - [CancelOnClose]: a body that releases its attempt's context on Close.
//   - [KeepWrite]: keeps an upgraded (101) response body writable through
//     a wrapper.
//   - [HeaderWith]: an attempt's own header, a copy with one key set, for
//     a RoundTripper that sends a shallow copy of the caller's request.
//
// The conformance suite in internal/conformance checks every package's
// RoundTripper and Handler against these contracts.
package httpx

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// Recorder wraps a ResponseWriter and records the status code the handler
// writes. Use [Recorder.Writer] to hand it to the handler: it returns a
// writer that is an [http.Hijacker] exactly when the underlying one is, so
// a handler's type assertions see what the server gives it.
//
// A Recorder is for one request; the zero Recorder must be given a writer
// with [Recorder.Reset] before use.
type Recorder struct {
	http.ResponseWriter
	code     int
	hijacked bool
}

// NewRecorder returns a Recorder around w.
func NewRecorder(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// Reset makes r record for w, forgetting what it recorded before.
func (r *Recorder) Reset(w http.ResponseWriter) { *r = Recorder{ResponseWriter: w} }

// Writer returns the writer to pass to the handler: r itself, or, when the
// underlying writer can be hijacked, r with a Hijack method. It does not
// allocate.
func (r *Recorder) Writer() http.ResponseWriter {
	if _, ok := r.ResponseWriter.(http.Hijacker); ok {
		return hijackRecorder{r}
	}
	return r
}

// WriteHeader records the first final (non-1xx) status and passes it on.
// Informational statuses (103 Early Hints) pass through unrecorded, as
// net/http allows several of them before the final one.
func (r *Recorder) WriteHeader(code int) {
	if r.code == 0 && (code < 100 || code > 199 || code == http.StatusSwitchingProtocols) {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 if no status was written, and passes p on.
func (r *Recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

// ReadFrom keeps the underlying writer's io.ReaderFrom fast path (sendfile
// for files) available through the wrapper.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{r.ResponseWriter}, src)
}

// writerOnly hides every method but Write, so io.Copy cannot loop back
// into ReadFrom.
type writerOnly struct{ io.Writer }

// Flush sends buffered data to the client, as [http.Flusher] asks, through
// whatever the underlying writer offers (Flush, FlushError, or an Unwrap
// chain to one). A writer that cannot flush is left alone.
func (r *Recorder) Flush() { _ = r.FlushError() }

// FlushError is Flush reporting an error, the form
// [http.ResponseController] prefers. It returns [http.ErrNotSupported] if
// no writer in the chain can flush.
func (r *Recorder) FlushError() error {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap returns the underlying writer, for [http.ResponseController].
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Status returns the status code the handler wrote: 200 if it wrote a body
// or flushed without a status, 0 if it wrote nothing at all, and 101 for a
// hijacked connection (the handler took over the connection; nothing about
// it is a failure of the server).
func (r *Recorder) Status() int {
	if r.hijacked {
		return http.StatusSwitchingProtocols
	}
	return r.code
}

// Written reports whether the handler wrote a status or any body.
func (r *Recorder) Written() bool { return r.code != 0 || r.hijacked }

type hijackRecorder struct{ *Recorder }

// Hijack passes the hijack on and records it.
func (h hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := h.ResponseWriter.(http.Hijacker).Hijack()
	if err == nil {
		h.hijacked = true
	}
	return c, rw, err
}

// ServerOutcome judges the response a handler wrote to r: with classify
// set, whatever it says of a response carrying code and the headers
// written; otherwise a failure for 5xx except 501, 408 and 429, neutral
// when the client went away (r's context was cancelled) before a failure
// status was written, and a success otherwise. A code of 0 (the handler
// wrote nothing) is taken as the 200 net/http will send.
//
// Only a custom classifier costs an allocation.
func ServerOutcome(r *http.Request, code int, header http.Header, classify bulwark.HTTPClassifier) bulwark.Outcome {
	if code == 0 {
		code = http.StatusOK
	}
	ctx := r.Context()
	if classify != nil {
		return classify(ctx, &http.Response{StatusCode: code, Header: header, Request: r}, nil)
	}
	switch {
	case outcome.HTTPStatusFailure(code):
		return bulwark.Failure
	case ctx.Err() == context.Canceled:
		return bulwark.Neutral
	}
	return bulwark.Success
}

// SetRetryAfter sets h's Retry-After to d rounded up to whole seconds (at
// least 1). A d of zero or less is no hint and sets nothing.
func SetRetryAfter(h http.Header, d time.Duration) {
	if d <= 0 {
		return
	}
	secs := int64(d / time.Second)
	if d%time.Second != 0 {
		secs++
	}
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
}

// MaxDrain bounds how much of a discarded body [DrainClose] reads. Reading
// a body to its end lets net/http reuse the connection; past this size
// closing it (and the connection) is cheaper than reading on.
const MaxDrain = 64 << 10

// DrainClose reads up to [MaxDrain] bytes of a response body that will not
// be returned to the caller, then closes it. A nil resp or body is a no-op.
// The body of a 101 Switching Protocols response is the upgraded
// connection itself, which has no end to read to and is never reused for
// HTTP: it is closed without a read (a read would wait for the peer,
// forever if the peer waits for us).
func DrainClose(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.CopyN(io.Discard, resp.Body, MaxDrain)
	}
	_ = resp.Body.Close()
}

// CancelOnClose replaces resp.Body with one that calls cancel once the body
// is closed, so that the context an attempt ran under lives exactly as long
// as the caller reads its body. A nil resp or body calls cancel at once.
func CancelOnClose(resp *http.Response, cancel context.CancelFunc) {
	if resp == nil || resp.Body == nil {
		cancel()
		return
	}
	resp.Body = KeepWrite(resp.Body, &cancelBody{ReadCloser: resp.Body, cancel: cancel})
}

// KeepWrite returns wrapped, a wrapper of the response body orig, with
// orig's Write method kept when orig has one. net/http makes the body of a
// 101 Switching Protocols response an io.ReadWriteCloser, the connection
// the caller talks over after the upgrade (a WebSocket, h2c); a RoundTripper
// that wraps every body with a plain io.ReadCloser would hide Write and
// break the upgrade. Every body wrapper in bulwark goes through KeepWrite.
func KeepWrite(orig, wrapped io.ReadCloser) io.ReadCloser {
	if w, ok := orig.(io.Writer); ok {
		return &writableBody{ReadCloser: wrapped, w: w}
	}
	return wrapped
}

// writableBody is a wrapped body that writes to the upgraded connection.
type writableBody struct {
	io.ReadCloser
	w io.Writer
}

func (b *writableBody) Write(p []byte) (int, error) { return b.w.Write(p) }

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// WriteTo keeps the underlying body's io.WriterTo, if any, reachable.
func (b *cancelBody) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, b.ReadCloser)
}

// HeaderWith returns a copy of h in which key (given in canonical form)
// has the values vs, in place of what h has under any spelling of key.
// The copy costs its map alone: it shares h's value slices, each
// capped at its length, so that Set, Add, Del or an append on the copy
// never reaches h (or another key's values); only writing into an
// element of a shared slice would, which no layer may do (below).
//
// It is for a RoundTripper that sets a header on the request it sends:
// the RoundTripper contract forbids modifying the caller's request, so it
// sends a shallow copy (req.WithContext) with this header, instead of a
// deep req.Clone that would also copy the URL, the values, the trailer
// and the form nobody changes. That is safe because no layer below may
// modify the request it is given either.
func HeaderWith(h http.Header, key string, vs []string) http.Header {
	out := make(http.Header, len(h)+1)
	for k, v := range h {
		if len(k) == len(key) && strings.EqualFold(k, key) {
			continue
		}
		out[k] = v[:len(v):len(v)]
	}
	out[key] = vs
	return out
}

// IsToken reports whether s is an RFC 9110 token (one or more tchars):
// the syntax of a header field name, a method and a Cache-Control
// directive's name.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsTchar(s[i]) {
			return false
		}
	}
	return true
}

// IsTchar reports whether c is an RFC 9110 tchar: a letter, a digit or
// one of !#$%&'*+-.^_`|~.
func IsTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
