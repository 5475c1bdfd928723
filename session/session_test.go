package session_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/internal/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counting wraps a real store to count the calls that reach it. It only
// counts; the store behind it does the work.
type counting struct {
	session.Store
	loads, commits, takes atomic.Int64
}

func (c *counting) Load(ctx context.Context, id string) (*session.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, id)
}

func (c *counting) Commit(ctx context.Context, id string, ch *session.Change) error {
	c.commits.Add(1)
	return c.Store.Commit(ctx, id, ch)
}

func (c *counting) Take(ctx context.Context, id string) (*session.Record, error) {
	c.takes.Add(1)
	return c.Store.Take(ctx, id)
}

func (c *counting) total() int64 { return c.loads.Load() + c.commits.Load() + c.takes.Load() }

func newCounting(t *testing.T) (*counting, *session.Manager) {
	mem := session.NewMemoryStore(session.MemoryConfig{})
	t.Cleanup(func() { mem.Close() })
	c := &counting{Store: mem}
	m := session.New(session.Config{Store: c})
	t.Cleanup(func() { m.Close() })
	return c, m
}

func TestLazyLoad(t *testing.T) {
	c, m := newCounting(t)
	_, cl := storetest.NewServer(t, m, storetest.App)
	cl.Must("/put?k=a&v=1") // creates: one commit
	if got := c.total(); got != 1 {
		t.Fatalf("creating a session took %d store calls, want 1", got)
	}
	before := c.total()
	cl.Must("/noop")
	if got := c.total() - before; got != 0 {
		t.Fatalf("a request that never touched its session made %d store calls, want 0", got)
	}
	before = c.total()
	if cl.Must("/get?k=a") != "1" {
		t.Fatal("read failed")
	}
	if got := c.total() - before; got != 1 {
		t.Fatalf("a read-only request made %d store calls, want 1 (no touch yet)", got)
	}
	before = c.total()
	cl.Must("/put?k=b&v=2")
	if got, loads := c.total()-before, c.loads.Load(); got != 1 || loads != 1 {
		t.Fatalf("a blind write made %d store calls (loads so far %d), want 1 commit and no load", got, loads)
	}
}

func TestCookieDefaults(t *testing.T) {
	m := session.New(session.Config{})
	defer m.Close()
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(storetest.App)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/put?k=a&v=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	raw := resp.Header.Values("Set-Cookie")
	if len(raw) != 1 {
		t.Fatalf("Set-Cookie = %q, want one", raw)
	}
	line := raw[0]
	for _, want := range []string{"__Host-session=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(line, want) {
			t.Errorf("Set-Cookie %q lacks %q", line, want)
		}
	}
	for _, bad := range []string{"Domain=", "Expires=", "Max-Age="} {
		if strings.Contains(line, bad) {
			t.Errorf("Set-Cookie %q has %q (want host-only, browser-session cookie)", line, bad)
		}
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q on a response that sets the cookie, want no-store", cc)
	}
	tok := resp.Cookies()[0].Value
	if len(tok) != session.TokenLen {
		t.Errorf("token %q has %d characters, want %d", tok, len(tok), session.TokenLen)
	}
	// A response that sets no cookie keeps the handler's caching.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/get?k=a", nil)
	req.AddCookie(&http.Cookie{Name: session.DefaultCookieName, Value: tok})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Header.Values("Set-Cookie")) != 0 || resp.Header.Get("Cache-Control") != "" {
		t.Errorf("a read sent Set-Cookie %q, Cache-Control %q", resp.Header.Values("Set-Cookie"), resp.Header.Get("Cache-Control"))
	}
}

func TestCookieConfigurable(t *testing.T) {
	m := session.New(session.Config{Cookie: session.Cookie{
		Insecure: true, ScriptAccess: true, SameSite: http.SameSiteStrictMode,
		Path: "/app", Domain: "example.test", Persistent: true, AllowCaching: true,
	}})
	defer m.Close()
	rec := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(storetest.App)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/put?k=a&v=1", nil))
	line := rec.Header().Get("Set-Cookie")
	for _, want := range []string{"session=", "Path=/app", "Domain=example.test", "SameSite=Strict", "Expires=", "Max-Age="} {
		if !strings.Contains(line, want) {
			t.Errorf("Set-Cookie %q lacks %q", line, want)
		}
	}
	for _, bad := range []string{"Secure", "HttpOnly", "__Host-"} {
		if strings.Contains(line, bad) {
			t.Errorf("Set-Cookie %q has %q", line, bad)
		}
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "" {
		t.Errorf("Cache-Control = %q with AllowCaching", cc)
	}
}

func TestLogoutDeletesCookie(t *testing.T) {
	m := session.New(session.Config{})
	defer m.Close()
	_, c := storetest.NewServer(t, m, storetest.App)
	c.Must("/put?k=a&v=1")
	c.Must("/logout")
	if c.Cookie == nil || c.Cookie.MaxAge >= 0 || c.Token != "" {
		t.Fatalf("logout's cookie = %+v, want a deletion", c.Cookie)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []session.Config{
		{IdleTimeout: -1},
		{Lifetime: session.MaxLifetime + 1},
		{Lifetime: time.Hour, IdleTimeout: 2 * time.Hour},
		{TouchAfter: time.Hour}, // past the default idle timeout
		{SizeLimit: -1},
		{SizeLimit: session.MaxSizeLimit + 1},
		{Cookie: session.Cookie{Name: "bad name"}},
		{Cookie: session.Cookie{Name: "__Host-x", Insecure: true}},
		{Cookie: session.Cookie{Domain: "example.test"}}, // __Host- default name needs host-only
		{Cookie: session.Cookie{Name: "s", Path: "app"}},
		{Cookie: session.Cookie{Name: "s", SameSite: http.SameSiteNoneMode, Insecure: true}},
		{Cookie: session.Cookie{SameSite: 9}},
	}
	for _, cfg := range bad {
		err := cfg.Validate()
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig", cfg, err)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("New(%+v) did not panic", cfg)
				}
			}()
			session.New(cfg).Close()
		}()
	}
	good := []session.Config{{}, {Cookie: session.Cookie{Insecure: true}}, {TouchAfter: -1}, {Lifetime: time.Minute}}
	for _, cfg := range good {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", cfg, err)
		}
	}
	var ce *bulwark.ConfigError
	if err := (session.Config{SizeLimit: -1}).Validate(); !errors.As(err, &ce) || ce.Field != "SizeLimit" {
		t.Errorf("the error does not name SizeLimit: %v", err)
	}
	if err := (session.MemoryConfig{MaxSessions: -1}).Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("MemoryConfig.Validate = %v", err)
	}
}

func TestOutsideHandler(t *testing.T) {
	ctx := context.Background()
	if err := session.Put(ctx, "a", 1); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Put outside a handler = %v", err)
	}
	if _, ok := session.Get[int](ctx, "a"); ok {
		t.Fatal("Get outside a handler found something")
	}
	for _, f := range []func(context.Context) error{session.Renew, session.Destroy, session.Clear, session.Err} {
		if err := f(ctx); !errors.Is(err, session.ErrNoSession) {
			t.Fatalf("got %v, want ErrNoSession", err)
		}
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("a nil ctx did not panic")
		}
	}()
	session.Get[int](nil, "a") //nolint:staticcheck // the nil ctx is the point
}

type profile struct {
	Name  string
	Admin bool
}

func TestTypedValuesAndCodecs(t *testing.T) {
	for _, codec := range []session.Codec{nil, session.JSONCodec{}} {
		m := session.New(session.Config{Codec: codec})
		_, c := storetest.NewServer(t, m, func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			switch r.URL.Path {
			case "/set":
				if err := session.Put(ctx, "p", profile{Name: "Peggy", Admin: true}); err != nil {
					t.Error(err)
				}
				if err := session.Put(ctx, "n", 42); err != nil {
					t.Error(err)
				}
				if p, ok := session.Get[profile](ctx, "p"); !ok || p.Name != "Peggy" {
					t.Errorf("same-request Get = %+v, %v", p, ok)
				}
			case "/get":
				p, ok := session.Get[profile](ctx, "p")
				n, ok2 := session.Get[int](ctx, "n")
				_, ok3 := session.Get[profile](ctx, "n") // wrong type
				if !ok || !ok2 || ok3 || !p.Admin || n != 42 {
					t.Errorf("Get = %+v %v, %d %v, wrong type %v", p, ok, n, ok2, ok3)
				}
				if !session.Has(ctx, "p") || session.Has(ctx, "zz") {
					t.Error("Has is wrong")
				}
			}
		})
		c.Must("/set")
		c.Must("/get")
		m.Close()
	}
}

func TestSizeLimit(t *testing.T) {
	m := session.New(session.Config{SizeLimit: 100})
	defer m.Close()
	_, c := storetest.NewServer(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/huge":
			err := session.Put(ctx, "k", strings.Repeat("x", 200))
			if !errors.Is(err, session.ErrTooLarge) {
				t.Errorf("Put of 200 bytes with SizeLimit 100 = %v", err)
			}
		case "/blind": // no load: the store refuses the commit
			if err := session.Put(ctx, "b", strings.Repeat("y", 60)); err != nil {
				t.Errorf("blind Put within the per-value limit = %v", err)
			}
			io.WriteString(w, "handler's body")
		case "/fill":
			session.Get[string](ctx, "a") // load: Put checks the whole session
			err := session.Put(ctx, "b", strings.Repeat("y", 60))
			if !errors.Is(err, session.ErrTooLarge) {
				t.Errorf("Put past the session's limit = %v", err)
			}
		default:
			storetest.App(w, r)
		}
	})
	c.Must("/put?k=a&v=" + strings.Repeat("z", 50))
	c.Must("/huge")
	c.Must("/fill")
	if code, body := c.Get("/blind"); code != http.StatusInternalServerError || !strings.Contains(body, "session too large") {
		t.Fatalf("a commit past SizeLimit answered %d %q, want 500 from the ErrorHandler", code, body)
	}
	if c.Must("/keys") != "a" {
		t.Fatal("a refused Put changed the session")
	}
}

func TestStoreFullAnswers503(t *testing.T) {
	mem := session.NewMemoryStore(session.MemoryConfig{MaxSessions: 1})
	defer mem.Close()
	var events atomic.Int64
	m := session.New(session.Config{Store: mem, OnStoreError: func(ctx context.Context, ev session.StoreErrorEvent) {
		if !errors.Is(ev.Err, session.ErrFull) || ev.HeadersWritten {
			t.Errorf("OnStoreError %+v", ev)
		}
		events.Add(1)
	}})
	defer m.Close()
	_, c := storetest.NewServer(t, m, storetest.App)
	c.Must("/put?k=a&v=1")
	d := c.Clone()
	d.Token = ""
	code, body := d.Get("/put?k=a&v=2")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "session: store unavailable") {
		t.Fatalf("a full store answered %d %q, want 503", code, body)
	}
	if d.Token != "" || events.Load() != 1 {
		t.Fatalf("token %q, events %d", d.Token, events.Load())
	}
	if c.Must("/get?k=a") != "1" {
		t.Fatal("the existing session broke")
	}
}

// serve runs one request through h in-process (for synctest bubbles, where
// real sockets would not follow fake time) and returns the recorder.
func serve(h http.Handler, token, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.AddCookie(&http.Cookie{Name: session.DefaultCookieName, Value: token})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func tokenOf(rec *httptest.ResponseRecorder, old string) string {
	for _, c := range rec.Result().Cookies() {
		if c.Name == session.DefaultCookieName {
			return c.Value
		}
	}
	return old
}

func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := session.New(session.Config{IdleTimeout: 10 * time.Minute, Lifetime: time.Hour, TouchAfter: -1})
		defer m.Close()
		h := m.Handler(http.HandlerFunc(storetest.App))
		tok := tokenOf(serve(h, "", "/put?k=a&v=1"), "")
		// Activity every 9 minutes keeps it alive past the idle timeout.
		for range 5 {
			time.Sleep(9 * time.Minute)
			if body := serve(h, tok, "/get?k=a").Body.String(); body != "1" {
				t.Fatalf("an active session expired: %q", body)
			}
		}
		time.Sleep(10 * time.Minute)
		if body := serve(h, tok, "/get?k=a").Body.String(); body != "<none>" {
			t.Fatalf("a session idle for its IdleTimeout still reads %q", body)
		}
	})
}

func TestAbsoluteLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := session.New(session.Config{IdleTimeout: 10 * time.Minute, Lifetime: 30 * time.Minute, TouchAfter: -1})
		defer m.Close()
		h := m.Handler(http.HandlerFunc(storetest.App))
		tok := tokenOf(serve(h, "", "/put?k=a&v=1"), "")
		for range 3 {
			time.Sleep(9 * time.Minute)
			serve(h, tok, "/get?k=a")
		}
		// 27 minutes in, active: still alive. At 30 it ends, however active.
		if body := serve(h, tok, "/get?k=a").Body.String(); body != "1" {
			t.Fatalf("at 27 minutes: %q", body)
		}
		tok = tokenOf(serve(h, tok, "/renew"), tok) // Renew does not extend the lifetime
		time.Sleep(3 * time.Minute)
		if body := serve(h, tok, "/get?k=a").Body.String(); body != "<none>" {
			t.Fatalf("a session past its Lifetime still reads %q", body)
		}
	})
}

func TestThrottledTouch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := session.NewMemoryStore(session.MemoryConfig{})
		defer mem.Close()
		c := &counting{Store: mem}
		m := session.New(session.Config{Store: c, IdleTimeout: 10 * time.Minute, TouchAfter: 2 * time.Minute})
		defer m.Close()
		h := m.Handler(http.HandlerFunc(storetest.App))
		tok := tokenOf(serve(h, "", "/put?k=a&v=1"), "")
		commits := c.commits.Load()
		time.Sleep(time.Minute)
		serve(h, tok, "/get?k=a")
		if got := c.commits.Load() - commits; got != 0 {
			t.Fatalf("a read 1 minute after the last touch wrote %d times, want 0 (TouchAfter 2m)", got)
		}
		time.Sleep(2 * time.Minute)
		serve(h, tok, "/get?k=a")
		if got := c.commits.Load() - commits; got != 1 {
			t.Fatalf("a read 3 minutes after the last touch wrote %d times, want 1", got)
		}
		// The touch moved the idle deadline: 9 more minutes idle is fine.
		time.Sleep(9 * time.Minute)
		if body := serve(h, tok, "/get?k=a").Body.String(); body != "1" {
			t.Fatalf("the touch did not extend the idle deadline: %q", body)
		}
	})
}

func TestMemoryStoreCleanup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := session.NewMemoryStore(session.MemoryConfig{CleanupInterval: time.Minute})
		defer mem.Close()
		m := session.New(session.Config{Store: mem, IdleTimeout: 5 * time.Minute})
		defer m.Close()
		h := m.Handler(http.HandlerFunc(storetest.App))
		for range 3 {
			serve(h, "", "/put?k=a&v=1")
		}
		if mem.Len() != 3 {
			t.Fatalf("Len = %d", mem.Len())
		}
		time.Sleep(6 * time.Minute)
		synctest.Wait()
		if mem.Len() != 0 {
			t.Fatalf("Len after expiry = %d", mem.Len())
		}
	})
}

func TestCloseIdempotent(t *testing.T) {
	m := session.New(session.Config{})
	if m.Close() != nil || m.Close() != nil {
		t.Fatal("Close returned an error")
	}
	mem := session.NewMemoryStore(session.MemoryConfig{})
	if mem.Close() != nil || mem.Close() != nil {
		t.Fatal("MemoryStore.Close returned an error")
	}
}

func TestPutAfterHeaders(t *testing.T) {
	m := session.New(session.Config{})
	defer m.Close()
	_, c := storetest.NewServer(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		io.WriteString(w, "body first\n")
		err := session.Put(ctx, "late", "v")
		switch r.URL.Path {
		case "/new":
			if !errors.Is(err, session.ErrHeadersWritten) {
				t.Errorf("Put after the headers on a new session = %v, want ErrHeadersWritten", err)
			}
		case "/existing":
			if err != nil {
				t.Errorf("Put after the headers on an existing session = %v", err)
			}
			if err := session.Renew(ctx); !errors.Is(err, session.ErrHeadersWritten) {
				t.Errorf("Renew after the headers = %v", err)
			}
		}
	})
	c.Get("/new")
	if c.Token != "" {
		t.Fatal("a cookie was set after the headers")
	}
	// Seed a session through a second handler on the same manager.
	srv2 := httptest.NewServer(m.Handler(http.HandlerFunc(storetest.App)))
	defer srv2.Close()
	c2 := c.Clone()
	c2.URL = srv2.URL
	c2.Must("/put?k=a&v=1")
	c.Token = c2.Token
	c.Get("/existing")
	if c2.Must("/get?k=late") != "v" {
		t.Fatal("a change made after the headers on an existing session was not committed at the end")
	}
}

// TestPanicCommitsNothing: a handler that panics after changing its
// session leaves the store as it was.
func TestPanicCommitsNothing(t *testing.T) {
	c, m := newCounting(t)
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.Put(r.Context(), "a", "1")
		panic("boom")
	}))
	func() {
		defer func() { recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if c.commits.Load() != 0 {
		t.Fatalf("a panicking handler committed %d times", c.commits.Load())
	}
}
