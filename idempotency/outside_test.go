package idempotency_test

// Black-box tests written from the package's documentation alone, over real
// httptest servers on 127.0.0.1: every documented claim of Keeper.Handler,
// Keeper.Do, ParseKey and Config, checked the way a user would.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/idempotency"
)

// xsrv is an httptest server on 127.0.0.1 running keeper.Handler(h). done
// receives once per request after the middleware has returned (and so after
// it has completed or released the key).
type xsrv struct {
	*httptest.Server
	keeper *idempotency.Keeper
	done   chan struct{}
}

func xstart(t *testing.T, h http.Handler, cfg idempotency.Config) *xsrv {
	t.Helper()
	k := idempotency.New(cfg)
	s := &xsrv{keeper: k, done: make(chan struct{}, 1024)}
	mw := k.Handler(h)
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { s.done <- struct{}{} }()
		mw.ServeHTTP(w, r)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the panic tests
	s.Start()
	t.Cleanup(func() { s.Close(); k.Close() })
	return s
}

type xreply struct {
	status int
	header http.Header
	body   string
}

// xdo sends method to url with the given body and header pairs (a pair
// whose name is "Idempotency-Key" is added with Add, so it can repeat).
func xdo(t *testing.T, method, url, body string, hdr ...string) xreply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return xreply{resp.StatusCode, resp.Header, string(b)}
}

const key = "Idempotency-Key"

// xproblem checks that r is an RFC 9457 problem document of status and
// sentinel's type.
func xproblem(t *testing.T, r xreply, status int, sentinel string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %q)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if want := idempotency.ProblemTypeBase + sentinel; p["type"] != want {
		t.Errorf("type %v, want %s", p["type"], want)
	}
	if st, _ := p["status"].(float64); int(st) != status {
		t.Errorf("problem status %v, want %d", p["status"], status)
	}
	if s, _ := p["title"].(string); s == "" {
		t.Errorf("problem without a title: %q", r.body)
	}
	if r.header.Get(idempotency.ReplayedHeader) != "" {
		t.Errorf("an error answer says %s", idempotency.ReplayedHeader)
	}
	return p
}

// orders is a handler with a side effect: it counts its runs, and answers
// with a multi-valued header, a cookie, a date and the body it read.
type orders struct {
	runs   atomic.Int64
	status atomic.Int64
	bodies chan string
}

func (o *orders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.runs.Add(1)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if o.bodies != nil {
		o.bodies <- string(b)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Add("X-Multi", "one")
	h.Add("X-Multi", "two")
	h.Set("Location", fmt.Sprintf("/orders/%d", n))
	h.Set("Set-Cookie", "session=secret")
	h.Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
	code := int(o.status.Load())
	if code == 0 {
		code = http.StatusCreated
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"order":%d,"body":%q}`, n, b)
}

func TestOutsideReplayByteForByte(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			o := &orders{}
			s := xstart(t, o, idempotency.Config{})
			first := xdo(t, method, s.URL+"/orders?x=1", `{"a":1}`, key, "k-1")
			if first.status != 201 || first.header.Get(idempotency.ReplayedHeader) != "" {
				t.Fatalf("first: %d %v", first.status, first.header)
			}
			second := xdo(t, method, s.URL+"/orders?x=1", `{"a":1}`, key, "k-1")
			if o.runs.Load() != 1 {
				t.Fatalf("handler ran %d times", o.runs.Load())
			}
			if second.status != first.status || second.body != first.body {
				t.Fatalf("replay %d %q, want %d %q", second.status, second.body, first.status, first.body)
			}
			if second.header.Get(idempotency.ReplayedHeader) != "true" {
				t.Errorf("replay without %s: true", idempotency.ReplayedHeader)
			}
			for _, h := range []string{"Content-Type", "X-Multi", "Location", "Content-Length"} {
				if fmt.Sprint(first.header.Values(h)) != fmt.Sprint(second.header.Values(h)) {
					t.Errorf("%s: first %q, replay %q", h, first.header.Values(h), second.header.Values(h))
				}
			}
			if second.header.Get("Set-Cookie") != "" {
				t.Errorf("Set-Cookie replayed: %q", second.header.Get("Set-Cookie"))
			}
			if second.header.Get("Date") == "Mon, 02 Jan 2006 15:04:05 GMT" {
				t.Errorf("Date replayed")
			}
		})
	}
}

// The draft: the server "SHOULD respond with the result of the previously
// completed operation, success or an error": a 4xx is stored and replayed.
func TestOutsideClientErrorIsStored(t *testing.T) {
	o := &orders{}
	o.status.Store(http.StatusNotFound)
	s := xstart(t, o, idempotency.Config{})
	a := xdo(t, "POST", s.URL, "x", key, "k")
	b := xdo(t, "POST", s.URL, "x", key, "k")
	if o.runs.Load() != 1 || b.status != 404 || b.body != a.body || b.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("runs %d, replay %d %q", o.runs.Load(), b.status, b.body)
	}
}

func TestOutsideStatusPaths(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{Required: true, MaxRequestBytes: 16})

	t.Run("missing", func(t *testing.T) {
		xproblem(t, xdo(t, "POST", s.URL, "x"), 400, "ErrKeyMissing")
	})
	t.Run("malformed", func(t *testing.T) {
		for _, v := range []string{`"unterminated`, `a b`, `"a";p=1`, `a,b`, `""`, "\"caf\u00e9\"", `"a\qb"`} {
			xproblem(t, xdo(t, "POST", s.URL, "x", key, v), 400, "ErrKeyMalformed")
		}
	})
	t.Run("repeated", func(t *testing.T) {
		xproblem(t, xdo(t, "POST", s.URL, "x", key, "a", key, "a"), 400, "ErrKeyMalformed")
	})
	t.Run("too large", func(t *testing.T) {
		xproblem(t, xdo(t, "POST", s.URL, strings.Repeat("x", 17), key, "big"), 413, "ErrTooLarge")
		// exactly the limit is fine
		if r := xdo(t, "POST", s.URL, strings.Repeat("x", 16), key, "big"); r.status != 201 {
			t.Fatalf("a body of exactly MaxRequestBytes: %d %q", r.status, r.body)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		xdo(t, "POST", s.URL+"/a", "x", key, "m")
		xproblem(t, xdo(t, "POST", s.URL+"/a", "y", key, "m"), 422, "ErrMismatch")
		xproblem(t, xdo(t, "POST", s.URL+"/b", "x", key, "m"), 422, "ErrMismatch")
		xproblem(t, xdo(t, "POST", s.URL+"/a?q=1", "x", key, "m"), 422, "ErrMismatch")
		xproblem(t, xdo(t, "PATCH", s.URL+"/a", "x", key, "m"), 422, "ErrMismatch")
	})
	if n := o.runs.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2 (the 16-byte body and /a)", n)
	}
}

func TestOutsideInProgress409(t *testing.T) {
	in, gate := make(chan struct{}), make(chan struct{})
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		in <- struct{}{}
		<-gate
		io.WriteString(w, "done")
	}), idempotency.Config{})
	first := make(chan xreply)
	go func() { first <- xdo(t, "POST", s.URL, "x", key, "k") }()
	<-in
	r := xdo(t, "POST", s.URL, "x", key, "k")
	xproblem(t, r, 409, "ErrInProgress")
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", r.header.Get("Retry-After"))
	}
	// A different payload while the first runs: the doc says ErrMismatch.
	xproblem(t, xdo(t, "POST", s.URL, "other", key, "k"), 422, "ErrMismatch")
	close(gate)
	if f := <-first; f.status != 200 || f.body != "done" {
		t.Fatalf("first: %d %q", f.status, f.body)
	}
	<-s.done
	if r := xdo(t, "POST", s.URL, "x", key, "k"); r.body != "done" || r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("after: %d %q", r.status, r.body)
	}
	if runs.Load() != 1 {
		t.Fatalf("runs %d", runs.Load())
	}
}

func TestOutsideWaitReplays(t *testing.T) {
	in, gate := make(chan struct{}, 1), make(chan struct{})
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		in <- struct{}{}
		<-gate
		io.WriteString(w, "done")
	}), idempotency.Config{Wait: time.Minute})
	const n = 6
	replies := make(chan xreply, n)
	go func() { replies <- xdo(t, "POST", s.URL, "x", key, "k") }()
	<-in
	for range n - 1 {
		go func() { replies <- xdo(t, "POST", s.URL, "x", key, "k") }()
	}
	close(gate)
	replayed := 0
	for range n {
		r := <-replies
		if r.status != 200 || r.body != "done" {
			t.Errorf("reply %d %q", r.status, r.body)
		}
		if r.header.Get(idempotency.ReplayedHeader) == "true" {
			replayed++
		}
	}
	if runs.Load() != 1 || replayed != n-1 {
		t.Fatalf("runs %d, replayed %d", runs.Load(), replayed)
	}
}

// With Wait, when the first request's answer is not stored (a 5xx releases
// the key), the waiting request must not get 409 nor the 5xx: the key is
// free, so it runs itself.
func TestOutsideWaitAfterReleaseRuns(t *testing.T) {
	in, gate := make(chan struct{}, 2), make(chan struct{})
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		in <- struct{}{}
		if n == 1 {
			<-gate
			http.Error(w, "boom", 500)
			return
		}
		io.WriteString(w, "second")
	}), idempotency.Config{Wait: time.Minute})
	first := make(chan xreply)
	go func() { first <- xdo(t, "POST", s.URL, "x", key, "k") }()
	<-in
	second := make(chan xreply)
	go func() { second <- xdo(t, "POST", s.URL, "x", key, "k") }()
	close(gate)
	if r := <-first; r.status != 500 {
		t.Fatalf("first %d", r.status)
	}
	// The second either waited and then ran, or came after the release and
	// ran: either way it runs, once.
	if r := <-second; r.status != 200 || r.body != "second" {
		t.Fatalf("waiting request after a released key: %d %q", r.status, r.body)
	}
}

func TestOutsideServerErrors(t *testing.T) {
	for _, store := range []bool{false, true} {
		t.Run(fmt.Sprint("StoreServerErrors=", store), func(t *testing.T) {
			o := &orders{}
			o.status.Store(503)
			s := xstart(t, o, idempotency.Config{StoreServerErrors: store})
			a := xdo(t, "POST", s.URL, "x", key, "k")
			<-s.done
			b := xdo(t, "POST", s.URL, "x", key, "k")
			want := int64(2)
			if store {
				want = 1
				if b.body != a.body || b.status != 503 || b.header.Get(idempotency.ReplayedHeader) != "true" {
					t.Errorf("stored 5xx not replayed: %d %q", b.status, b.body)
				}
			}
			if o.runs.Load() != want {
				t.Fatalf("runs %d, want %d", o.runs.Load(), want)
			}
		})
	}
}

func TestOutsideMaxResponseBytes(t *testing.T) {
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		b, _ := io.ReadAll(r.Body)
		n, _ := strconv.Atoi(string(b))
		// written in small pieces, as a streaming handler would
		for i := range n {
			w.Write([]byte{'a' + byte(i%26)})
		}
	}), idempotency.Config{MaxResponseBytes: 100})
	want := func(n int) string {
		var sb strings.Builder
		for i := range n {
			sb.WriteByte('a' + byte(i%26))
		}
		return sb.String()
	}
	big := xdo(t, "POST", s.URL, "101", key, "big")
	<-s.done
	if big.body != want(101) {
		t.Fatalf("a response over the limit is cut: %d bytes", len(big.body))
	}
	again := xdo(t, "POST", s.URL, "101", key, "big")
	<-s.done
	if runs.Load() != 2 || again.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("a response over the limit was stored: runs %d", runs.Load())
	}
	xdo(t, "POST", s.URL, "100", key, "fits")
	<-s.done
	r := xdo(t, "POST", s.URL, "100", key, "fits")
	if runs.Load() != 3 || r.body != want(100) || r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("a response of exactly the limit: runs %d, %q", runs.Load(), r.body)
	}
}

func TestOutsidePanicReleases(t *testing.T) {
	for _, v := range []any{"boom", http.ErrAbortHandler} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			var runs atomic.Int64
			s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if runs.Add(1) == 1 {
					w.WriteHeader(201)
					w.Write([]byte("half"))
					panic(v)
				}
				io.WriteString(w, "ok")
			}), idempotency.Config{})
			req, _ := http.NewRequest("POST", s.URL, strings.NewReader("x"))
			req.Header.Set(key, "k")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			<-s.done
			r := xdo(t, "POST", s.URL, "x", key, "k")
			if r.status != 200 || r.body != "ok" || runs.Load() != 2 {
				t.Fatalf("after a panic: %d %q, runs %d", r.status, r.body, runs.Load())
			}
		})
	}
}

func TestOutsideStreaming(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a bound, not a timing
	defer cancel()
	for _, how := range []string{"Flusher", "ResponseController"} {
		t.Run(how, func(t *testing.T) {
			read := make(chan struct{})
			var runs atomic.Int64
			s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: 1\n\n")
				if how == "Flusher" {
					f, ok := w.(http.Flusher)
					if !ok {
						t.Error("the writer is not an http.Flusher")
						return
					}
					f.Flush()
				} else {
					rc := http.NewResponseController(w)
					if err := rc.Flush(); err != nil {
						t.Errorf("ResponseController.Flush: %v", err)
						return
					}
					if err := rc.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
						t.Errorf("ResponseController.SetWriteDeadline: %v", err)
					}
				}
				select {
				case <-read:
				case <-ctx.Done():
					return
				}
				io.WriteString(w, "data: 2\n\n")
			}), idempotency.Config{})
			req, _ := http.NewRequestWithContext(ctx, "POST", s.URL, strings.NewReader("x"))
			req.Header.Set(key, "stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "data: 1\n" {
				t.Fatalf("first event %q, %v (not streamed?)", line, err)
			}
			close(read)
			rest, _ := io.ReadAll(br)
			resp.Body.Close()
			if string(rest) != "\ndata: 2\n\n" {
				t.Fatalf("rest %q", rest)
			}
			<-s.done
			r := xdo(t, "POST", s.URL, "x", key, "stream")
			if r.body != "data: 1\n\ndata: 2\n\n" || r.header.Get(idempotency.ReplayedHeader) != "true" || runs.Load() != 1 {
				t.Fatalf("replay of a stream: %q, runs %d", r.body, runs.Load())
			}
		})
	}
}

func TestOutsidePassThrough(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{Required: true})
	for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "OPTIONS"} {
		a := xdo(t, m, s.URL, "", key, "k")
		b := xdo(t, m, s.URL, "", key, "k")
		if a.status != 201 || b.status != 201 || b.header.Get(idempotency.ReplayedHeader) != "" {
			t.Errorf("%s: %d %d %v", m, a.status, b.status, b.header)
		}
	}
	// A malformed key on a method that is not idempotency-managed is ignored.
	if r := xdo(t, "GET", s.URL, "", key, `"bad`); r.status != 201 {
		t.Errorf("GET with a malformed key: %d", r.status)
	}
	if o.runs.Load() != 11 {
		t.Fatalf("runs %d, want 11", o.runs.Load())
	}
	// POST without a key and Required false runs as if the middleware was not there.
	o2 := &orders{}
	s2 := xstart(t, o2, idempotency.Config{})
	xdo(t, "POST", s2.URL, "x")
	xdo(t, "POST", s2.URL, "x")
	if o2.runs.Load() != 2 {
		t.Fatalf("keyless POST runs %d", o2.runs.Load())
	}
	// Methods configured: PUT only.
	o3 := &orders{}
	s3 := xstart(t, o3, idempotency.Config{Methods: []string{"PUT"}})
	xdo(t, "PUT", s3.URL, "x", key, "k")
	if r := xdo(t, "PUT", s3.URL, "x", key, "k"); r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Errorf("PUT in Methods not replayed")
	}
	xdo(t, "POST", s3.URL, "x", key, "k")
	if o3.runs.Load() != 2 {
		t.Fatalf("runs %d, want 2", o3.runs.Load())
	}
}

func TestOutsideKeyForms(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{})
	uuid := "8e03978e-40d5-43e8-bc93-6894a57f9324"
	xdo(t, "POST", s.URL, "x", key, `"`+uuid+`"`)
	for _, v := range []string{uuid, `"` + uuid + `"`, " \t" + uuid + " ", "\"" + uuid + "\"\t"} {
		if r := xdo(t, "POST", s.URL, "x", key, v); r.header.Get(idempotency.ReplayedHeader) != "true" {
			t.Errorf("%q: not the same key as the quoted UUID (%d %q)", v, r.status, r.body)
		}
	}
	// the header name in lower case, as HTTP/2 and many clients send it
	if r := xdo(t, "POST", s.URL, "x", "idempotency-key", uuid); r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Errorf("lower-case header name not recognised")
	}
	if o.runs.Load() != 1 {
		t.Fatalf("runs %d", o.runs.Load())
	}
	// sf-string content: spaces, escaped quotes and backslashes, all printable ASCII
	for _, c := range []struct{ header, key string }{
		{`"a b"`, "a b"},
		{`"a\"b"`, `a"b`},
		{`"a\\b"`, `a\b`},
		{`"~!@#$%^&*()_+{}|:<>?"`, `~!@#$%^&*()_+{}|:<>?`},
		{"bare:/.-_~!#$%&'*+^`|", "bare:/.-_~!#$%&'*+^`|"},
	} {
		got, err := idempotency.ParseKey(c.header, 255)
		if err != nil || got != c.key {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", c.header, got, err, c.key)
		}
		r := xdo(t, "POST", s.URL, "y", key, c.header)
		if r.status != 201 {
			t.Errorf("%q: %d %q", c.header, r.status, r.body)
		}
	}
	for _, bad := range []string{``, ` `, `"`, `"a\b"`, `"a"b`, `a"`, "\"\x7f\"", "\"\u00e9\"", "\u00e9", `a;b`, `"a", "b"`, "a\tb", `"abc`} {
		if _, err := idempotency.ParseKey(bad, 255); !errors.Is(err, idempotency.ErrKeyMalformed) {
			t.Errorf("ParseKey(%q): %v, want ErrKeyMalformed", bad, err)
		}
	}
}

func TestOutsideKeyLength(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{})
	if r := xdo(t, "POST", s.URL, "x", key, strings.Repeat("k", 255)); r.status != 201 {
		t.Fatalf("255-byte key: %d", r.status)
	}
	if r := xdo(t, "POST", s.URL, "x", key, `"`+strings.Repeat("k", 255)+`"`); r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("quoted 255-byte key: %d", r.status)
	}
	xproblem(t, xdo(t, "POST", s.URL, "x", key, strings.Repeat("k", 256)), 400, "ErrKeyMalformed")
	// the length is the key's, after unescaping: 255 escaped quotes fit
	if _, err := idempotency.ParseKey(`"`+strings.Repeat(`\"`, 255)+`"`, 255); err != nil {
		t.Errorf("255 escaped quotes: %v", err)
	}
	s2 := xstart(t, o, idempotency.Config{MaxKeyLength: idempotency.MaxKeyLength})
	if r := xdo(t, "POST", s2.URL, "x", key, strings.Repeat("k", 1024)); r.status != 201 {
		t.Fatalf("1024-byte key with MaxKeyLength 1024: %d", r.status)
	}
	xproblem(t, xdo(t, "POST", s2.URL, "x", key, strings.Repeat("k", 1025)), 400, "ErrKeyMalformed")
	// a huge header is answered, never a crash
	if r := xdo(t, "POST", s2.URL, "x", key, strings.Repeat("k", 64<<10)); r.status != 400 && r.status != 431 {
		t.Fatalf("64 KiB key: %d", r.status)
	}
}

func TestOutsideCustomHeader(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{Header: "X-Request-Id", Required: true})
	xproblem(t, xdo(t, "POST", s.URL, "x", key, "k"), 400, "ErrKeyMissing")
	xdo(t, "POST", s.URL, "x", "X-Request-Id", "k")
	if r := xdo(t, "POST", s.URL, "x", "x-request-id", "k"); r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("custom header: %d", r.status)
	}
}

func TestOutsideEmptyAndChunkedBodies(t *testing.T) {
	o := &orders{bodies: make(chan string, 16)}
	s := xstart(t, o, idempotency.Config{MaxRequestBytes: 1 << 10})
	a := xdo(t, "POST", s.URL, "", key, "empty")
	<-o.bodies
	if b := xdo(t, "POST", s.URL, "", key, "empty"); b.body != a.body || b.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("empty body not replayed")
	}
	chunked := func(k, body string) xreply {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < len(body); i += 7 {
				pw.Write([]byte(body[i:min(i+7, len(body))]))
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", s.URL, pr) // no Content-Length: chunked
		req.Header.Set(key, k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return xreply{resp.StatusCode, resp.Header, string(rb)}
	}
	body := strings.Repeat("chunked-body;", 40)
	c1 := chunked("chunk", body)
	if got := <-o.bodies; got != body {
		t.Fatalf("handler read %q, want the whole chunked body", got)
	}
	if c2 := chunked("chunk", body); c2.body != c1.body || c2.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("chunked replay: %d %q", c2.status, c2.body)
	}
	// the same body sent with a Content-Length is the same request
	if c3 := xdo(t, "POST", s.URL, body, key, "chunk"); c3.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("same body with Content-Length: %d %q", c3.status, c3.body)
	}
	xproblem(t, chunked("chunk-big", strings.Repeat("z", 1<<10+1)), 413, "ErrTooLarge")
	if o.runs.Load() != 2 {
		t.Fatalf("runs %d", o.runs.Load())
	}
}

// A client that goes away while its request body is still arriving: the
// request never ran, so the key must not be held.
func TestOutsideClientDiesDuringBody(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{})
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k\r\nContent-Length: 100\r\n\r\nonly-part")
	conn.Close()
	<-s.done
	if r := xdo(t, "POST", s.URL, strings.Repeat("x", 100), key, "k"); r.status != 201 || o.runs.Load() != 1 {
		t.Fatalf("retry after a cut body: %d %q, runs %d", r.status, r.body, o.runs.Load())
	}
}

// disconnectThenRetry sends a request with key "k" whose client goes away
// once first (the handler of the first run) has started; when the handler
// has returned and the middleware with it, it retries and returns the reply.
func disconnectThenRetry(t *testing.T, first func(w http.ResponseWriter, r *http.Request), then http.HandlerFunc) (xreply, int64) {
	t.Helper()
	in := make(chan struct{})
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			in <- struct{}{}
			<-r.Context().Done()
			first(w, r)
			return
		}
		then(w, r)
	}), idempotency.Config{Lease: idempotency.MaxLease})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL, strings.NewReader("x"))
		req.Header.Set(key, "k")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-in
	cancel()
	<-errc
	<-s.done
	return xdo(t, "POST", s.URL, "x", key, "k"), runs.Load()
}

// A client that disconnects while the handler runs, which then answers
// anyway (the work was done): the answer is stored, so the retry gets it
// at once instead of waiting for the lease.
func TestOutsideClientDisconnectsMidRequest(t *testing.T) {
	r, runs := disconnectThenRetry(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		io.WriteString(w, "made")
	}, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ran again") })
	if r.status != 201 || r.body != "made" || r.header.Get(idempotency.ReplayedHeader) != "true" || runs != 1 {
		t.Fatalf("retry after the client went away: %d %q, runs %d", r.status, r.body, runs)
	}
}

func TestOutsideConcurrentIdenticalRunOnce(t *testing.T) {
	const n = 16
	gate := make(chan struct{})
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		<-gate
		w.WriteHeader(201)
		io.WriteString(w, "once")
	}), idempotency.Config{})
	var wg sync.WaitGroup
	var conflicts, created atomic.Int64
	var once sync.Once
	for range n {
		wg.Go(func() {
			r := xdo(t, "POST", s.URL, "same", key, "k")
			switch r.status {
			case 409:
				if conflicts.Add(1) == n-1 {
					once.Do(func() { close(gate) })
				}
			case 201:
				created.Add(1)
			default:
				t.Errorf("status %d %q", r.status, r.body)
			}
		})
	}
	wg.Wait()
	if runs.Load() != 1 || created.Load() != 1 {
		t.Fatalf("runs %d, created %d, conflicts %d", runs.Load(), created.Load(), conflicts.Load())
	}
}

func TestOutsideScopeIsolation(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{})
	alice := xdo(t, "POST", s.URL, "pay 100", key, "guessable-1", "Authorization", "Bearer alice")
	// The attack: Mallory reuses Alice's key and payload.
	mallory := xdo(t, "POST", s.URL, "pay 100", key, "guessable-1", "Authorization", "Bearer mallory")
	if mallory.body == alice.body || mallory.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("another caller got Alice's stored response: %q", mallory.body)
	}
	anon := xdo(t, "POST", s.URL, "pay 100", key, "guessable-1")
	if anon.body == alice.body || anon.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("an anonymous caller got Alice's stored response")
	}
	// Mallory with a different payload is not told the key exists (no 422).
	if r := xdo(t, "POST", s.URL, "other", key, "guessable-1", "Authorization", "Bearer eve"); r.status != 201 {
		t.Fatalf("another scope saw Alice's fingerprint: %d", r.status)
	}
	if again := xdo(t, "POST", s.URL, "pay 100", key, "guessable-1", "Authorization", "Bearer alice"); again.body != alice.body {
		t.Fatalf("Alice's own retry: %q", again.body)
	}
	// A custom Scope.
	o2 := &orders{}
	s2 := xstart(t, o2, idempotency.Config{Scope: func(r *http.Request) string { return r.Header.Get("X-User") }})
	xdo(t, "POST", s2.URL, "x", key, "k", "X-User", "u1")
	xdo(t, "POST", s2.URL, "x", key, "k", "X-User", "u2")
	if r := xdo(t, "POST", s2.URL, "x", key, "k", "X-User", "u1", "Authorization", "changes nothing"); r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("custom scope")
	}
	if o2.runs.Load() != 2 {
		t.Fatalf("runs %d", o2.runs.Load())
	}
}

// A scope and a key that concatenate alike must not collide.
func TestOutsideStoreKeyUnambiguous(t *testing.T) {
	if idempotency.StoreKey("ab", "c") == idempotency.StoreKey("a", "bc") {
		t.Fatal("StoreKey(ab, c) == StoreKey(a, bc)")
	}
	if idempotency.StoreKey("", "x") == idempotency.StoreKey("x", "") {
		t.Fatal("StoreKey collides")
	}
	if len(idempotency.StoreKey("s", strings.Repeat("k", 1000))) != len(idempotency.StoreKey("", "")) {
		t.Fatal("StoreKey is not of a fixed size")
	}
}

func TestOutsideFingerprintOff(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{Fingerprint: func(*http.Request, []byte) string { return "" }})
	a := xdo(t, "POST", s.URL, "x", key, "k")
	b := xdo(t, "POST", s.URL+"/elsewhere", "y", key, "k")
	if b.body != a.body || o.runs.Load() != 1 {
		t.Fatalf("fingerprint off: %d %q", b.status, b.body)
	}
}

func TestOutsideLeaseExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
		defer store.Close()
		const lease = 3 * time.Second
		k := idempotency.New(idempotency.Config{Store: store, Lease: lease})
		defer k.Close()
		ctx := context.Background()
		req := idempotency.Request{Scope: "s", Key: "k", Fingerprint: "f"}
		// A claimant that dies: it claims and never renews.
		c, err := store.Claim(ctx, idempotency.StoreKey(req.Scope, req.Key), req.Fingerprint, lease)
		if err != nil || c.State != idempotency.Claimed {
			t.Fatalf("claim: %v %v", c.State, err)
		}
		runs := 0
		fn := func(context.Context) (*idempotency.Record, error) {
			runs++
			return &idempotency.Record{Status: 201, Body: []byte("r")}, nil
		}
		_, _, err = k.Do(ctx, req, fn)
		var ip *idempotency.InProgressError
		if !errors.As(err, &ip) || !errors.Is(err, idempotency.ErrInProgress) || ip.RetryAfter() <= 0 {
			t.Fatalf("while claimed: %v", err)
		}
		time.Sleep(lease - time.Millisecond)
		if _, _, err = k.Do(ctx, req, fn); !errors.Is(err, idempotency.ErrInProgress) {
			t.Fatalf("just before the lease ends: %v", err)
		}
		time.Sleep(time.Millisecond)
		rec, replayed, err := k.Do(ctx, req, fn)
		if err != nil || replayed || runs != 1 || string(rec.Body) != "r" {
			t.Fatalf("after the lease: %v %v %d", err, replayed, runs)
		}
		// Renewal: a long fn keeps its claim for many leases.
		req2 := idempotency.Request{Scope: "s", Key: "long", Fingerprint: "f"}
		done := make(chan struct{})
		go func() {
			defer close(done)
			k.Do(ctx, req2, func(context.Context) (*idempotency.Record, error) {
				time.Sleep(10 * lease)
				return &idempotency.Record{Status: 200}, nil
			})
		}()
		for range 9 {
			time.Sleep(lease)
			if _, _, err := k.Do(ctx, req2, fn); !errors.Is(err, idempotency.ErrInProgress) {
				t.Fatalf("a renewed claim was lost: %v", err)
			}
		}
		<-done
		if _, replayed, err := k.Do(ctx, req2, fn); err != nil || !replayed {
			t.Fatalf("after the long fn: %v %v", replayed, err)
		}
		// Retention: a record is replayed until it expires, then runs again.
		k2 := idempotency.New(idempotency.Config{Store: store, Retention: time.Hour})
		defer k2.Close()
		req3 := idempotency.Request{Scope: "s", Key: "ret", Fingerprint: "f"}
		k2.Do(ctx, req3, fn)
		time.Sleep(time.Hour - time.Second)
		if _, replayed, _ := k2.Do(ctx, req3, fn); !replayed {
			t.Fatal("not replayed within Retention")
		}
		time.Sleep(2 * time.Second)
		if _, replayed, _ := k2.Do(ctx, req3, fn); replayed {
			t.Fatal("replayed after Retention")
		}
	})
}

func TestOutsideDoContract(t *testing.T) {
	k := idempotency.New(idempotency.Config{})
	defer k.Close()
	ctx := context.Background()
	runs := 0
	errBoom := errors.New("boom")
	fail := func(context.Context) (*idempotency.Record, error) { runs++; return nil, errBoom }
	req := idempotency.Request{Scope: "s", Key: "k", Fingerprint: "f"}
	if _, _, err := k.Do(ctx, req, fail); !errors.Is(err, errBoom) {
		t.Fatalf("fn's error: %v", err)
	}
	if _, _, err := k.Do(ctx, req, fail); !errors.Is(err, errBoom) || runs != 2 {
		t.Fatalf("an error released the key: %v, runs %d", err, runs)
	}
	rec, replayed, err := k.Do(ctx, req, func(context.Context) (*idempotency.Record, error) {
		return &idempotency.Record{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x")}, nil
	})
	if err != nil || replayed || rec.Status != 200 {
		t.Fatal(rec, replayed, err)
	}
	rec, replayed, err = k.Do(ctx, req, fail)
	if err != nil || !replayed || string(rec.Body) != "x" || rec.Header.Get("A") != "b" {
		t.Fatal(rec, replayed, err)
	}
	if _, _, err = k.Do(ctx, idempotency.Request{Scope: "s", Key: "k", Fingerprint: "g"}, fail); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	// empty fingerprint turns the check off for this request
	if _, replayed, err = k.Do(ctx, idempotency.Request{Scope: "s", Key: "k"}, fail); err != nil || !replayed {
		t.Fatalf("empty fingerprint: %v %v", replayed, err)
	}
	// nil ctx and nil fn panic with a message naming them
	for name, call := range map[string]func(){
		"ctx": func() { k.Do(nil, req, fail) }, //nolint:staticcheck // the point
		"fn":  func() { k.Do(ctx, req, nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), map[string]string{"ctx": "nil context", "fn": "nil fn"}[name]) {
					t.Errorf("nil %s: panic %v", name, r)
				}
			}()
			call()
		}()
	}
	// A cancelled caller's context: the store is not asked, fn does not run.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	_, _, err = k.Do(cctx, idempotency.Request{Key: "cancelled"}, func(context.Context) (*idempotency.Record, error) {
		ran = true
		return &idempotency.Record{Status: 200}, nil
	})
	if ran && err == nil {
		t.Logf("Do with a cancelled context ran fn")
	}
}

func TestOutsideCloseIdempotent(t *testing.T) {
	k := idempotency.New(idempotency.Config{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := k.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	// keeps working after Close
	o := &orders{}
	srv := httptest.NewServer(k.Handler(o))
	defer srv.Close()
	xdo(t, "POST", srv.URL, "x", key, "k")
	if r := xdo(t, "POST", srv.URL, "x", key, "k"); r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatal("not working after Close")
	}
	m := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if m.Close() != nil || m.Close() != nil {
		t.Fatal("MemoryStore.Close")
	}
}

func TestOutsideConfigValidate(t *testing.T) {
	bad := map[string]idempotency.Config{
		"MaxKeyLength<0":       {MaxKeyLength: -1},
		"MaxKeyLength>Max":     {MaxKeyLength: idempotency.MaxKeyLength + 1},
		"MaxRequestBytes<0":    {MaxRequestBytes: -1},
		"MaxRequestBytes>Max":  {MaxRequestBytes: idempotency.MaxMaxRequestBytes + 1},
		"MaxResponseBytes<0":   {MaxResponseBytes: -1},
		"MaxResponseBytes>M":   {MaxResponseBytes: idempotency.MaxMaxResponseBytes + 1},
		"Retention<0":          {Retention: -1},
		"Retention>Max":        {Retention: idempotency.MaxRetention + 1},
		"Lease<0":              {Lease: -1},
		"Lease>Max":            {Lease: idempotency.MaxLease + 1},
		"Wait<0":               {Wait: -1},
		"Wait>Max":             {Wait: idempotency.MaxWait + 1},
		"StoreTimeout<0":       {StoreTimeout: -1},
		"StoreTimeout huge":    {StoreTimeout: 1 << 62},
		"Header bad":           {Header: "Bad Header"},
		"Header colon":         {Header: "Bad:Header"},
		"Lease tiny":           {Lease: 2},
		"Lease under MinLease": {Lease: idempotency.MinLease - 1},
		"Methods bad":          {Methods: []string{"PO ST"}},
		"ReplayHeaders bad":    {ReplayHeaders: []string{"a b"}},
		"StoreTimeout>Max":     {StoreTimeout: idempotency.MaxStoreTimeout + 1},
		"Methods empty name":   {Methods: []string{""}},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			err := cfg.Validate()
			var ce *bulwark.ConfigError
			if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) {
				t.Fatalf("Validate: %v", err)
			}
			func() {
				defer func() {
					r := recover()
					if r == nil {
						t.Errorf("New did not panic")
						return
					}
					if e, ok := r.(error); !ok || !errors.Is(e, bulwark.ErrInvalidConfig) {
						t.Errorf("New panicked with %v", r)
					}
				}()
				idempotency.New(cfg).Close()
			}()
		})
	}
	if err := (idempotency.Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	good := idempotency.Config{MaxKeyLength: idempotency.MaxKeyLength, MaxRequestBytes: idempotency.MaxMaxRequestBytes,
		MaxResponseBytes: idempotency.MaxMaxResponseBytes, Retention: idempotency.MaxRetention, Lease: idempotency.MaxLease, Wait: idempotency.MaxWait,
		StoreTimeout: idempotency.MaxStoreTimeout, Methods: []string{"POST", "M-SEARCH"}, ReplayHeaders: []string{"content-type", "X-A"}}
	if err := (idempotency.Config{Lease: idempotency.MinLease}).Validate(); err != nil {
		t.Fatalf("MinLease is allowed: %v", err)
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("the documented bounds are allowed: %v", err)
	}
	for name, mc := range map[string]idempotency.MemoryConfig{
		"MaxKeys<0":       {MaxKeys: -1},
		"MaxKeys>Max":     {MaxKeys: idempotency.MaxMemoryKeys + 1},
		"SweepInterval<0": {SweepInterval: -1},
	} {
		if err := mc.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("MemoryConfig %s: %v", name, err)
		}
	}
}

func TestOutsideMetricNames(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	in, gate := make(chan struct{}), make(chan struct{})
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			in <- struct{}{}
			<-gate
		}
		io.WriteString(w, "ok")
	}), idempotency.Config{MeterProvider: mp, Name: "orders", MaxRequestBytes: 4})
	first := make(chan xreply)
	go func() { first <- xdo(t, "POST", s.URL, "x", key, "k") }()
	<-in
	xdo(t, "POST", s.URL, "x", key, "k") // conflict
	close(gate)
	<-first
	<-s.done
	<-s.done
	xdo(t, "POST", s.URL, "x", key, "k")     // replayed
	xdo(t, "POST", s.URL, "y", key, "k")     // mismatch
	xdo(t, "POST", s.URL, "x", key, `"bad`)  // invalid
	xdo(t, "POST", s.URL, "x")               // no key: not counted
	xdo(t, "POST", s.URL, "12345", key, "z") // too large
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	names := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/bulwark-go/bulwark/idempotency" {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			names[m.Name] = true
			if m.Name != "bulwark.idempotency.requests" {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("requests is %T", m.Data)
			}
			for _, dp := range sum.DataPoints {
				res, _ := dp.Attributes.Value("bulwark.idempotency.result")
				name, _ := dp.Attributes.Value("bulwark.name")
				if name.AsString() != "orders" {
					t.Errorf("bulwark.name %q", name.AsString())
				}
				got[res.AsString()] += dp.Value
			}
		}
	}
	for _, n := range []string{"bulwark.idempotency.requests", "bulwark.idempotency.store.errors"} {
		if !names[n] {
			t.Errorf("no instrument %s (have %v)", n, names)
		}
	}
	want := map[string]int64{"executed": 1, "conflict": 1, "replayed": 1, "mismatch": 1, "invalid": 2}
	for r, n := range want {
		if got[r] != n {
			t.Errorf("result %s: %d, want %d (all: %v)", r, got[r], n, got)
		}
	}
}

// A 1xx informational answer (103 Early Hints) is not the response's
// status: the final one is stored and replayed.
func TestOutsideInformationalResponse(t *testing.T) {
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "made")
	}), idempotency.Config{})
	a := xdo(t, "POST", s.URL, "x", key, "k")
	<-s.done
	b := xdo(t, "POST", s.URL, "x", key, "k")
	if a.status != 201 || b.status != 201 || b.body != "made" || runs.Load() != 1 {
		t.Fatalf("first %d, replay %d %q, runs %d", a.status, b.status, b.body, runs.Load())
	}
}

// A handler that writes nothing answers 200 with an empty body; that is
// what a retry gets.
func TestOutsideHandlerWritesNothing(t *testing.T) {
	var runs atomic.Int64
	s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs.Add(1) }), idempotency.Config{})
	xdo(t, "POST", s.URL, "x", key, "k")
	<-s.done
	if r := xdo(t, "POST", s.URL, "x", key, "k"); r.status != 200 || r.body != "" || runs.Load() != 1 {
		t.Fatalf("%d %q runs %d", r.status, r.body, runs.Load())
	}
}

// ParseKey's maxLen is capped by MaxKeyLength, as its doc says: "no key
// longer than this is ever accepted".
func TestParseKeyNeverAcceptsMoreThanMaxKeyLength(t *testing.T) {
	long := strings.Repeat("k", idempotency.MaxKeyLength+1)
	for _, maxLen := range []int{idempotency.MaxKeyLength + 1, 1 << 20, 0, -1} {
		if _, err := idempotency.ParseKey(long, maxLen); !errors.Is(err, idempotency.ErrKeyMalformed) {
			t.Errorf("ParseKey(%d bytes, %d): %v, want ErrKeyMalformed", len(long), maxLen, err)
		}
		if _, err := idempotency.ParseKey(`"`+long+`"`, maxLen); !errors.Is(err, idempotency.ErrKeyMalformed) {
			t.Errorf("ParseKey(quoted %d bytes, %d): %v, want ErrKeyMalformed", len(long), maxLen, err)
		}
	}
	if _, err := idempotency.ParseKey(long[1:], 0); err != nil {
		t.Errorf("ParseKey(MaxKeyLength bytes, 0): %v", err)
	}
}

// A client that goes away, after which the handler returns without
// answering: net/http would send an implicit 200 with no body that nobody
// wrote; it must not be stored and replayed as if the request had succeeded.
func TestClientGoneWithoutAnswerReleasesTheKey(t *testing.T) {
	// e.g. a database call cancelled and rolled back: nothing written
	r, runs := disconnectThenRetry(t, func(http.ResponseWriter, *http.Request) {}, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		io.WriteString(w, "created")
	})
	if r.status != 201 || r.body != "created" || runs != 2 {
		t.Fatalf("retry after the client went away: %d %q (replayed %q), runs %d",
			r.status, r.body, r.header.Get(idempotency.ReplayedHeader), runs)
	}
}

// An http.MaxBytesReader set by an outer middleware, smaller than
// MaxRequestBytes, is a body too large: 413, as for MaxRequestBytes.
func TestOuterMaxBytesReaderIs413(t *testing.T) {
	o := &orders{}
	k := idempotency.New(idempotency.Config{})
	defer k.Close()
	inner := k.Handler(o)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 8)
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	xproblem(t, xdo(t, "POST", srv.URL, strings.Repeat("x", 9), key, "k"), 413, "ErrTooLarge")
	if o.runs.Load() != 0 {
		t.Fatal("the handler ran")
	}
}

// A caller that gave up is not a store failure: it is not counted as
// store_error (nor as anything else).
func TestCancelledCallerIsNotCountedAsStoreError(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	k := idempotency.New(idempotency.Config{MeterProvider: mp})
	defer k.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k.Do(ctx, idempotency.Request{Key: "k"}, func(context.Context) (*idempotency.Record, error) {
		return &idempotency.Record{Status: 200}, nil
	})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "bulwark.idempotency.requests" {
				for _, dp := range sum.DataPoints {
					if res, _ := dp.Attributes.Value("bulwark.idempotency.result"); dp.Value != 0 {
						t.Errorf("a cancelled caller counted as %s", res.AsString())
					}
				}
			}
		}
	}
}

// Keeper.Do holds a record to the bounds the Handler does: a Body over
// MaxResponseBytes is not stored (the key is released), and neither is a
// record the stores could not read back.
func TestDoStoresOnlyRecordsWithinBounds(t *testing.T) {
	k := idempotency.New(idempotency.Config{MaxResponseBytes: 10})
	defer k.Close()
	tooMany := http.Header{}
	for i := range 1025 {
		tooMany.Set(fmt.Sprint("X-", i), "v")
	}
	for name, rec := range map[string]idempotency.Record{
		"body over MaxResponseBytes": {Status: 200, Body: []byte("01234567890")},
		"status over 999":            {Status: 1000},
		"negative status":            {Status: -1},
		"1025 header names":          {Status: 200, Header: tooMany},
		"1025 values":                {Status: 200, Header: http.Header{"X": make([]string, 1025)}},
	} {
		runs := 0
		fn := func(context.Context) (*idempotency.Record, error) { runs++; r := rec; return &r, nil }
		req := idempotency.Request{Key: name}
		if got, _, err := k.Do(context.Background(), req, fn); err != nil || got == nil {
			t.Fatalf("%s: %v %v", name, got, err)
		}
		if _, replayed, err := k.Do(context.Background(), req, fn); err != nil || replayed || runs != 2 {
			t.Errorf("%s: stored (replayed %v, err %v, runs %d), want the key released", name, replayed, err, runs)
		}
	}
	// exactly MaxResponseBytes is stored
	runs := 0
	fn := func(context.Context) (*idempotency.Record, error) {
		runs++
		return &idempotency.Record{Status: 200, Body: []byte("0123456789")}, nil
	}
	k.Do(context.Background(), idempotency.Request{Key: "fits"}, fn)
	if _, replayed, _ := k.Do(context.Background(), idempotency.Request{Key: "fits"}, fn); !replayed || runs != 1 {
		t.Fatalf("a body of MaxResponseBytes not stored")
	}
}

// A handler that flushes before it has written 512 bytes, without setting
// Content-Type: net/http sniffs the type from what was written before the
// flush (or sends none if nothing was), and the replay carries that same
// Content-Type, not one sniffed from the whole body.
func TestReplayKeepsTheContentTypeSniffedAtTheFirstFlush(t *testing.T) {
	for name, parts := range map[string][2]string{
		"text then binary":   {"abc", "\x00\x01\x02"},
		"nothing then text":  {"", "hello"},
		"html then anything": {"<html>", "\x00"},
	} {
		t.Run(name, func(t *testing.T) {
			s := xstart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, parts[0])
				w.(http.Flusher).Flush()
				io.WriteString(w, parts[1])
			}), idempotency.Config{})
			a := xdo(t, "POST", s.URL, "x", key, "k")
			<-s.done
			b := xdo(t, "POST", s.URL, "x", key, "k")
			if b.header.Get(idempotency.ReplayedHeader) != "true" || b.body != a.body {
				t.Fatalf("not replayed: %q", b.body)
			}
			if fmt.Sprint(a.header.Values("Content-Type")) != fmt.Sprint(b.header.Values("Content-Type")) {
				t.Fatalf("Content-Type %q, replayed %q", a.header.Values("Content-Type"), b.header.Values("Content-Type"))
			}
		})
	}
}

// unwrapOnly is an outer middleware's writer in the modern style: it
// implements no optional interface, only Unwrap, for http.ResponseController.
type unwrapOnly struct{ http.ResponseWriter }

func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// A handler that hijacks the connection is not stored (the key is
// released), whether it hijacks through http.Hijacker or through
// http.ResponseController past an outer writer that only has Unwrap.
func TestHijackReleasesTheKeyThroughResponseController(t *testing.T) {
	for _, outer := range []bool{false, true} {
		t.Run(fmt.Sprint("unwrap-only outer writer=", outer), func(t *testing.T) {
			var runs atomic.Int64
			k := idempotency.New(idempotency.Config{})
			defer k.Close()
			mw := k.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if runs.Add(1) == 1 {
					conn, rw, err := http.NewResponseController(w).Hijack()
					if err != nil {
						t.Errorf("Hijack: %v", err)
						return
					}
					rw.WriteString("HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw")
					rw.Flush()
					conn.Close()
					return
				}
				io.WriteString(w, "ran again")
			}))
			done := make(chan struct{}, 2)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer func() { done <- struct{}{} }()
				if outer {
					w = unwrapOnly{w}
				}
				mw.ServeHTTP(w, r)
			}))
			defer srv.Close()
			if r := xdo(t, "POST", srv.URL, "x", key, "k"); r.status != 202 || r.body != "raw" {
				t.Fatalf("hijacked answer: %d %q", r.status, r.body)
			}
			<-done
			if r := xdo(t, "POST", srv.URL, "x", key, "k"); r.body != "ran again" || runs.Load() != 2 {
				t.Fatalf("after a hijack: %d %q (replayed %q), runs %d", r.status, r.body, r.header.Get(idempotency.ReplayedHeader), runs.Load())
			}
		})
	}
}

// StoreKey separates scope and key unambiguously, whatever bytes they hold
// (Keeper.Do takes any strings; a custom Scope may return any).
func TestStoreKeyScopeAndKeyNeverCollide(t *testing.T) {
	pairs := [][2]string{{"a\x00", "b"}, {"a", "\x00b"}, {"a\x00\x00", ""}, {"", "a\x00\x00"}, {"a", "\x00\x00"}}
	seen := map[string][2]string{}
	for _, p := range pairs {
		k := idempotency.StoreKey(p[0], p[1])
		if q, dup := seen[k]; dup {
			t.Fatalf("StoreKey(%q, %q) == StoreKey(%q, %q)", p[0], p[1], q[0], q[1])
		}
		seen[k] = p
	}
}

// Over HTTP/2 (no Hijacker, lower-case header names on the wire): the same
// replay, and a streamed response flushes through the middleware.
func TestOutsideHTTP2(t *testing.T) {
	k := idempotency.New(idempotency.Config{})
	defer k.Close()
	var runs atomic.Int64
	srv := httptest.NewUnstartedServer(k.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if _, ok := w.(http.Hijacker); ok {
			t.Error("an HTTP/2 writer offers Hijack")
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "part 1;")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush over HTTP/2: %v", err)
		}
		io.WriteString(w, "part 2")
	})))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := srv.Client()
	send := func() (*http.Response, string) {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("x"))
		req.Header.Set(key, `"h2-key"`)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	a, ab := send()
	b, bb := send()
	if a.ProtoMajor != 2 || ab != "part 1;part 2" || bb != ab || b.Header.Get(idempotency.ReplayedHeader) != "true" || runs.Load() != 1 {
		t.Fatalf("HTTP/%d: %q then %q (replayed %q), runs %d", a.ProtoMajor, ab, bb, b.Header.Get(idempotency.ReplayedHeader), runs.Load())
	}
}

// brokenStore answers every Claim with a Completed claim without a record.
type brokenStore struct{ *idempotency.MemoryStore }

func (brokenStore) Claim(context.Context, string, string, time.Duration) (idempotency.Claim, error) {
	return idempotency.Claim{State: idempotency.Completed}, nil
}

// A Store that breaks its contract (Completed without a Record) gets the
// Handler's 503, never a nil-pointer panic in the replay.
func TestStoreCompletedWithoutRecordIs503(t *testing.T) {
	m := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	defer m.Close()
	o := &orders{}
	s := xstart(t, o, idempotency.Config{Store: brokenStore{m}})
	xproblem(t, xdo(t, "POST", s.URL, "x", key, "k"), 503, "ErrStoreUnavailable")
	if o.runs.Load() != 0 {
		t.Fatal("the handler ran")
	}
}

// Empty, non-nil lists do what the Config's doc says: Methods applies to no
// method; ReplayHeaders, like nil, keeps the default rule.
func TestOutsideEmptyLists(t *testing.T) {
	o := &orders{}
	s := xstart(t, o, idempotency.Config{Methods: []string{}, ReplayHeaders: []string{}})
	xdo(t, "POST", s.URL, "x", key, "k")
	xdo(t, "POST", s.URL, "x", key, "k")
	if o.runs.Load() != 2 {
		t.Fatalf("Methods: []string{}: runs %d, want 2 (no method applies)", o.runs.Load())
	}
	s2 := xstart(t, o, idempotency.Config{ReplayHeaders: []string{}})
	xdo(t, "POST", s2.URL, "x", key, "k")
	if r := xdo(t, "POST", s2.URL, "x", key, "k"); r.header.Get("Location") == "" || r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("ReplayHeaders: []string{}: %v", r.header)
	}
}
