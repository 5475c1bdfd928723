package idempotency_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// app is a handler with a side effect: it counts its runs, echoes the body
// and answers 201 with a header and a fresh order number each run.
type app struct {
	runs   atomic.Int64
	status int
	gate   chan struct{} // if set, each run waits on it
	in     chan struct{} // if set, each run signals it on entry
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.runs.Add(1)
	if a.in != nil {
		a.in <- struct{}{}
	}
	if a.gate != nil {
		<-a.gate
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Location", fmt.Sprintf("/orders/%d", n))
	w.Header().Set("Set-Cookie", "s=1")
	code := a.status
	if code == 0 {
		code = http.StatusCreated
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "order %d for %s", n, body)
}

type server struct {
	*httptest.Server
	keeper *idempotency.Keeper
}

func start(t *testing.T, h http.Handler, cfg idempotency.Config) *server {
	t.Helper()
	k := idempotency.New(cfg)
	srv := httptest.NewServer(k.Handler(h))
	t.Cleanup(func() { srv.Close(); k.Close() })
	return &server{srv, k}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, url, key, body string, hdr ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func problemType(t *testing.T, r reply) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %q)", ct, r.body)
	}
	var p struct {
		Type   string
		Status int
		Title  string
	}
	if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Status != r.status || p.Title == "" {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	return strings.TrimPrefix(p.Type, idempotency.ProblemTypeBase)
}

func TestFirstRunsRetryReplaysByteForByte(t *testing.T) {
	a := &app{}
	s := start(t, a, idempotency.Config{})
	first := post(t, s.URL, `"k-1"`, "pay 10")
	second := post(t, s.URL, "k-1", "pay 10") // the bare form is the same key
	if a.runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", a.runs.Load())
	}
	if first.status != 201 || first.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("first = %+v, want a fresh 201", first)
	}
	if second.status != 201 || second.body != first.body || second.header.Get("Location") != first.header.Get("Location") ||
		second.header.Get("Content-Type") != "text/plain" || second.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("replay = %+v, want first's response %+v with Idempotent-Replayed: true", second, first)
	}
	if second.header.Get("Set-Cookie") != "" {
		t.Fatal("Set-Cookie was replayed")
	}
}

func TestDifferentPayload422(t *testing.T) {
	a := &app{}
	s := start(t, a, idempotency.Config{})
	post(t, s.URL, "k", "pay 10")
	r := post(t, s.URL, "k", "pay 99")
	if r.status != 422 || problemType(t, r) != "ErrMismatch" || a.runs.Load() != 1 {
		t.Fatalf("reuse with another body = %d %q after %d runs; want 422 ErrMismatch and 1 run", r.status, r.body, a.runs.Load())
	}
	r = post(t, s.URL+"/other", "k", "pay 10")
	if r.status != 422 {
		t.Fatalf("reuse on another path = %d, want 422", r.status)
	}
}

func TestInProgress409ThenReplay(t *testing.T) {
	a := &app{gate: make(chan struct{}), in: make(chan struct{}, 1)}
	s := start(t, a, idempotency.Config{})
	done := make(chan reply)
	go func() { done <- post(t, s.URL, "k", "x") }()
	<-a.in
	r := post(t, s.URL, "k", "x")
	if r.status != 409 || problemType(t, r) != "ErrInProgress" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("concurrent duplicate = %d %v %q; want 409 ErrInProgress with Retry-After: 1", r.status, r.header, r.body)
	}
	if r := post(t, s.URL, "k", "other"); r.status != 422 {
		t.Fatalf("concurrent duplicate with another payload = %d, want 422", r.status)
	}
	close(a.gate)
	first := <-done
	if r := post(t, s.URL, "k", "x"); r.body != first.body || r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("after completion = %+v, want the replay of %+v", r, first)
	}
	if a.runs.Load() != 1 {
		t.Fatalf("runs = %d", a.runs.Load())
	}
}

func TestWaitReplaysTheFirstResponse(t *testing.T) {
	a := &app{gate: make(chan struct{}), in: make(chan struct{}, 1)}
	s := start(t, a, idempotency.Config{Wait: 30 * time.Second})
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	wg.Add(1)
	go func() { defer wg.Done(); replies[0] = post(t, s.URL, "k", "x") }()
	<-a.in
	wg.Add(1)
	go func() { defer wg.Done(); replies[1] = post(t, s.URL, "k", "x") }()
	// The second request waits on the store; let the first finish.
	close(a.gate)
	wg.Wait()
	if a.runs.Load() != 1 || replies[1].status != 201 || replies[1].body != replies[0].body {
		t.Fatalf("with Wait: runs %d, replies %+v; want 1 run and the same answer twice", a.runs.Load(), replies)
	}
}

func TestKeyRules(t *testing.T) {
	a := &app{}
	opt := start(t, a, idempotency.Config{})
	if r := post(t, opt.URL, "", "x"); r.status != 201 || a.runs.Load() != 1 {
		t.Fatalf("no key, not required = %d; want the handler to run", r.status)
	}
	req := start(t, a, idempotency.Config{Required: true})
	if r := post(t, req.URL, "", "x"); r.status != 400 || problemType(t, r) != "ErrKeyMissing" {
		t.Fatalf("no key, required = %d %q; want 400 ErrKeyMissing", r.status, r.body)
	}
	for _, k := range []string{`"open`, "a b", "caf\u00e9", strings.Repeat("x", 256)} {
		if r := post(t, opt.URL, k, "x"); r.status != 400 || problemType(t, r) != "ErrKeyMalformed" {
			t.Errorf("key %q = %d %q; want 400 ErrKeyMalformed", k, r.status, r.body)
		}
	}
	if r := post(t, opt.URL, "a", "x", "Idempotency-Key", "b"); r.status != 400 {
		t.Fatalf("two Idempotency-Key fields = %d, want 400", r.status)
	}
	if a.runs.Load() != 1 {
		t.Fatalf("the handler ran for a rejected request: %d runs", a.runs.Load())
	}
}

func TestGETPassesThrough(t *testing.T) {
	a := &app{}
	s := start(t, a, idempotency.Config{})
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
		req.Header.Set("Idempotency-Key", "k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if a.runs.Load() != 2 {
		t.Fatalf("GET ran %d times, want 2 (not a configured method)", a.runs.Load())
	}
}

func TestBodyTooLarge413(t *testing.T) {
	a := &app{}
	s := start(t, a, idempotency.Config{MaxRequestBytes: 10})
	if r := post(t, s.URL, "k", strings.Repeat("x", 11)); r.status != 413 || problemType(t, r) != "ErrTooLarge" || a.runs.Load() != 0 {
		t.Fatalf("oversized body = %d %q, runs %d; want 413 and no run", r.status, r.body, a.runs.Load())
	}
	if r := post(t, s.URL, "k", strings.Repeat("x", 10)); r.status != 201 {
		t.Fatalf("body at the limit = %d", r.status)
	}
}

func TestServerErrorReleasesTheKey(t *testing.T) {
	a := &app{status: 503}
	s := start(t, a, idempotency.Config{})
	post(t, s.URL, "k", "x")
	a.status = 201
	if r := post(t, s.URL, "k", "x"); r.status != 201 || a.runs.Load() != 2 {
		t.Fatalf("retry after a 503 = %d after %d runs; want it to run again", r.status, a.runs.Load())
	}
	b := &app{status: 500}
	s2 := start(t, b, idempotency.Config{StoreServerErrors: true})
	post(t, s2.URL, "k", "x")
	if r := post(t, s2.URL, "k", "x"); r.status != 500 || b.runs.Load() != 1 || r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("StoreServerErrors: %d after %d runs; want the stored 500 replayed", r.status, b.runs.Load())
	}
}

func TestLargeResponseNotStored(t *testing.T) {
	big := strings.Repeat("y", 100)
	var runs atomic.Int64
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		io.WriteString(w, big)
	}), idempotency.Config{MaxResponseBytes: 99})
	for range 2 {
		if r := post(t, s.URL, "k", "x"); r.body != big {
			t.Fatalf("body = %q, want the full response even when too large to store", r.body)
		}
	}
	if runs.Load() != 2 {
		t.Fatalf("runs = %d; a response over MaxResponseBytes must release the key", runs.Load())
	}
}

func TestPanicReleasesTheKeyAndGoesOn(t *testing.T) {
	var runs atomic.Int64
	k := idempotency.New(idempotency.Config{})
	defer k.Close()
	h := k.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		w.WriteHeader(201)
	}))
	serve := func() (rec *httptest.ResponseRecorder, p any) {
		defer func() { p = recover() }()
		rec = httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", "k")
		h.ServeHTTP(rec, req)
		return rec, nil
	}
	if _, p := serve(); p != "boom" {
		t.Fatalf("recovered %v, want the handler's panic", p)
	}
	if rec, p := serve(); p != nil || rec.Code != 201 || runs.Load() != 2 {
		t.Fatalf("retry after a panic = %d, %v after %d runs; want it to run again", rec.Code, p, runs.Load())
	}
}

// TestScopeIsolation is the attack: caller B sends caller A's key and
// payload, and must not receive A's stored response.
func TestScopeIsolation(t *testing.T) {
	a := &app{}
	s := start(t, a, idempotency.Config{})
	ra := post(t, s.URL, "shared", "x", "Authorization", "Bearer alice")
	rb := post(t, s.URL, "shared", "x", "Authorization", "Bearer bob")
	if a.runs.Load() != 2 || rb.body == ra.body || rb.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("bob got %q (replayed %q) after alice's %q, %d runs; want bob's own run", rb.body, rb.header.Get(idempotency.ReplayedHeader), ra.body, a.runs.Load())
	}
	if again := post(t, s.URL, "shared", "x", "Authorization", "Bearer alice"); again.body != ra.body {
		t.Fatalf("alice's retry got %q, want her own %q", again.body, ra.body)
	}
	custom := start(t, a, idempotency.Config{Scope: func(r *http.Request) string { return r.Header.Get("X-User") }})
	c1 := post(t, custom.URL, "k", "x", "X-User", "1")
	c2 := post(t, custom.URL, "k", "x", "X-User", "2")
	if c1.body == c2.body {
		t.Fatal("a custom Scope did not separate two users")
	}
}

func TestStoreFullIs503AndDoesNotRun(t *testing.T) {
	a := &app{gate: make(chan struct{}), in: make(chan struct{}, 1)}
	st := idempotency.NewMemoryStore(idempotency.MemoryConfig{MaxKeys: 1})
	defer st.Close()
	s := start(t, a, idempotency.Config{Store: st})
	done := make(chan reply)
	go func() { done <- post(t, s.URL, "k1", "x") }()
	<-a.in
	r := post(t, s.URL, "k2", "x")
	close(a.gate)
	<-done
	if r.status != 503 || problemType(t, r) != "ErrStoreUnavailable" || r.header.Get("Retry-After") == "" || a.runs.Load() != 1 {
		t.Fatalf("store full = %d %q, runs %d; want 503 with Retry-After and no run", r.status, r.body, a.runs.Load())
	}
}

func TestHandlerConformance(t *testing.T) {
	var n atomic.Int64
	conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
		k := idempotency.New(idempotency.Config{Methods: []string{http.MethodGet}})
		t.Cleanup(func() { k.Close() })
		inner := k.Handler(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("Idempotency-Key", fmt.Sprint("conf-", n.Add(1)))
			inner.ServeHTTP(w, r)
		})
	}})
}
