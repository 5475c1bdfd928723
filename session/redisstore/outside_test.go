package redisstore_test

// Black-box tests of the Redis store through session.Manager, written
// against the docs, over real TLS servers on 127.0.0.1 with a cookie jar.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/redisstore"
)

func outsideApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := session.Put(r.Context(), q.Get("k"), q.Get("v")); err != nil {
			http.Error(w, err.Error(), 599)
		}
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, ok := session.Get[string](r.Context(), r.URL.Query().Get("k"))
		if !ok {
			v = "<none>"
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(session.Keys(r.Context()), ","))
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		if err := session.Renew(r.Context()); err != nil {
			http.Error(w, err.Error(), 599)
			return
		}
		if err := session.SetUser(r.Context(), r.URL.Query().Get("u")); err != nil {
			http.Error(w, err.Error(), 599)
		}
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := session.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), 599)
		}
	})
	mux.HandleFunc("/none", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "none") })
	return mux
}

type jarClient struct {
	t   *testing.T
	srv *httptest.Server
	c   *http.Client
}

func newJarClient(t *testing.T, srv *httptest.Server) *jarClient {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: srv.Client().Transport, Jar: jar}
	t.Cleanup(c.CloseIdleConnections)
	return &jarClient{t: t, srv: srv, c: c}
}

// moveTo returns a client of srv holding c's cookies: the same browser
// reaching another instance.
func (c *jarClient) moveTo(srv *httptest.Server) *jarClient {
	d := newJarClient(c.t, srv)
	u, _ := url.Parse(c.srv.URL)
	v, _ := url.Parse(srv.URL)
	d.c.Jar.SetCookies(v, c.c.Jar.Cookies(u))
	return d
}

func (c *jarClient) token() string {
	u, _ := url.Parse(c.srv.URL)
	for _, ck := range c.c.Jar.Cookies(u) {
		if ck.Name == session.DefaultCookieName {
			return ck.Value
		}
	}
	return ""
}

func (c *jarClient) get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.srv.URL + path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *jarClient) must(path string) string {
	c.t.Helper()
	code, b := c.get(path)
	if code != 200 {
		c.t.Fatalf("GET %s: %d %q", path, code, b)
	}
	return b
}

// storeID is the documented store id of a token: the SHA-256 of its 32
// bytes, in unpadded base64url.
func storeID(t *testing.T, tok string) string {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 32 bytes of base64url", tok)
	}
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func instance(t *testing.T, client redis.UniversalClient, prefix string) (*httptest.Server, *session.Manager) {
	m := session.New(session.Config{Store: redisstore.New(client, redisstore.Config{Prefix: prefix})})
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewTLSServer(m.Handler(outsideApp()))
	t.Cleanup(srv.Close)
	return srv, m
}

// TestOutsideTwoInstances: a user logs in on one instance and is known on
// the other; "log out everywhere" from either ends every device's session;
// no key holds a token.
func TestOutsideTwoInstances(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		s1, m1 := instance(t, h.Client, h.Prefix)
		s2, _ := instance(t, h.NewClient(nil), h.Prefix)
		var devices []*jarClient
		for i := range 3 {
			c := newJarClient(t, s1)
			c.must("/put?k=cart&v=tea")
			c.must("/login?u=alice")
			if i == 1 {
				c = c.moveTo(s2)
			}
			if got := c.must("/get?k=cart"); got != "tea" {
				t.Fatalf("device %d: %q", i, got)
			}
			devices = append(devices, c)
		}
		bob := newJarClient(t, s2)
		bob.must("/login?u=bob")
		bob.must("/put?k=a&v=b")

		// No key or value holds a token; the session key holds its hash.
		tok := devices[0].token()
		id := storeID(t, tok)
		keys := allKeys(t, h)
		found := false
		for _, k := range keys {
			if !strings.HasPrefix(k, h.Prefix+redisstore.DefaultPrefix) && !strings.HasPrefix(k, h.Prefix) {
				t.Errorf("key %q outside the prefix", k)
			}
			if strings.Contains(k, tok) {
				t.Errorf("key %q holds a token", k)
			}
			found = found || strings.Contains(k, "{"+id+"}")
			if typ, _ := h.Client.Type(context.Background(), k).Result(); typ == "hash" {
				vals, _ := h.Client.HGetAll(context.Background(), k).Result()
				for f, v := range vals {
					if strings.Contains(f, tok) || strings.Contains(v, tok) {
						t.Errorf("hash %q holds a token", k)
					}
				}
				if ttl, _ := h.Client.PTTL(context.Background(), k).Result(); ttl <= 0 || ttl > session.DefaultIdleTimeout {
					t.Errorf("session key %q has TTL %v, want at most the idle timeout", k, ttl)
				}
			}
		}
		if !found {
			t.Errorf("no key named after the token's SHA-256 %q in %q", id, keys)
		}

		n, err := m1.DestroyAll(context.Background(), "alice")
		if err != nil || n != 3 {
			t.Fatalf("DestroyAll = %d, %v; want 3", n, err)
		}
		for i, c := range devices {
			if got := c.must("/get?k=cart"); got != "<none>" {
				t.Errorf("device %d survived DestroyAll: %q", i, got)
			}
			if got := c.moveTo(s1).must("/get?k=cart"); got != "<none>" {
				t.Errorf("device %d survived DestroyAll on instance 1: %q", i, got)
			}
		}
		if got := bob.must("/get?k=a"); got != "b" {
			t.Errorf("bob: %q", got)
		}
		// Logging out on one instance is seen on the other.
		bob.must("/logout")
		old := newJarClient(t, s1)
		u, _ := url.Parse(s1.URL)
		_ = u
		if got := old.must("/get?k=a"); got != "<none>" {
			t.Errorf("fresh client reads %q", got)
		}
	})
}

// TestOutsideIdleTTL: Redis itself ends a session left idle (its key's
// TTL), whatever the Manager thinks the time is.
func TestOutsideIdleTTL(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		mr := h.Miniredis()
		if mr == nil {
			t.Skip("FastForward needs miniredis")
		}
		m := session.New(session.Config{Store: redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix}), IdleTimeout: 10 * time.Minute})
		defer m.Close()
		srv := httptest.NewTLSServer(m.Handler(outsideApp()))
		defer srv.Close()
		c := newJarClient(t, srv)
		c.must("/put?k=a&v=1")
		mr.FastForward(9 * time.Minute)
		if got := c.must("/get?k=a"); got != "1" {
			t.Fatalf("before the idle timeout: %q", got)
		}
		mr.FastForward(time.Minute + time.Second)
		if got := c.must("/get?k=a"); got != "<none>" {
			t.Fatalf("past the idle timeout in Redis: %q", got)
		}
		// A write with the dead token starts a fresh session.
		old := c.token()
		c.must("/put?k=b&v=2")
		if c.token() == old || c.must("/keys") != "b" {
			t.Fatalf("write after expiry: token reused or keys %q", c.must("/keys"))
		}
	})
}

// TestOutsideRedisOutage: Redis down gives the documented 503, never a
// panic, never another user's session; back up empty, nobody is logged in
// as anybody else.
func TestOutsideRedisOutage(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		client := h.NewClient(&redis.UniversalOptions{ContextTimeoutEnabled: true, PoolSize: 1000, MaxRetries: -1})
		srv, m := instance(t, client, h.Prefix)
		alice := newJarClient(t, srv)
		alice.must("/login?u=alice")
		alice.must("/put?k=who&v=alice")
		bob := newJarClient(t, srv)
		bob.must("/login?u=bob")
		bob.must("/put?k=who&v=bob")

		h.Down()
		for _, p := range []string{"/get?k=who", "/put?k=x&v=1", "/login?u=alice", "/keys"} {
			code, b := alice.get(p)
			if code != http.StatusServiceUnavailable && !(code == 599 && strings.Contains(b, "session: store")) {
				t.Errorf("%s with Redis down: %d %q", p, code, b)
			}
		}
		if code, b := bob.get("/logout"); code != 599 || !strings.Contains(b, "session: store destroy") {
			t.Errorf("logout with Redis down: %d %q, want the handler's error", code, b)
		}
		if code, _ := alice.get("/none"); code != 200 {
			t.Errorf("untouched request with Redis down: %d", code)
		}
		if _, err := m.DestroyAll(context.Background(), "alice"); !errors.Is(err, session.ErrStore) {
			t.Errorf("DestroyAll with Redis down: %v", err)
		}
		h.Up()
		if got := alice.must("/get?k=who"); got != "alice" {
			t.Errorf("alice after the outage reads %q", got)
		}
		if got := bob.must("/get?k=who"); got != "bob" {
			t.Errorf("bob after the outage reads %q", got)
		}
		h.Down()
		h.UpEmpty()
		if got := alice.must("/get?k=who"); got != "<none>" {
			t.Errorf("alice after Redis lost its data reads %q", got)
		}
		old := alice.token()
		alice.must("/put?k=who&v=again")
		if alice.token() == old {
			t.Errorf("a token Redis forgot was adopted again")
		}
	})
}

// TestOutsideCorruptRecord: a session hash written by something else is
// never served as a session, and never panics.
func TestOutsideCorruptRecord(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		srv, _ := instance(t, h.Client, h.Prefix)
		c := newJarClient(t, srv)
		c.must("/put?k=a&v=1")
		key := h.Prefix + "{" + storeID(t, c.token()) + "}"
		ctx := context.Background()
		if err := h.Client.HSet(ctx, key, "_e", "garbage").Err(); err != nil {
			t.Fatal(err)
		}
		if got := c.must("/get?k=a"); got != "<none>" {
			t.Fatalf("a corrupt record was served: %q", got)
		}
		h.Client.Del(ctx, key)
		h.Client.HSet(ctx, key, "v:a", "\xff\xfe not gob", "_a", "9999999999999", "_e", "9999999999998")
		if got := c.must("/get?k=a"); got != "<none>" {
			t.Fatalf("an undecodable value was served: %q", got)
		}
	})
}

func TestOutsideRedisValidate(t *testing.T) {
	for name, cfg := range map[string]redisstore.Config{
		"brace":            {Prefix: "a{b"},
		"close brace":      {Prefix: "a}b"},
		"long prefix":      {Prefix: strings.Repeat("p", redisstore.MaxPrefixLen+1)},
		"negative timeout": {Timeout: -1},
		"timeout past max": {Timeout: redisstore.MaxTimeout + 1},
	} {
		if err := cfg.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := (redisstore.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("New(nil client) did not panic")
		}
	}()
	redisstore.New(nil, redisstore.Config{})
}

// TestOutsideDestroyAllFinishesAnAbortedOne: ids a DestroyUser had taken
// from the index (the documented ":d" set) but not ended, because it failed
// midway, are ended by the next DestroyAll of that user.
func TestOutsideDestroyAllFinishesAnAbortedOne(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		srv, m := instance(t, h.Client, h.Prefix)
		c := newJarClient(t, srv)
		c.must("/login?u=peggy")
		c.must("/put?k=a&v=1")
		ctx := context.Background()
		idx := h.Prefix + "user:{" + base64.RawURLEncoding.EncodeToString([]byte("peggy")) + "}"
		// What a DestroyUser that failed after taking the index leaves.
		ids, err := h.Client.ZRangeWithScores(ctx, idx, 0, -1).Result()
		if err != nil || len(ids) != 1 {
			t.Fatalf("index %q = %v, %v", idx, ids, err)
		}
		h.Client.ZAdd(ctx, idx+":d", ids[0])
		h.Client.Del(ctx, idx)
		if n, err := m.DestroyAll(ctx, "peggy"); n != 1 || err != nil {
			t.Fatalf("DestroyAll = %d, %v; want 1", n, err)
		}
		if got := c.must("/get?k=a"); got != "<none>" {
			t.Fatalf("the session survived: %q", got)
		}
		if n, _ := h.Client.Exists(ctx, idx, idx+":d").Result(); n != 0 {
			t.Errorf("DestroyAll left %d index keys behind", n)
		}
	})
}

// allKeys lists the keys under h's prefix on every master: on a Cluster,
// KEYS on one client reaches one node only.
func allKeys(t *testing.T, h *redistest.Harness) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var keys []string
	collect := func(ctx context.Context, c *redis.Client) error {
		ks, err := c.Keys(ctx, h.Prefix+"*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := h.Client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, collect)
	} else {
		ks, kerr := h.Client.Keys(ctx, h.Prefix+"*").Result()
		keys, err = ks, kerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
