package session_test

// Black-box tests of package session, written against its docs only, over
// real net/http servers on 127.0.0.1 (TLS, since the default cookie is
// Secure) with a cookie-jar client, or over net.Pipe inside a synctest bubble
// when fake time is needed.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/pipehttp"
	"github.com/bulwark-go/bulwark/session"
)

// failing is a store that fails every call when down is set.
type failing struct {
	session.Store
	down atomic.Bool
}

var errDown = errors.New("store is down")

func (f *failing) Load(ctx context.Context, id string) (*session.Record, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Load(ctx, id)
}

func (f *failing) Commit(ctx context.Context, id string, ch *session.Change) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Commit(ctx, id, ch)
}

func (f *failing) Take(ctx context.Context, id string) (*session.Record, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Take(ctx, id)
}

func (f *failing) DestroyUser(ctx context.Context, u string) (int, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Store.DestroyUser(ctx, u)
}

func memStore(t *testing.T) *session.MemoryStore {
	s := session.NewMemoryStore(session.MemoryConfig{})
	t.Cleanup(func() { s.Close() })
	return s
}

func manager(t *testing.T, cfg session.Config) *session.Manager {
	m := session.New(cfg)
	t.Cleanup(func() { m.Close() })
	return m
}

// app is a small application: /put?k=&v=, /get?k=, /del?k=, /clear, /keys,
// /renew, /destroy, /user?u=, /none (never touches the session), /err.
func app() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := session.Put(r.Context(), q.Get("k"), q.Get("v")); err != nil {
			http.Error(w, "put: "+err.Error(), 599)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, ok := session.Get[string](r.Context(), r.URL.Query().Get("k"))
		if !ok {
			io.WriteString(w, "<none>")
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("/del", func(w http.ResponseWriter, r *http.Request) {
		if err := session.Remove(r.Context(), r.URL.Query().Get("k")); err != nil {
			http.Error(w, err.Error(), 599)
		}
	})
	mux.HandleFunc("/clear", func(w http.ResponseWriter, r *http.Request) {
		if err := session.Clear(r.Context()); err != nil {
			http.Error(w, err.Error(), 599)
		}
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(session.Keys(r.Context()), ","))
	})
	mux.HandleFunc("/renew", func(w http.ResponseWriter, r *http.Request) {
		if err := session.Renew(r.Context()); err != nil {
			http.Error(w, err.Error(), 599)
		}
	})
	mux.HandleFunc("/destroy", func(w http.ResponseWriter, r *http.Request) {
		if err := session.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), 599)
		}
	})
	mux.HandleFunc("/user", func(w http.ResponseWriter, r *http.Request) {
		if err := session.SetUser(r.Context(), r.URL.Query().Get("u")); err != nil {
			http.Error(w, err.Error(), 599)
			return
		}
		io.WriteString(w, session.User(r.Context()))
	})
	mux.HandleFunc("/none", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "none")
	})
	return mux
}

// client is a browser: a cookie jar on a TLS test server.
type client struct {
	t    *testing.T
	srv  *httptest.Server
	http *http.Client
	jar  http.CookieJar
}

func newTLS(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func browser(t *testing.T, srv *httptest.Server) *client {
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	cl := &http.Client{Transport: c.Transport, Jar: jar}
	t.Cleanup(cl.CloseIdleConnections)
	return &client{t: t, srv: srv, http: cl, jar: jar}
}

// on returns a client of srv sharing c's cookies (another instance).
func (c *client) on(srv *httptest.Server) *client {
	d := browser(c.t, srv)
	u, _ := url.Parse(c.srv.URL)
	v, _ := url.Parse(srv.URL)
	d.jar.SetCookies(v, c.jar.Cookies(u))
	return d
}

func (c *client) do(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s: reading body: %v", req.URL, err)
	}
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.srv.URL+path, nil)
	return c.do(req)
}

func (c *client) body(path string) string {
	c.t.Helper()
	resp, b := c.get(path)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %q", path, resp.StatusCode, b)
	}
	return b
}

// token returns the session token in the jar, or "".
func (c *client) token() string {
	u, _ := url.Parse(c.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == session.DefaultCookieName {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setToken(tok string) {
	u, _ := url.Parse(c.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: session.DefaultCookieName, Value: tok, Path: "/", Secure: true}})
}

// gate holds a handler between two points while a test does what must
// happen meanwhile: the handler calls wait, the test calls meanwhile.
type gate struct{ reached, release chan struct{} }

func newGate() *gate { return &gate{make(chan struct{}), make(chan struct{})} }

func (g *gate) wait() {
	g.reached <- struct{}{}
	<-g.release
}

// meanwhile sends GET path, whose handler calls g.wait, runs during while
// that handler waits, then lets it finish; it returns the response's
// status and body.
func (c *client) meanwhile(path string, g *gate, during func()) (int, string) {
	c.t.Helper()
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.http.Get(c.srv.URL + path)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode, body: string(b)}
	}()
	select {
	case <-g.reached:
	case r := <-done:
		c.t.Fatalf("GET %s ended before its handler reached the gate: %d %q %v", path, r.code, r.body, r.err)
	}
	during()
	close(g.release)
	r := <-done
	if r.err != nil {
		c.t.Fatalf("GET %s: %v", path, r.err)
	}
	return r.code, r.body
}

func sessionCookie(resp *http.Response, name string) *http.Cookie {
	for _, ck := range resp.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func TestOutsideCookieDefaults(t *testing.T) {
	m := manager(t, session.Config{})
	srv := newTLS(t, m.Handler(app()))
	c := browser(t, srv)

	resp, _ := c.get("/put?k=a&v=1")
	ck := sessionCookie(resp, "__Host-session")
	if ck == nil {
		t.Fatalf("no __Host-session cookie: %v", resp.Header["Set-Cookie"])
	}
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Domain != "" || ck.Path != "/" {
		t.Errorf("cookie %q: want Secure, HttpOnly, SameSite=Lax, no Domain, Path=/", resp.Header.Get("Set-Cookie"))
	}
	if ck.MaxAge != 0 || ck.RawExpires != "" {
		t.Errorf("cookie %q: want a session cookie without Expires or Max-Age", resp.Header.Get("Set-Cookie"))
	}
	if !tokenRE.MatchString(ck.Value) || len(ck.Value) != session.TokenLen {
		t.Errorf("token %q is not 43 base64url characters", ck.Value)
	}
	if got := resp.Header.Values("Cache-Control"); !slices.Contains(got, "no-store") {
		t.Errorf("response setting the cookie has Cache-Control %q, want no-store", got)
	}

	// A read of the session neither sets the cookie nor adds no-store.
	resp, b := c.get("/get?k=a")
	if b != "1" {
		t.Fatalf("get = %q, want 1", b)
	}
	if len(resp.Header["Set-Cookie"]) != 0 || len(resp.Header["Cache-Control"]) != 0 {
		t.Errorf("a plain read got Set-Cookie %q, Cache-Control %q", resp.Header["Set-Cookie"], resp.Header["Cache-Control"])
	}

	// Logout deletes the cookie with the same attributes, and no-store.
	resp, _ = c.get("/destroy")
	ck = sessionCookie(resp, "__Host-session")
	if ck == nil || ck.MaxAge >= 0 && ck.RawExpires == "" {
		t.Fatalf("Destroy did not delete the cookie: %q", resp.Header["Set-Cookie"])
	}
	if !ck.Secure || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("deletion cookie %q lacks the attributes a __Host- cookie needs", resp.Header.Get("Set-Cookie"))
	}
	if got := resp.Header.Values("Cache-Control"); !slices.Contains(got, "no-store") {
		t.Errorf("response deleting the cookie has Cache-Control %q, want no-store", got)
	}
	if c.token() != "" {
		t.Errorf("the browser still holds a token after logout")
	}
}

// TestOutsideNoStoreOverridesHandler: a response that carries a new session
// token must not be cacheable, whatever the handler said.
func TestOutsideNoStoreOverridesHandler(t *testing.T) {
	m := manager(t, session.Config{})
	srv := newTLS(t, m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		session.Put(r.Context(), "a", "1")
		io.WriteString(w, "cacheable?")
	})))
	resp, _ := browser(t, srv).get("/")
	if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
		t.Errorf("Cache-Control = %q on a response setting the session cookie, want exactly no-store", got)
	}
}

func TestOutsideCookieOptions(t *testing.T) {
	m := manager(t, session.Config{Cookie: session.Cookie{
		Name: "sid", Path: "/app", Insecure: true, ScriptAccess: true,
		SameSite: http.SameSiteStrictMode, Persistent: true, AllowCaching: true,
	}, Lifetime: time.Hour, IdleTimeout: time.Minute})
	srv := httptest.NewServer(m.Handler(app()))
	t.Cleanup(srv.Close)
	c := browser(t, srv)
	resp, _ := c.get("/app/put?k=a&v=1")
	_ = resp
	resp, _ = c.get("/put?k=a&v=1")
	ck := sessionCookie(resp, "sid")
	if ck == nil {
		t.Fatalf("no sid cookie: %q", resp.Header["Set-Cookie"])
	}
	if ck.Secure || ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/app" {
		t.Errorf("cookie %q: want not Secure, not HttpOnly, Strict, /app", resp.Header.Get("Set-Cookie"))
	}
	if ck.Expires.IsZero() || ck.Expires.Before(time.Now().Add(59*time.Minute)) || ck.Expires.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("persistent cookie expires %v, want about the absolute deadline (1h)", ck.Expires)
	}
	if ck.MaxAge < 3500 || ck.MaxAge > 3600 {
		t.Errorf("persistent cookie Max-Age %d, want about 3600", ck.MaxAge)
	}
	if len(resp.Header["Cache-Control"]) != 0 {
		t.Errorf("AllowCaching: Cache-Control %q", resp.Header["Cache-Control"])
	}
}

// TestOutsideLazyLoad: a request that never touches the session makes no
// store call and sets no cookie, with or without a (valid) cookie.
func TestOutsideLazyLoad(t *testing.T) {
	st := &counting{Store: memStore(t)}
	m := manager(t, session.Config{Store: st})
	srv := newTLS(t, m.Handler(app()))
	c := browser(t, srv)

	resp, _ := c.get("/none")
	if st.total() != 0 || len(resp.Header["Set-Cookie"]) != 0 || len(resp.Header["Cache-Control"]) != 0 {
		t.Fatalf("untouched request without cookie: %d store calls, headers %v", st.total(), resp.Header)
	}
	// A read without any cookie has nothing to load.
	if b := c.body("/get?k=a"); b != "<none>" {
		t.Fatalf("get = %q", b)
	}
	if st.total() != 0 || c.token() != "" {
		t.Fatalf("a read without a cookie made %d store calls and set cookie %q", st.total(), c.token())
	}
	c.body("/put?k=a&v=1")
	if n := st.total(); n != 1 {
		t.Fatalf("a write-only request on a new session made %d store calls, want 1 (docs)", n)
	}
	before := st.total()
	resp, _ = c.get("/none")
	if st.total() != before || len(resp.Header["Set-Cookie"]) != 0 {
		t.Fatalf("untouched request with a session cookie called the store %d times, Set-Cookie %q", st.total()-before, resp.Header["Set-Cookie"])
	}
	before = st.total()
	c.body("/get?k=a")
	if n := st.total() - before; n != 1 {
		t.Fatalf("a read made %d store calls, want 1", n)
	}
	before = st.total()
	c.body("/put?k=b&v=2")
	if n := st.total() - before; n != 1 {
		t.Fatalf("a write-only request on an existing session made %d store calls, want 1", n)
	}
	before = st.total()
	c.body("/keys")
	c.body("/put?k=c&v=3")
	if n := st.total() - before; n != 2 {
		t.Fatalf("a read, then a write-only request: %d store calls, want 2", n)
	}
	// Garbage and oversized cookies: ignored without a store call.
	for _, v := range []string{"x", strings.Repeat("A", 42), strings.Repeat("A", 44), strings.Repeat("A", 4000), "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="} {
		d := browser(t, srv)
		before = st.total()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/get?k=a", nil)
		req.Header.Set("Cookie", "__Host-session="+v)
		if _, b := d.do(req); b != "<none>" {
			t.Fatalf("cookie %.20q read %q", v, b)
		}
		if st.total() != before {
			t.Errorf("malformed cookie %.20q cost %d store calls", v, st.total()-before)
		}
	}
}

func TestOutsideValues(t *testing.T) {
	m := manager(t, session.Config{})
	type item struct {
		Name string
		N    int
	}
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/typed", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		session.Put(ctx, "item", item{"tea", 2})
		session.Put(ctx, "n", 42)
		if v, ok := session.Get[item](ctx, "item"); !ok || v != (item{"tea", 2}) {
			t.Errorf("Get[item] in the same request = %v %v", v, ok)
		}
		if _, ok := session.Get[string](ctx, "n"); ok {
			t.Errorf("Get[string] of an int put in this request reported ok")
		}
	})
	mux.HandleFunc("/typed2", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if v, ok := session.Get[item](ctx, "item"); !ok || v != (item{"tea", 2}) {
			t.Errorf("Get[item] = %v %v", v, ok)
		}
		if v, ok := session.Get[int](ctx, "n"); !ok || v != 42 {
			t.Errorf("Get[int] = %v %v", v, ok)
		}
		if v, ok := session.Get[string](ctx, "n"); ok {
			t.Errorf("Get[string] of a stored int = %q, ok", v)
		}
		if v, ok := session.Get[item](ctx, "n"); ok {
			t.Errorf("Get[item] of a stored int = %v, ok", v)
		}
		if v, ok := session.Get[int](ctx, "item"); ok {
			t.Errorf("Get[int] of a stored struct = %v, ok", v)
		}
		if _, ok := session.Get[int](ctx, "missing"); ok {
			t.Errorf("Get of a missing key reported ok")
		}
		if !session.Has(ctx, "n") || session.Has(ctx, "missing") {
			t.Errorf("Has wrong")
		}
		if err := session.Put(ctx, "f", func() {}); err == nil {
			t.Errorf("Put of a func: no error from gob")
		}
		if session.Has(ctx, "f") {
			t.Errorf("a failed Put left the key")
		}
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/typed")
	c.body("/typed2")
	c.body("/put?k=a&v=1")
	if got := c.body("/keys"); got != "a,item,n" {
		t.Fatalf("keys = %q, want sorted a,item,n", got)
	}
	c.body("/del?k=item")
	c.body("/del?k=nothing")
	if got := c.body("/keys"); got != "a,n" {
		t.Fatalf("keys after Remove = %q", got)
	}
	tok := c.token()
	c.body("/clear")
	if got := c.body("/keys"); got != "" {
		t.Fatalf("keys after Clear = %q", got)
	}
	if c.token() != tok {
		t.Fatalf("Clear changed the token")
	}
	mux.HandleFunc("/clearput", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		session.Put(ctx, "x", "1")
		session.Clear(ctx)
		session.Put(ctx, "y", "2")
		if got := session.Keys(ctx); !slices.Equal(got, []string{"y"}) {
			t.Errorf("Keys in the request after Put, Clear, Put = %q", got)
		}
	})
	c.body("/put?k=z&v=1")
	c.body("/clearput")
	if got := c.body("/keys"); got != "y" {
		t.Fatalf("keys after Put x, Clear, Put y = %q, want y", got)
	}
}

type unregistered struct{ A int }

func TestOutsideCodecs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec session.Codec
	}{{"gob", nil}, {"gob-explicit", session.GobCodec{}}, {"json", session.JSONCodec{}}} {
		t.Run(tc.name, func(t *testing.T) {
			m := manager(t, session.Config{Codec: tc.codec})
			mux := http.NewServeMux()
			mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
				session.Put(r.Context(), "u", unregistered{7})
				session.Put(r.Context(), "m", map[string]int{"a": 1})
				session.Put(r.Context(), "t", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
				if v, ok := session.Get[any](r.Context(), "u"); !ok || v != (unregistered{7}) {
					t.Errorf("Get[any] of a value put by this request = %v %v", v, ok)
				}
			})
			mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
				if v, ok := session.Get[unregistered](r.Context(), "u"); !ok || v.A != 7 {
					t.Errorf("Get[unregistered] = %v %v", v, ok)
				}
				if v, ok := session.Get[map[string]int](r.Context(), "m"); !ok || v["a"] != 1 {
					t.Errorf("Get[map] = %v %v", v, ok)
				}
				if v, ok := session.Get[time.Time](r.Context(), "t"); !ok || !v.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
					t.Errorf("Get[time.Time] = %v %v", v, ok)
				}
				// Get[any] of a value not registered with gob: documented
				// as not returned with gob; must not panic either way.
				v, ok := session.Get[any](r.Context(), "u")
				if tc.name != "json" && ok {
					t.Errorf("gob: Get[any] of an unregistered type from the store = %v, ok", v)
				}
				if session.Err(r.Context()) != nil {
					t.Errorf("a decoding failure made the session unusable: %v", session.Err(r.Context()))
				}
			})
			srv := newTLS(t, m.Handler(mux))
			c := browser(t, srv)
			c.body("/put")
			c.body("/get")
		})
	}
	gob.Register(unregistered{})
}

// TestOutsideRenew: new token, same data, same user, old cookie dead.
func TestOutsideRenew(t *testing.T) {
	st := memStore(t)
	m := manager(t, session.Config{Store: st})
	srv := newTLS(t, m.Handler(app()))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	c.body("/user?u=alice")
	old := c.token()
	resp, _ := c.get("/renew")
	if resp.StatusCode != 200 {
		t.Fatalf("renew: %d", resp.StatusCode)
	}
	if ck := sessionCookie(resp, session.DefaultCookieName); ck == nil || !slices.Contains(resp.Header.Values("Cache-Control"), "no-store") {
		t.Fatalf("Renew response: Set-Cookie %q Cache-Control %q", resp.Header["Set-Cookie"], resp.Header["Cache-Control"])
	}
	nu := c.token()
	if nu == old || !tokenRE.MatchString(nu) {
		t.Fatalf("Renew: token %q -> %q", old, nu)
	}
	if got := c.body("/get?k=a"); got != "1" {
		t.Fatalf("data after Renew = %q", got)
	}
	if got := c.body("/user?u=alice"); got != "alice" {
		t.Fatalf("user after Renew = %q", got)
	}
	// The old cookie is dead, and writing with it starts a fresh session.
	d := browser(t, srv)
	d.setToken(old)
	if got := d.body("/get?k=a"); got != "<none>" {
		t.Fatalf("old token still reads %q", got)
	}
	d.body("/put?k=b&v=2")
	if tk := d.token(); tk == old || tk == nu || tk == "" {
		t.Fatalf("a write with a dead token got token %q (old %q)", tk, old)
	}
	if n, _ := m.DestroyAll(context.Background(), "alice"); n != 1 {
		t.Fatalf("DestroyAll after Renew deleted %d sessions, want 1", n)
	}
	if got := c.body("/get?k=a"); got != "<none>" {
		t.Fatalf("after DestroyAll: %q", got)
	}
	if st.Len() != 1 {
		t.Fatalf("store holds %d sessions, want 1 (d's)", st.Len())
	}
}

// TestOutsideRenewKeepsPendingChanges: a login handler typically Puts,
// Renews and Puts again; none of it may be lost.
func TestOutsideRenewKeepsPendingChanges(t *testing.T) {
	m := manager(t, session.Config{})
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		session.Put(ctx, "before", "1")
		session.Remove(ctx, "gone")
		if err := session.Renew(ctx); err != nil {
			t.Error(err)
		}
		session.Put(ctx, "after", "2")
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=gone&v=x")
	c.body("/put?k=kept&v=y")
	c.body("/login")
	if got := c.body("/keys"); got != "after,before,kept" {
		t.Fatalf("keys after login = %q, want after,before,kept", got)
	}
	// Renew on a request without a session does nothing, and a new
	// session made by the same request still works.
	d := browser(t, srv)
	d.body("/login")
	if got := d.body("/keys"); got != "after,before" {
		t.Fatalf("keys after login without a session = %q", got)
	}
}

func TestOutsideDestroy(t *testing.T) {
	st := memStore(t)
	m := manager(t, session.Config{Store: st})
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/destroyput", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		session.Put(ctx, "lost", "1")
		if err := session.Destroy(ctx); err != nil {
			t.Error(err)
		}
		if session.Has(ctx, "a") || session.Has(ctx, "lost") {
			t.Errorf("the session still has keys after Destroy: %q", session.Keys(ctx))
		}
		session.Put(ctx, "fresh", "1")
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	old := c.token()
	c.body("/destroyput")
	nu := c.token()
	if nu == "" || nu == old {
		t.Fatalf("Destroy then Put: token %q -> %q, want a fresh one", old, nu)
	}
	if got := c.body("/keys"); got != "fresh" {
		t.Fatalf("keys after Destroy then Put = %q", got)
	}
	d := browser(t, srv)
	d.setToken(old)
	if got := d.body("/keys"); got != "" {
		t.Fatalf("the destroyed token reads %q", got)
	}
	// Destroy without a session is harmless.
	e := browser(t, srv)
	if resp, b := e.get("/destroy"); resp.StatusCode != 200 {
		t.Fatalf("Destroy without a session: %d %q", resp.StatusCode, b)
	}
	if st.Len() != 1 {
		t.Fatalf("store holds %d sessions, want 1", st.Len())
	}
}

// TestOutsideFixation: a well-formed token the server never issued is never
// adopted, neither by a write nor by a login.
func TestOutsideFixation(t *testing.T) {
	st := memStore(t)
	m := manager(t, session.Config{Store: st})
	srv := newTLS(t, m.Handler(app()))
	planted := strings.Repeat("Q", 43)
	c := browser(t, srv)
	c.setToken(planted)
	c.body("/put?k=a&v=1")
	if c.token() == planted || c.token() == "" {
		t.Fatalf("planted token %q adopted: %q", planted, c.token())
	}
	attacker := browser(t, srv)
	attacker.setToken(planted)
	if got := attacker.body("/get?k=a"); got != "<none>" {
		t.Fatalf("attacker with the planted token reads %q", got)
	}
	// A token with one character changed is another, unknown token.
	tok := []byte(c.token())
	tok[10] ^= 1
	e := browser(t, srv)
	e.setToken(string(tok))
	if got := e.body("/get?k=a"); got != "<none>" {
		t.Fatalf("tampered token reads %q", got)
	}
}

// TestOutsideDuplicateCookies: two cookies of the session's name (a
// sibling subdomain or a more specific path can add one): a garbage first
// cookie does not hide the real session; otherwise the first well-formed
// one counts, as documented.
func TestOutsideDuplicateCookies(t *testing.T) {
	m := manager(t, session.Config{Cookie: session.Cookie{Insecure: true}})
	srv := httptest.NewServer(m.Handler(app()))
	t.Cleanup(srv.Close)
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	u, _ := url.Parse(srv.URL)
	tok := c.jar.Cookies(u)[0].Value
	for _, hdr := range []string{
		"session=garbage; session=" + tok,
		"session=" + tok + "; session=garbage",
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/get?k=a", nil)
		req.Header.Set("Cookie", hdr)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "1" {
			t.Errorf("Cookie: %q: read %q, want the session's 1", hdr, b)
		}
	}
	// Documented: the first well-formed cookie is the one used, even when
	// the store does not know it.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/get?k=a", nil)
	req.Header.Set("Cookie", "session="+strings.Repeat("Q", 43)+"; session="+tok)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "<none>" {
		t.Errorf("an unknown first token then the session's: read %q, want <none> (the first well-formed cookie counts)", b)
	}
}

// TestOutsideDestroyAll: several sessions of one user on two instances
// sharing a store, and another user's session left alone.
func TestOutsideDestroyAll(t *testing.T) {
	st := memStore(t)
	m1 := manager(t, session.Config{Store: st})
	m2 := manager(t, session.Config{Store: st})
	s1 := newTLS(t, m1.Handler(app()))
	s2 := newTLS(t, m2.Handler(app()))
	var alice []*client
	for i := range 4 {
		srv := s1
		if i%2 == 1 {
			srv = s2
		}
		c := browser(t, srv)
		c.body("/put?k=a&v=1")
		c.body("/user?u=alice")
		alice = append(alice, c)
	}
	bob := browser(t, s2)
	bob.body("/user?u=bob")
	bob.body("/put?k=a&v=b")
	anon := browser(t, s1)
	anon.body("/put?k=a&v=x")

	n, err := m2.DestroyAll(context.Background(), "alice")
	if err != nil || n != 4 {
		t.Fatalf("DestroyAll = %d, %v; want 4", n, err)
	}
	for i, c := range alice {
		if got := c.body("/get?k=a"); got != "<none>" {
			t.Errorf("alice's session %d survived DestroyAll: %q", i, got)
		}
		// ... also seen from the other instance.
		if got := c.on(s1).body("/get?k=a"); got != "<none>" {
			t.Errorf("alice's session %d survived on the other instance: %q", i, got)
		}
	}
	if got := bob.body("/get?k=a"); got != "b" {
		t.Errorf("bob's session: %q", got)
	}
	if got := anon.body("/get?k=a"); got != "x" {
		t.Errorf("anonymous session: %q", got)
	}
	if n, err := m1.DestroyAll(context.Background(), "alice"); n != 0 || err != nil {
		t.Errorf("second DestroyAll = %d, %v", n, err)
	}
	if n, err := m1.DestroyAll(context.Background(), "nobody"); n != 0 || err != nil {
		t.Errorf("DestroyAll of an unknown user = %d, %v", n, err)
	}
	for _, u := range []string{"", strings.Repeat("u", session.MaxUserIDLen+1)} {
		if _, err := m1.DestroyAll(context.Background(), u); !errors.Is(err, session.ErrInvalidUser) {
			t.Errorf("DestroyAll(%.10q...) = %v, want ErrInvalidUser", u, err)
		}
	}
	if _, err := m1.DestroyAll(context.Background(), strings.Repeat("u", session.MaxUserIDLen)); err != nil {
		t.Errorf("DestroyAll of a MaxUserIDLen user: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("DestroyAll(nil ctx) did not panic")
			}
		}()
		//lint:ignore SA1012 testing the documented panic
		m1.DestroyAll(nil, "alice") //nolint:staticcheck
	}()
}

// TestOutsideRebindUser: a session moved from one user to another is ended
// by DestroyAll of the new user, and not counted for the old one.
func TestOutsideRebindUser(t *testing.T) {
	m := manager(t, session.Config{})
	srv := newTLS(t, m.Handler(app()))
	c := browser(t, srv)
	c.body("/user?u=alice")
	c.body("/user?u=bob")
	if got := c.body("/user?u=bob"); got != "bob" {
		t.Fatalf("User = %q", got)
	}
	if n, _ := m.DestroyAll(context.Background(), "alice"); n != 0 {
		t.Errorf("DestroyAll(alice) deleted %d sessions of bob", n)
	}
	if n, _ := m.DestroyAll(context.Background(), "bob"); n != 1 {
		t.Errorf("DestroyAll(bob) deleted %d sessions, want 1", n)
	}
	for _, u := range []string{"", strings.Repeat("u", session.MaxUserIDLen+1)} {
		resp, b := c.get("/user?u=" + u)
		if resp.StatusCode != 599 || !strings.Contains(b, session.ErrInvalidUser.Error()) {
			t.Errorf("SetUser(%.10q) = %d %q, want ErrInvalidUser", u, resp.StatusCode, b)
		}
	}
}

// TestOutsideOverlappingRequests: two overlapping requests changing
// different keys both keep their changes; for one key the last commit wins.
func TestOutsideOverlappingRequests(t *testing.T) {
	m := manager(t, session.Config{})
	g := newGate()
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n, _ := session.Get[string](ctx, "n")
		g.wait()
		session.Put(ctx, "slow", "s")
		session.Put(ctx, "same", "slow")
		io.WriteString(w, n)
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=n&v=0")
	c.meanwhile("/slow", g, func() {
		c.body("/put?k=fast&v=f")
		c.body("/put?k=same&v=fast")
	})
	if got := c.body("/keys"); got != "fast,n,same,slow" {
		t.Fatalf("keys = %q, want both requests' keys", got)
	}
	if got := c.body("/get?k=same"); got != "slow" {
		t.Fatalf("same key = %q, want the last commit's (slow)", got)
	}
}

// TestOutsideNoResurrection: a request that started before Destroy (or
// Renew, or DestroyAll) and commits after it never brings the session back.
func TestOutsideNoResurrection(t *testing.T) {
	for _, end := range []string{"destroy", "renew", "destroyall"} {
		for _, read := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/read=%v", end, read), func(t *testing.T) {
				st := memStore(t)
				m := manager(t, session.Config{Store: st})
				g := newGate()
				mux := app().(*http.ServeMux)
				mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
					ctx := r.Context()
					if read {
						session.Get[string](ctx, "a")
					}
					g.wait()
					session.Put(ctx, "late", "1")
				})
				srv := newTLS(t, m.Handler(mux))
				c := browser(t, srv)
				c.body("/put?k=a&v=1")
				c.body("/user?u=alice")
				old := c.token()
				slow := browser(t, srv)
				slow.setToken(old)
				code, _ := slow.meanwhile("/slow", g, func() {
					switch end {
					case "destroy":
						c.body("/destroy")
					case "renew":
						c.body("/renew")
					case "destroyall":
						if n, err := m.DestroyAll(context.Background(), "alice"); n != 1 || err != nil {
							t.Errorf("DestroyAll = %d %v", n, err)
						}
					}
				})
				probe := browser(t, srv)
				probe.setToken(old)
				if got := probe.body("/keys"); got != "" {
					t.Fatalf("the old token reads keys %q after the late commit", got)
				}
				if tk := slow.token(); tk == old {
					t.Errorf("the late request kept the dead token")
				}
				if !read && slow.token() != "" {
					// Documented: a write-only request starts a fresh session.
					if got := slow.body("/keys"); got != "late" {
						t.Errorf("fresh session of a write-only late request holds %q", got)
					}
				}
				if end == "renew" {
					if got := c.body("/keys"); got != "a" {
						t.Errorf("renewed session holds %q, want a", got)
					}
				}
				if code != 200 {
					t.Errorf("late request answered %d", code)
				}
				want := 0
				if end == "renew" {
					want++
				}
				if !read {
					want++
				}
				if st.Len() != want {
					t.Errorf("store holds %d sessions, want %d", st.Len(), want)
				}
			})
		}
	}
}

func TestOutsideSizeLimit(t *testing.T) {
	st := memStore(t)
	m := manager(t, session.Config{Store: st, SizeLimit: 100})
	g := newGate()
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		err := session.Put(r.Context(), "big", strings.Repeat("x", 200))
		if !errors.Is(err, session.ErrTooLarge) {
			t.Errorf("Put past SizeLimit = %v, want ErrTooLarge", err)
		}
		if session.Has(r.Context(), "big") {
			t.Errorf("a refused Put left its key")
		}
	})
	mux.HandleFunc("/half", func(w http.ResponseWriter, r *http.Request) {
		session.Keys(r.Context())
		if r.URL.Query().Get("wait") != "" {
			g.wait()
		}
		if err := session.Put(r.Context(), r.URL.Query().Get("k"), strings.Repeat("y", 60)); err != nil {
			t.Errorf("Put within SizeLimit: %v", err)
		}
		io.WriteString(w, "handler")
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	c.body("/big")
	if got := c.body("/keys"); got != "a" {
		t.Fatalf("keys after a refused Put = %q", got)
	}
	// Two overlapping requests, each within the limit, together past it:
	// the second commit is refused with the documented 500.
	code, b := c.meanwhile("/half?k=p&wait=1", g, func() { c.body("/half?k=q") })
	if code != http.StatusInternalServerError || b != "session: session too large\n" {
		t.Fatalf("commit past SizeLimit answered %d %q, want 500", code, b)
	}
	if got := c.body("/keys"); got != "a,q" {
		t.Fatalf("keys after a refused commit = %q, want a,q", got)
	}
}

func TestOutsideStoreDown(t *testing.T) {
	f := &failing{Store: memStore(t)}
	var events []session.StoreErrorEvent
	var mu sync.Mutex
	m := manager(t, session.Config{Store: f, OnStoreError: func(ctx context.Context, ev session.StoreErrorEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}})
	mux := app().(*http.ServeMux)
	ran := make(chan string, 10)
	mux.HandleFunc("/after", func(w http.ResponseWriter, r *http.Request) {
		_, ok := session.Get[string](r.Context(), "a")
		err := session.Err(r.Context())
		ran <- fmt.Sprint(ok, errors.Is(err, session.ErrStore))
		io.WriteString(w, "handler's body")
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	f.down.Store(true)
	for _, p := range []string{"/get?k=a", "/put?k=b&v=2", "/after", "/keys"} {
		resp, b := c.get(p)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "session: store unavailable") {
			t.Errorf("%s with the store down: %d %q", p, resp.StatusCode, b)
		}
		if strings.Contains(b, "handler's body") {
			t.Errorf("%s: the handler's body reached the client after the error", p)
		}
	}
	if got := <-ran; got != "false true" {
		t.Errorf("handler saw Get ok/Err ErrStore = %s", got)
	}
	if resp, _ := c.get("/none"); resp.StatusCode != 200 {
		t.Errorf("an untouched request with the store down: %d", resp.StatusCode)
	}
	resp, b := c.get("/renew")
	if resp.StatusCode != 599 && resp.StatusCode != 503 {
		t.Errorf("Renew with the store down: %d %q", resp.StatusCode, b)
	}
	if _, err := m.DestroyAll(context.Background(), "x"); !errors.Is(err, session.ErrStore) || !errors.Is(err, errDown) {
		t.Errorf("DestroyAll with the store down: %v", err)
	}
	f.down.Store(false)
	if got := c.body("/get?k=a"); got != "1" {
		t.Errorf("after the outage: %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 4 {
		t.Errorf("OnStoreError saw %d events", len(events))
	}
	for _, ev := range events {
		var se *session.StoreError
		if !errors.As(ev.Err, &se) || !errors.Is(ev.Err, errDown) || !strings.HasPrefix(se.Error(), "session: store "+se.Op+": ") {
			t.Errorf("event %v", ev.Err)
		}
	}
}

// TestOutsideErrorHandler: a custom ErrorHandler answers in place of the
// handler; the handler's later writes return an error.
func TestOutsideErrorHandler(t *testing.T) {
	f := &failing{Store: memStore(t)}
	f.down.Store(true)
	writeErr := make(chan error, 1)
	m := manager(t, session.Config{Store: f, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "custom: "+err.Error(), http.StatusTeapot)
	}})
	srv := newTLS(t, m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.Put(r.Context(), "a", "1")
		_, err := io.WriteString(w, "late")
		writeErr <- err
	})))
	c := browser(t, srv)
	c.setToken(strings.Repeat("A", 43))
	resp, b := c.get("/")
	if resp.StatusCode != http.StatusTeapot || !strings.HasPrefix(b, "custom: session: store") || strings.Contains(b, "late") {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	if err := <-writeErr; err == nil {
		t.Errorf("the handler's Write after the ErrorHandler returned no error")
	}
}

// TestOutsideHeadersWritten: Put on a request without a session after the
// headers are written is ErrHeadersWritten; Renew too; a change to an existing
// session after the headers are written is committed or refused, never
// silently lost.
func TestOutsideHeadersWritten(t *testing.T) {
	m := manager(t, session.Config{})
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/late-new", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body first")
		if err := session.Put(r.Context(), "a", "1"); !errors.Is(err, session.ErrHeadersWritten) {
			t.Errorf("Put after the headers on a new session = %v", err)
		}
		if err := session.SetUser(r.Context(), "u"); !errors.Is(err, session.ErrHeadersWritten) {
			t.Errorf("SetUser after the headers on a new session = %v", err)
		}
	})
	mux.HandleFunc("/late-put", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body first")
		if err := session.Put(r.Context(), "late", "1"); err != nil {
			io.WriteString(w, " err="+err.Error())
		}
	})
	mux.HandleFunc("/late-renew", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		if err := session.Renew(r.Context()); !errors.Is(err, session.ErrHeadersWritten) {
			t.Errorf("Renew after WriteHeader = %v", err)
		}
	})
	mux.HandleFunc("/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		if err := session.Put(r.Context(), "a", "hint"); err != nil {
			t.Errorf("Put after a 103: %v", err)
		}
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/late-new")
	if c.token() != "" {
		t.Fatalf("a session was created after the headers")
	}
	c.body("/early-hints")
	if got := c.body("/get?k=a"); got != "hint" {
		t.Fatalf("Put after a 103 Early Hints: read %q", got)
	}
	b := c.body("/late-put")
	got := c.body("/get?k=late")
	if got != "1" && !strings.Contains(b, "err=") {
		t.Errorf("Put after the body on an existing session returned nil but was not committed (read %q)", got)
	}
	tok := c.token()
	c.body("/late-renew")
	if c.token() != tok {
		t.Errorf("Renew after WriteHeader changed the token")
	}
	if got := c.body("/get?k=a"); got != "hint" {
		t.Errorf("Renew after WriteHeader lost the session: %q", got)
	}
}

// TestOutsideResponseController: Flush, a write deadline and Hijack reach
// the server's writer through the middleware; the cookie goes out before
// the first flush.
func TestOutsideResponseController(t *testing.T) {
	m := manager(t, session.Config{Cookie: session.Cookie{Insecure: true}})
	flushed := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		session.Put(r.Context(), "a", "1")
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		<-flushed
		io.WriteString(w, "rest")
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		session.Put(r.Context(), "a", "2")
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		brw.Flush()
	})
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/flush")
	if err != nil {
		t.Fatal(err)
	}
	if sessionCookie(resp, "session") == nil {
		t.Errorf("flushed headers without the cookie")
	}
	close(flushed)
	io.ReadAll(resp.Body)
	resp.Body.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("hijacked response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hi" {
		t.Errorf("hijacked body %q", b)
	}
}

// TestOutsidePanic: a panicking handler commits nothing, creates no session
// and its panic reaches net/http.
func TestOutsidePanic(t *testing.T) {
	st := &counting{Store: memStore(t)}
	m := manager(t, session.Config{Store: st})
	var recovered atomic.Value
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		session.Put(r.Context(), "a", "changed")
		panic("boom")
	})
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				recovered.Store(v)
				w.WriteHeader(500)
			}
		}()
		m.Handler(mux).ServeHTTP(w, r)
	})
	srv := newTLS(t, outer)
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	before := st.commits.Load()
	resp, _ := c.get("/panic")
	if resp.StatusCode != 500 || recovered.Load() != "boom" {
		t.Fatalf("panic: status %d, recovered %v", resp.StatusCode, recovered.Load())
	}
	if len(resp.Header["Set-Cookie"]) != 0 {
		t.Errorf("a panicking request set a cookie")
	}
	if st.commits.Load() != before {
		t.Errorf("a panicking request committed")
	}
	if got := c.body("/get?k=a"); got != "1" {
		t.Errorf("after the panic: %q", got)
	}
}

func TestOutsideOutsideHandler(t *testing.T) {
	ctx := context.Background()
	if err := session.Put(ctx, "a", 1); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Put: %v", err)
	}
	for name, f := range map[string]func(context.Context) error{
		"Remove": func(ctx context.Context) error { return session.Remove(ctx, "a") },
		"Clear":  session.Clear, "Renew": session.Renew, "Destroy": session.Destroy,
		"SetUser": func(ctx context.Context) error { return session.SetUser(ctx, "u") },
		"Err":     session.Err,
	} {
		if err := f(ctx); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("%s outside a session: %v", name, err)
		}
	}
	if _, ok := session.Get[int](ctx, "a"); ok || session.Has(ctx, "a") || session.Keys(ctx) != nil || session.User(ctx) != "" {
		t.Errorf("reads outside a session")
	}
}

func TestOutsideCloseIdempotent(t *testing.T) {
	m := session.New(session.Config{})
	srv := newTLS(t, m.Handler(app()))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if got := c.body("/get?k=a"); got != "1" {
		t.Errorf("after Close: %q", got)
	}
	st := session.NewMemoryStore(session.MemoryConfig{})
	for range 3 {
		if err := st.Close(); err != nil {
			t.Errorf("MemoryStore.Close: %v", err)
		}
	}
}

func TestOutsideValidate(t *testing.T) {
	bad := map[string]session.Config{
		"negative idle":          {IdleTimeout: -1},
		"idle past lifetime":     {IdleTimeout: 2 * time.Hour, Lifetime: time.Hour},
		"idle past default life": {IdleTimeout: 13 * time.Hour},
		"negative lifetime":      {Lifetime: -time.Second},
		"lifetime past max":      {Lifetime: session.MaxLifetime + 1},
		"touch past idle":        {TouchAfter: time.Hour},
		"negative size":          {SizeLimit: -1},
		"size past max":          {SizeLimit: session.MaxSizeLimit + 1},
		"host without secure":    {Cookie: session.Cookie{Name: "__Host-x", Insecure: true}},
		"host with domain":       {Cookie: session.Cookie{Name: "__Host-x", Domain: "example.com"}},
		"host with path":         {Cookie: session.Cookie{Name: "__Host-x", Path: "/app"}},
		"default name with path": {Cookie: session.Cookie{Path: "/app"}},
		"secure- insecure":       {Cookie: session.Cookie{Name: "__Secure-x", Insecure: true}},
		"samesite none insecure": {Cookie: session.Cookie{SameSite: http.SameSiteNoneMode, Insecure: true}},
		"samesite out of range":  {Cookie: session.Cookie{SameSite: 99}},
		"name with space":        {Cookie: session.Cookie{Name: "a b", Insecure: true}},
		"name with semicolon":    {Cookie: session.Cookie{Name: "a;b", Insecure: true}},
		"name with equals":       {Cookie: session.Cookie{Name: "a=b", Insecure: true}},
		"path with semicolon":    {Cookie: session.Cookie{Name: "s", Path: "/a;b", Insecure: true}},
		"path not absolute":      {Cookie: session.Cookie{Name: "s", Path: "app", Insecure: true}},
		"domain with semicolon":  {Cookie: session.Cookie{Name: "s", Domain: "a.com;x=y", Insecure: true}},
	}
	for name, cfg := range bad {
		err := cfg.Validate()
		var ce *bulwark.ConfigError
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%s: Validate = %v, want a *bulwark.ConfigError", name, err)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: New did not panic", name)
				}
			}()
			session.New(cfg).Close()
		}()
	}
	good := map[string]session.Config{
		"zero":           {},
		"touch negative": {TouchAfter: -1},
		"max lifetime":   {Lifetime: session.MaxLifetime, IdleTimeout: session.MaxLifetime},
		"max size":       {SizeLimit: session.MaxSizeLimit},
		"insecure":       {Cookie: session.Cookie{Insecure: true}},
		"secure domain":  {Cookie: session.Cookie{Name: "s", Domain: "example.com"}},
		"none secure":    {Cookie: session.Cookie{SameSite: http.SameSiteNoneMode}},
	}
	for name, cfg := range good {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, cfg := range map[string]session.MemoryConfig{
		"negative max": {MaxSessions: -1}, "max past": {MaxSessions: session.MaxMaxSessions + 1},
		"negative cleanup": {CleanupInterval: -1}, "cleanup past": {CleanupInterval: session.MaxCleanupInterval + 1},
	} {
		if err := cfg.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("MemoryConfig %s: %v", name, err)
		}
	}
}

func TestOutsideMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	f := &failing{Store: memStore(t)}
	m := manager(t, session.Config{Store: f, MeterProvider: mp, Name: "web"})
	srv := newTLS(t, m.Handler(app()))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")  // save
	c.body("/get?k=a")      // load
	c.body("/renew")        // renew
	c.body("/user?u=alice") // save
	m.DestroyAll(context.Background(), "alice")
	c.body("/put?k=a&v=1") // save (new)
	c.body("/destroy")     // destroy
	f.down.Store(true)
	d := browser(t, srv)
	d.get("/put?k=a&v=1") // save error
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/bulwark-go/bulwark/session" {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, mm := range sm.Metrics {
			sum, ok := mm.Data.(metricdata.Sum[int64])
			if !ok || !sum.IsMonotonic {
				t.Errorf("%s is not a monotonic counter", mm.Name)
				continue
			}
			for _, dp := range sum.DataPoints {
				if n, _ := dp.Attributes.Value("bulwark.name"); n.AsString() != "web" {
					t.Errorf("%s without bulwark.name=web", mm.Name)
				}
				op, _ := dp.Attributes.Value("bulwark.session.op")
				got[mm.Name+"/"+op.AsString()] += dp.Value
			}
		}
	}
	t.Logf("metrics: %v", got)
	if got["bulwark.session.store.errors/save"] != 1 {
		t.Errorf("store.errors/save = %d", got["bulwark.session.store.errors/save"])
	}
	if got["bulwark.session.loads/"]+got["bulwark.session.loads/load"] < 1 {
		t.Errorf("no loads counted: %v", got)
	}
}

// pipeServer is a client, with a cookie jar, of a handler served over
// net.Pipe, for tests in a synctest bubble.
type pipeServer struct {
	c *http.Client
}

// servePipe serves h inside the current bubble until t ends.
func servePipe(t *testing.T, h http.Handler) *pipeServer {
	jar, _ := cookiejar.New(nil)
	return &pipeServer{c: &http.Client{Transport: pipehttp.Serve(t, h), Jar: jar}}
}

func (p *pipeServer) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := p.c.Get("http://app.test" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestOutsideIdleAndAbsolute: in a synctest bubble, with the memory store
// made inside it.
func TestOutsideIdleAndAbsolute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := session.NewMemoryStore(session.MemoryConfig{})
		defer st.Close()
		sp := &counting{Store: st}
		m := session.New(session.Config{Store: sp, IdleTimeout: 30 * time.Minute, Lifetime: time.Hour,
			Cookie: session.Cookie{Insecure: true}})
		defer m.Close()
		p := servePipe(t, m.Handler(app()))

		p.get(t, "/put?k=a&v=1")
		// Reads within TouchAfter (3m) cost one load and no write.
		time.Sleep(2 * time.Minute)
		c0 := sp.commits.Load()
		if got := p.get(t, "/get?k=a"); got != "1" {
			t.Fatalf("at 2m: %q", got)
		}
		if sp.commits.Load() != c0 {
			t.Fatalf("a read within TouchAfter wrote to the store")
		}
		// Past TouchAfter, a read extends the idle deadline (one write).
		time.Sleep(27 * time.Minute) // 29m
		if got := p.get(t, "/get?k=a"); got != "1" {
			t.Fatalf("at 29m: %q", got)
		}
		if sp.commits.Load() != c0+1 {
			t.Fatalf("a read past TouchAfter made %d writes, want 1", sp.commits.Load()-c0)
		}
		time.Sleep(29 * time.Minute) // 58m: alive thanks to the touch at 29m
		if got := p.get(t, "/get?k=a"); got != "1" {
			t.Fatalf("at 58m (touched at 29m): %q", got)
		}
		time.Sleep(2*time.Minute + time.Second) // 60m01: past the absolute deadline
		if got := p.get(t, "/get?k=a"); got != "<none>" {
			t.Fatalf("past Lifetime, however active: %q", got)
		}

		// Idle expiry: a new session left alone for IdleTimeout.
		p.get(t, "/put?k=b&v=2")
		time.Sleep(30*time.Minute + time.Second)
		if got := p.get(t, "/get?k=b"); got != "<none>" {
			t.Fatalf("past IdleTimeout: %q", got)
		}
		if st.Len() != 0 {
			t.Fatalf("memory store holds %d expired sessions as live", st.Len())
		}
	})
}

// TestOutsideRenewKeepsDeadline: Renew never extends the absolute deadline,
// and a persistent cookie keeps expiring at it.
func TestOutsideRenewKeepsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := session.New(session.Config{IdleTimeout: 30 * time.Minute, Lifetime: time.Hour,
			Cookie: session.Cookie{Insecure: true, Persistent: true}})
		defer m.Close()
		p := servePipe(t, m.Handler(app()))
		start := time.Now()
		p.get(t, "/put?k=a&v=1")
		for range 5 {
			time.Sleep(10 * time.Minute)
			p.get(t, "/renew")
		}
		if got := p.get(t, "/get?k=a"); got != "1" {
			t.Fatalf("at 50m after renewals: %q", got)
		}
		resp, err := p.c.Get("http://app.test/renew")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ck := sessionCookie(resp, "session"); ck == nil || !ck.Expires.Equal(start.Add(time.Hour).Truncate(time.Second)) {
			t.Errorf("renewed persistent cookie %q, want Expires at the absolute deadline %v", resp.Header["Set-Cookie"], start.Add(time.Hour))
		}
		time.Sleep(10*time.Minute + time.Second)
		if got := p.get(t, "/get?k=a"); got != "<none>" {
			t.Fatalf("Renew extended the absolute deadline: %q", got)
		}
	})
}

// TestOutsideTLSCookieJar: the default (Secure, __Host-) cookie round-trips
// through a real browser-like jar over TLS.
func TestOutsideTLSCookieJar(t *testing.T) {
	m := manager(t, session.Config{})
	srv := newTLS(t, m.Handler(app()))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	if got := c.body("/get?k=a"); got != "1" {
		t.Fatalf("got %q", got)
	}
	_ = tls.VersionTLS13
}

// TestOutsideConcurrentUseInRequest: a handler's goroutines may use the
// session at once.
func TestOutsideConcurrentUseInRequest(t *testing.T) {
	m := manager(t, session.Config{})
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/fan", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				session.Put(ctx, fmt.Sprint("k", i), "v")
				session.Get[string](ctx, "a")
				session.Keys(ctx)
			})
		}
		wg.Wait()
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	c.body("/fan")
	if got := c.body("/keys"); got != "a,k0,k1,k2,k3,k4,k5,k6,k7" {
		t.Fatalf("keys = %q", got)
	}
}

// TestChangesAfterHandlerReturnedAreRefused: a goroutine the handler left
// behind cannot change the session any more (its changes would never be
// committed): Put, Remove, Clear, SetUser and Renew say so with
// ErrHandlerReturned rather than returning nil, and Renew does not end
// the session (its new cookie could never reach the client).
func TestChangesAfterHandlerReturnedAreRefused(t *testing.T) {
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprint("panics=", panics), func(t *testing.T) {
			m := manager(t, session.Config{})
			ctxs := make(chan context.Context, 1)
			mux := app().(*http.ServeMux)
			mux.HandleFunc("/leave", func(w http.ResponseWriter, r *http.Request) {
				session.Keys(r.Context())
				select {
				case ctxs <- r.Context():
				default: // the client retried the aborted request
				}
				if panics {
					panic(http.ErrAbortHandler)
				}
			})
			srv := newTLS(t, m.Handler(mux))
			c := browser(t, srv)
			c.body("/put?k=a&v=1")
			if resp, err := c.http.Get(srv.URL + "/leave"); err == nil { // a panic aborts the response
				resp.Body.Close()
			}
			ctx := <-ctxs
			for name, f := range map[string]func() error{
				"Put":     func() error { return session.Put(ctx, "ghost", "1") },
				"Remove":  func() error { return session.Remove(ctx, "a") },
				"Clear":   func() error { return session.Clear(ctx) },
				"SetUser": func() error { return session.SetUser(ctx, "mallory") },
				"Renew":   func() error { return session.Renew(ctx) },
			} {
				if err := f(); !errors.Is(err, session.ErrHandlerReturned) {
					t.Errorf("%s after the handler returned = %v, want ErrHandlerReturned", name, err)
				}
			}
			if got := c.body("/keys"); got != "a" {
				t.Fatalf("keys = %q, want a (nothing after the handler returned counts)", got)
			}
		})
	}
}

// TestOutsideRenewCarriesOverlappingCommits: Renew carries what an
// overlapping request committed after this one loaded.
func TestOutsideRenewCarriesOverlappingCommits(t *testing.T) {
	m := manager(t, session.Config{})
	g := newGate()
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/slowrenew", func(w http.ResponseWriter, r *http.Request) {
		session.Keys(r.Context())
		g.wait()
		if err := session.Renew(r.Context()); err != nil {
			t.Error(err)
		}
		if !session.Has(r.Context(), "other") {
			t.Errorf("after Renew the request does not see the overlapping commit: %q", session.Keys(r.Context()))
		}
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	c.meanwhile("/slowrenew", g, func() { c.body("/put?k=other&v=2") })
	if got := c.body("/keys"); got != "a,other" {
		t.Fatalf("keys after Renew = %q", got)
	}
}

// TestOutsideClearAtCommit: Clear removes every key present at commit
// time, including those an overlapping request committed meanwhile.
func TestOutsideClearAtCommit(t *testing.T) {
	m := manager(t, session.Config{})
	g := newGate()
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/slowclear", func(w http.ResponseWriter, r *http.Request) {
		session.Keys(r.Context())
		g.wait()
		session.Clear(r.Context())
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	c.meanwhile("/slowclear", g, func() { c.body("/put?k=b&v=2") })
	if got := c.body("/keys"); got != "" {
		t.Fatalf("keys after Clear = %q", got)
	}
}

// TestValidateCookiePrefixAnyCase: browsers match the __Host- and
// __Secure- prefixes case-insensitively (RFC 6265bis), so "__host-x"
// without Secure is a cookie every browser rejects; and a Path with a
// control character would be rewritten by net/http.
func TestValidateCookiePrefixAnyCase(t *testing.T) {
	for name, ck := range map[string]session.Cookie{
		"__host- insecure":    {Name: "__host-x", Insecure: true},
		"__HOST- with domain": {Name: "__HOST-x", Domain: "example.com"},
		"__Host- with path":   {Name: "__hOsT-x", Path: "/app"},
		"__secure- insecure":  {Name: "__SECURE-x", Insecure: true},
		"path with tab":       {Name: "s", Path: "/a\tb", Insecure: true},
		"path with DEL":       {Name: "s", Path: "/a\x7fb", Insecure: true},
		"domain with tab":     {Name: "s", Domain: "a.com\t", Insecure: true},
	} {
		if err := (session.Config{Cookie: ck}).Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want an error", name, err)
		}
	}
}

// TestErrorResponseDropsHandlerHeaders: the ErrorHandler's answer replaces
// the handler's response, so it must not go out under the headers the
// handler had set for its own body: a Content-Encoding would make the
// client decode plain text as gzip, a "Cache-Control: public" would let a
// shared cache keep the 503, a handler's Set-Cookie would go out with it.
func TestErrorResponseDropsHandlerHeaders(t *testing.T) {
	f := &failing{Store: memStore(t)}
	m := manager(t, session.Config{Store: f})
	srv := newTLS(t, m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Encoding", "gzip")
		h.Set("Cache-Control", "public, max-age=600")
		h.Set("ETag", `"v1"`)
		h.Set("Set-Cookie", "csrf=abc")
		session.Put(r.Context(), "a", "1")
		w.Write([]byte("\x1f\x8b gzip body"))
	})))
	f.down.Store(true)
	c := browser(t, srv)
	c.http.Transport.(*http.Transport).DisableCompression = true
	resp, b := c.get("/")
	if resp.StatusCode != http.StatusServiceUnavailable || b != "session: store unavailable\n" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	for _, k := range []string{"Content-Encoding", "ETag", "Set-Cookie"} {
		if v := resp.Header.Values(k); len(v) != 0 {
			t.Errorf("the error response carries the handler's %s: %q", k, v)
		}
	}
	if v := resp.Header.Get("Cache-Control"); strings.Contains(v, "public") {
		t.Errorf("the error response is cacheable: Cache-Control %q", v)
	}
}

// TestClientGoneStillCommits: a client that hangs up while its request
// runs cancels r.Context(), but what the handler did must still be saved,
// and above all a logout must still end the session (OWASP: logout is
// enforced server-side), whatever the client does.
func TestClientGoneStillCommits(t *testing.T) {
	st := memStore(t)
	m := manager(t, session.Config{Store: st})
	results := make(chan error, 1)
	finished := make(chan struct{}, 1)
	started := make(chan struct{}, 1)
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/slow-order", func(w http.ResponseWriter, r *http.Request) {
		session.Keys(r.Context())
		started <- struct{}{}
		<-r.Context().Done() // the client has gone
		results <- session.Put(r.Context(), "order", "placed")
	})
	mux.HandleFunc("/slow-logout", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		results <- session.Destroy(r.Context())
	})
	h := m.Handler(mux)
	srv := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if strings.HasPrefix(r.URL.Path, "/slow") {
			finished <- struct{}{} // the Manager has committed
		}
	}))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	hangUp := func(path string) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		errc := make(chan error, 1)
		go func() {
			resp, err := c.http.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-started
		cancel()
		<-errc
		if err := <-results; err != nil {
			t.Errorf("%s: the session call after the client left: %v", path, err)
		}
		<-finished
	}
	hangUp("/slow-order")
	if got := c.body("/get?k=order"); got != "placed" {
		t.Errorf("a change made before the client hung up was lost: %q", got)
	}
	hangUp("/slow-logout")
	if got := c.body("/get?k=a"); got != "<none>" {
		t.Errorf("a logout whose client hung up left the session alive: %q", got)
	}
}

// TestMemoryTombstonesBounded: every logout leaves a tombstone for
// TombstoneTTL; a flood of create-and-logout requests (each cheap for an
// anonymous client) must not grow the memory store past MaxSessions
// tombstones, as it bounds sessions.
func TestMemoryTombstonesBounded(t *testing.T) {
	st := session.NewMemoryStore(session.MemoryConfig{MaxSessions: 2})
	defer st.Close()
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("%043d", i)
		now := time.Now()
		if err := st.Commit(ctx, id, &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if r, err := st.Take(ctx, id); r == nil || err != nil {
			t.Fatal(r, err)
		}
		ids = append(ids, id)
	}
	tombstoned := 0
	for _, id := range ids {
		now := time.Now()
		// A session that expires at once: probing leaves no tombstone.
		err := st.Commit(ctx, id, &session.Change{Create: true, Now: now, Idle: time.Nanosecond, Deadline: now.Add(time.Hour)})
		switch {
		case errors.Is(err, session.ErrNotFound):
			tombstoned++
		case err != nil:
			t.Fatal(err)
		}
	}
	if tombstoned > 2 {
		t.Fatalf("the store holds %d tombstones, want at most MaxSessions (2)", tombstoned)
	}
	if tombstoned == 0 {
		t.Fatalf("no tombstone at all")
	}
}

// TestPutAfterHeadersWithDeadCookie: a request whose cookie names no live
// session (expired, destroyed, never issued) has no session, so a Put
// once the headers are written must say ErrHeadersWritten, as for a
// request without a cookie, rather than return nil and drop the value.
func TestPutAfterHeadersWithDeadCookie(t *testing.T) {
	m := manager(t, session.Config{})
	puts := make(chan error, 1)
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body first")
		puts <- session.Put(r.Context(), "late", "1")
	})
	srv := newTLS(t, m.Handler(mux))
	c := browser(t, srv)
	c.setToken(strings.Repeat("Q", 43))
	c.body("/late")
	if err := <-puts; !errors.Is(err, session.ErrHeadersWritten) {
		t.Fatalf("Put after the headers with a dead cookie = %v, want ErrHeadersWritten", err)
	}
	// With a live session it is committed.
	c.body("/put?k=a&v=1")
	c.body("/late")
	if err := <-puts; err != nil {
		t.Fatalf("Put after the headers on a live session = %v", err)
	}
	if got := c.body("/get?k=late"); got != "1" {
		t.Fatalf("a Put after the headers on a live session was not committed: %q", got)
	}
}

// TestDestroyAfterHandlerReturned: Destroy from a goroutine the handler
// left behind still ends the session in the store, as documented, also
// when the request had a deadline.
func TestDestroyAfterHandlerReturned(t *testing.T) {
	m := manager(t, session.Config{})
	ctxs := make(chan context.Context, 1)
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/leave", func(w http.ResponseWriter, r *http.Request) {
		session.Keys(r.Context())
		ctxs <- r.Context()
	})
	h := m.Handler(mux)
	srv := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Hour)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	}))
	c := browser(t, srv)
	c.body("/put?k=a&v=1")
	c.body("/leave")
	if err := session.Destroy(<-ctxs); err != nil {
		t.Fatalf("Destroy after the handler returned: %v", err)
	}
	if got := c.body("/get?k=a"); got != "<none>" {
		t.Fatalf("the session survived Destroy: %q", got)
	}
}

// TestOutsideHTTP2: over HTTP/2 (no Hijacker), the cookie still goes out
// before the first flush and a session round-trips.
func TestOutsideHTTP2(t *testing.T) {
	m := manager(t, session.Config{})
	mux := app().(*http.ServeMux)
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); ok {
			t.Errorf("the writer offers Hijack over HTTP/2")
		}
		session.Put(r.Context(), "a", "h2")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		io.WriteString(w, "streamed")
	})
	srv := httptest.NewUnstartedServer(m.Handler(mux))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := browser(t, srv)
	resp, b := c.get("/stream")
	if resp.ProtoMajor != 2 || b != "streamed" || sessionCookie(resp, session.DefaultCookieName) == nil {
		t.Fatalf("HTTP/%d %q, Set-Cookie %q", resp.ProtoMajor, b, resp.Header["Set-Cookie"])
	}
	if got := c.body("/get?k=a"); got != "h2" {
		t.Fatalf("read over HTTP/2: %q", got)
	}
}
