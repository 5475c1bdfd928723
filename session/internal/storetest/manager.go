package storetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-go/bulwark/session"
)

// Client is a browser with one session cookie, talking to a real server.
type Client struct {
	t      testing.TB
	URL    string
	Name   string // cookie name
	Token  string // current cookie value, "" for none
	Cookie *http.Cookie
}

// NewServer starts a loopback server running m.Handler(h) and returns it
// with a first client.
func NewServer(t testing.TB, m *session.Manager, h http.HandlerFunc) (*httptest.Server, *Client) {
	srv := httptest.NewServer(m.Handler(h))
	t.Cleanup(srv.Close)
	return srv, &Client{t: t, URL: srv.URL, Name: session.DefaultCookieName}
}

// Clone returns a second client holding the same cookie: another tab or a
// parallel request of the same user.
func (c *Client) Clone() *Client { cc := *c; return &cc }

// Get sends GET path with the client's cookie, records a Set-Cookie, and
// returns the status and body.
func (c *Client) Get(path string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.URL+path, nil)
	if c.Token != "" {
		req.Header.Set("Cookie", c.Name+"="+c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Errorf("GET %s: %v", path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == c.Name {
			c.Cookie = ck
			c.Token = ck.Value
			if ck.MaxAge < 0 {
				c.Token = ""
			}
		}
	}
	return resp.StatusCode, string(b)
}

// Must is Get failing the test unless the status is 200; it returns the
// body.
func (c *Client) Must(path string) string {
	c.t.Helper()
	code, body := c.Get(path)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s = %d %q", path, code, body)
	}
	return body
}

// App is the handler of the scenario tests: /put?k=&v=, /get?k=,
// /del?k=, /clear, /keys, /login?u= (Renew and SetUser), /renew,
// /logout, /user, /noop.
func App(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	var err error
	switch r.URL.Path {
	case "/put":
		err = session.Put(ctx, q.Get("k"), q.Get("v"))
	case "/get":
		v, ok := session.Get[string](ctx, q.Get("k"))
		if !ok {
			v = "<none>"
		}
		io.WriteString(w, v)
		return
	case "/del":
		err = session.Remove(ctx, q.Get("k"))
	case "/clear":
		err = session.Clear(ctx)
	case "/keys":
		io.WriteString(w, strings.Join(session.Keys(ctx), ","))
		return
	case "/login":
		if err = session.Renew(ctx); err == nil {
			err = session.SetUser(ctx, q.Get("u"))
		}
	case "/renew":
		err = session.Renew(ctx)
	case "/logout":
		err = session.Destroy(ctx)
	case "/user":
		io.WriteString(w, session.User(ctx))
		return
	case "/noop":
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	io.WriteString(w, "ok")
}

// Scenarios runs the Manager's behaviour tests over a store: the lost
// update of two overlapping requests, resurrection after logout, Renew,
// DestroyAll, fixation and tampered cookies. Each scenario fails on a
// store that saves the session as one blob.
func Scenarios(t *testing.T, newStore func(t *testing.T) session.Store) {
	newManager := func(t *testing.T) *session.Manager {
		m := session.New(session.Config{Store: newStore(t)})
		t.Cleanup(func() { m.Close() })
		return m
	}

	t.Run("OverlappingRequestsKeepBothChanges", func(t *testing.T) {
		// A and B both read the session; B writes "b" and finishes; then
		// A writes "a". A whole-blob store would save A's stale copy over
		// B's change.
		aLoaded, bDone := make(chan struct{}), make(chan struct{})
		m := newManager(t)
		_, c := NewServer(t, m, func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			switch r.URL.Path {
			case "/a":
				session.Get[string](ctx, "seed")
				close(aLoaded)
				<-bDone
				session.Put(ctx, "a", "A")
			case "/b":
				<-aLoaded
				session.Get[string](ctx, "seed")
				session.Put(ctx, "b", "B")
			default:
				App(w, r)
			}
		})
		c.Must("/put?k=seed&v=1")
		a := c.Clone()
		done := make(chan struct{})
		go func() { defer close(done); a.Get("/a") }()
		c.Must("/b")
		close(bDone)
		<-done
		if got := c.Must("/keys"); got != "a,b,seed" {
			t.Fatalf("keys after two overlapping requests = %q, want a,b,seed (an update was lost)", got)
		}
		if a.Token != c.Token {
			t.Fatal("an overlapping request changed the token")
		}
	})

	t.Run("ManyConcurrentRequests", func(t *testing.T) {
		m := newManager(t)
		_, c := NewServer(t, m, App)
		c.Must("/put?k=seed&v=1")
		const n = 12
		var wg sync.WaitGroup
		for i := range n {
			cc := c.Clone()
			wg.Go(func() { cc.Must(fmt.Sprintf("/put?k=k%02d&v=%d", i, i)) })
		}
		wg.Wait()
		if got := strings.Count(c.Must("/keys"), ","); got != n {
			t.Fatalf("after %d concurrent requests on one session: %d keys, want %d", n, got+1, n+1)
		}
	})

	t.Run("SameKeyLastWriterWins", func(t *testing.T) {
		first, second := make(chan struct{}), make(chan struct{})
		m := newManager(t)
		_, c := NewServer(t, m, func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			switch r.URL.Path {
			case "/slow":
				session.Put(ctx, "k", "slow")
				close(first)
				<-second // commits after /fast
			default:
				App(w, r)
			}
		})
		c.Must("/put?k=k&v=0")
		slow := c.Clone()
		done := make(chan struct{})
		go func() { defer close(done); slow.Get("/slow") }()
		<-first
		c.Must("/put?k=k&v=fast")
		close(second)
		<-done
		if got := c.Must("/get?k=k"); got != "slow" {
			t.Fatalf("k = %q, want the value of the request that committed last", got)
		}
	})

	t.Run("LogoutNotResurrected", func(t *testing.T) {
		for _, read := range []bool{true, false} {
			name := "blind write"
			if read {
				name = "read then write"
			}
			t.Run(name, func(t *testing.T) {
				// A reads (or not) the logged-in session and stalls; B logs
				// out; then A writes and finishes. A whole-blob store
				// would save A's copy back, logging the user in again.
				aReady, loggedOut := make(chan struct{}), make(chan struct{})
				m := newManager(t)
				_, c := NewServer(t, m, func(w http.ResponseWriter, r *http.Request) {
					ctx := r.Context()
					if r.URL.Path == "/a" {
						if read {
							if session.User(ctx) != "ivan" {
								t.Error("A did not see the logged-in user")
							}
						}
						close(aReady)
						<-loggedOut
						session.Put(ctx, "cart", "full")
						io.WriteString(w, "ok")
						return
					}
					App(w, r)
				})
				c.Must("/login?u=ivan")
				c.Must("/put?k=secret&v=s")
				old := c.Token
				a := c.Clone()
				done := make(chan struct{})
				go func() { defer close(done); a.Get("/a") }()
				<-aReady
				c.Must("/logout")
				if c.Token != "" {
					t.Fatal("logout did not delete the cookie")
				}
				close(loggedOut)
				<-done
				if a.Token == old && a.Cookie != nil && a.Cookie.MaxAge >= 0 {
					t.Fatal("A's response set the destroyed token again")
				}
				stale := c.Clone()
				stale.Token = old
				if u := stale.Must("/user"); u != "" {
					t.Fatalf("the destroyed token is logged in again as %q", u)
				}
				if v := stale.Must("/get?k=secret"); v != "<none>" {
					t.Fatalf("the destroyed session's data came back: %q", v)
				}
				if a.Token != "" && a.Token != old {
					// A blind write starts a fresh, anonymous session.
					if u := a.Must("/user"); u != "" {
						t.Fatalf("A's fresh session is logged in as %q", u)
					}
					if v := a.Must("/get?k=secret"); v != "<none>" {
						t.Fatalf("A's fresh session holds the old data %q", v)
					}
				}
			})
		}
	})

	t.Run("Renew", func(t *testing.T) {
		m := newManager(t)
		_, c := NewServer(t, m, App)
		c.Must("/put?k=a&v=1")
		old := c.Token
		c.Must("/login?u=judy")
		if c.Token == "" || c.Token == old {
			t.Fatalf("Renew kept the token %q", c.Token)
		}
		if c.Must("/get?k=a") != "1" || c.Must("/user") != "judy" {
			t.Fatal("Renew lost the session's data or user")
		}
		stale := c.Clone()
		stale.Token = old
		if v := stale.Must("/get?k=a"); v != "<none>" {
			t.Fatalf("the old token still reads the session: %q", v)
		}
		// The old token writing creates a fresh session, never touching
		// the renewed one.
		stale.Must("/put?k=a&v=evil")
		if c.Must("/get?k=a") != "1" {
			t.Fatal("a write with the old token reached the renewed session")
		}
		n, err := m.DestroyAll(context.Background(), "judy")
		if err != nil || n != 1 {
			t.Fatalf("DestroyAll after Renew = %d, %v; want 1 (the index follows the new id)", n, err)
		}
	})

	t.Run("DestroyAll", func(t *testing.T) {
		m := newManager(t)
		_, laptop := NewServer(t, m, App)
		phone, other := laptop.Clone(), laptop.Clone()
		laptop.Must("/login?u=mallory")
		phone.Must("/login?u=mallory")
		other.Must("/login?u=niaj")
		anon := laptop.Clone()
		anon.Token = ""
		anon.Must("/put?k=a&v=1")
		n, err := m.DestroyAll(context.Background(), "mallory")
		if err != nil || n != 2 {
			t.Fatalf("DestroyAll = %d, %v; want 2", n, err)
		}
		for _, c := range []*Client{laptop, phone} {
			if u := c.Must("/user"); u != "" {
				t.Fatalf("a session of mallory survived DestroyAll: %q", u)
			}
		}
		if other.Must("/user") != "niaj" || anon.Must("/get?k=a") != "1" {
			t.Fatal("DestroyAll ended someone else's session")
		}
		if _, err := m.DestroyAll(context.Background(), ""); err == nil {
			t.Fatal("DestroyAll of an empty user ID succeeded")
		}
	})

	t.Run("NoFixation", func(t *testing.T) {
		m := newManager(t)
		_, c := NewServer(t, m, App)
		victim := c.Clone()
		victim.Token = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // well-formed, never issued
		planted := victim.Token
		victim.Must("/login?u=olivia")
		if victim.Token == planted || victim.Token == "" {
			t.Fatalf("the server adopted a token it never issued: %q", victim.Token)
		}
		attacker := c.Clone()
		attacker.Token = planted
		if u := attacker.Must("/user"); u != "" {
			t.Fatalf("the planted token is logged in as %q", u)
		}
	})

	t.Run("TamperedCookie", func(t *testing.T) {
		m := newManager(t)
		_, c := NewServer(t, m, App)
		c.Must("/put?k=a&v=1")
		good := c.Token
		for _, bad := range []string{
			good[:len(good)-1] + string(flip(good[len(good)-1])), // another well-formed token
			good[:10],               // truncated
			good + "A",              // too long
			strings.Repeat("%", 43), // not base64
			good[:42] + "B",         // non-canonical trailing bits
			"",                      // empty
		} {
			tc := c.Clone()
			tc.Token = bad
			if v := tc.Must("/get?k=a"); v != "<none>" {
				t.Fatalf("cookie %q read the session: %q", bad, v)
			}
		}
		if c.Must("/get?k=a") != "1" {
			t.Fatal("the genuine token stopped working")
		}
	})
}

func flip(b byte) byte {
	if b == 'A' {
		return 'Q'
	}
	return 'A'
}
