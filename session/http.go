package session

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"

	"github.com/bulwark-go/bulwark/internal/httpx"
)

// Handler returns middleware that gives every request served by next a
// session, reached through the package's functions on r.Context().
//
// The session cookie is read but the store is not called until the
// handler uses the session (lazy load). A cookie that is not a well-formed
// token is ignored without a store call; a well-formed token the store
// does not know (never issued, expired, destroyed) is never adopted: a
// session created by the request gets a fresh token.
//
// The request's changes are committed, and the cookie set (with
// "Cache-Control: no-store") when a session is created or renewed, or
// deleted when it is destroyed, right before the handler's first
// WriteHeader, Write, ReadFrom or Flush reaches the client (1xx
// informational headers excepted), or when the handler returns if it
// wrote nothing. A failure of the store before that point (loading or
// committing) runs Config.ErrorHandler (default: 503) in place of the
// handler's response, with none of the headers the handler had set; the
// handler's later writes are discarded and return the error. After that
// point, a failure is reported only through Config.OnStoreError and the
// metrics.
//
// Store calls run under the request's context without its cancellation
// (its values and deadline are kept), so a client that hangs up stops
// neither the commit of what the handler did nor a Destroy.
//
// The writer passed to next keeps http.Flusher, http.Hijacker (when the
// server's writer has it), io.ReaderFrom and Unwrap for
// http.ResponseController. A panic in next commits nothing and goes on.
// A nil next panics.
func (m *Manager) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("session: Manager.Handler called with a nil next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &state{m: m}
		for _, c := range r.CookiesNamed(m.cookieName) {
			s.hadCookie = true
			if id, ok := parseToken(c.Value); ok {
				s.token, s.id = c.Value, id
				break
			}
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, s)
		s.reqCtx = ctx
		r = r.WithContext(ctx)
		hw := &hookWriter{ResponseWriter: w, s: s, r: r}
		var rec httpx.Recorder
		if _, ok := w.(http.Hijacker); ok {
			rec.Reset(hookHijacker{hw})
		} else {
			rec.Reset(hw)
		}
		defer s.markDone() // on return and on panic
		next.ServeHTTP(rec.Writer(), r)
		s.finish(w, r)
	})
}

// markDone ends the request's right to change its session: a goroutine the
// handler left behind gets ErrHandlerReturned.
func (s *state) markDone() {
	s.mu.Lock()
	s.done = true
	if s.cancel != nil {
		// A goroutine left behind may still Destroy: it gets a fresh
		// store context (its timer ends at the request's deadline).
		s.cancel()
		s.sctx, s.cancel = nil, nil
	}
	s.mu.Unlock()
}

// beforeWrite commits the session before the response's headers go out.
// It reports whether the handler's output may go on.
func (s *state) beforeWrite(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	if s.wrote {
		ok := !s.failed
		s.mu.Unlock()
		return ok
	}
	s.save(w.Header(), true)
	s.wrote = true
	err := s.err
	if err != nil {
		s.failed = true
	}
	s.mu.Unlock()
	if err != nil {
		// The ErrorHandler's answer replaces the handler's response: none
		// of the headers set for it (Content-Encoding, Cache-Control,
		// ETag, its cookies, ...) may go out with the error.
		clear(w.Header())
		s.m.onError(w, r, err)
		return false
	}
	return true
}

// finish commits what is left once the handler has returned.
func (s *state) finish(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.wrote {
		if !s.failed {
			s.save(w.Header(), false)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.beforeWrite(w, r)
}

// hookWriter runs the session's commit before anything reaches the client.
type hookWriter struct {
	http.ResponseWriter
	s *state
	r *http.Request
}

func (w *hookWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational: headers of the final response come later
		return
	}
	if w.s.beforeWrite(w.ResponseWriter, w.r) {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *hookWriter) Write(p []byte) (int, error) {
	if !w.s.beforeWrite(w.ResponseWriter, w.r) {
		return 0, w.s.failure()
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps the server's io.ReaderFrom (sendfile) reachable.
func (w *hookWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.s.beforeWrite(w.ResponseWriter, w.r) {
		return 0, w.s.failure()
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, src)
}

type writerOnly struct{ io.Writer }

// FlushError flushes through whatever the server's writer offers, for
// http.ResponseController.
func (w *hookWriter) FlushError() error {
	if !w.s.beforeWrite(w.ResponseWriter, w.r) {
		return w.s.failure()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (w *hookWriter) Flush() { _ = w.FlushError() }

// Unwrap returns the server's writer, for http.ResponseController.
func (w *hookWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type hookHijacker struct{ *hookWriter }

// Hijack commits the session (no cookie can be sent on a hijacked
// connection) and hands the connection over.
func (w hookHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s := w.s
	s.mu.Lock()
	if !s.wrote {
		s.save(w.Header(), false)
		s.wrote = true
	}
	s.mu.Unlock()
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

func (s *state) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
