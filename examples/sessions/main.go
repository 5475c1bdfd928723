// Command sessions shows bulwark's server-side sessions shared by two
// application instances through Redis: a user logs in on one instance and
// is known on the other, two overlapping requests on different instances
// both keep their changes, a request that started before logout cannot
// log the user back in, "log out everywhere" ends every device's session,
// and a Redis outage is answered with 503, never with an empty session.
//
//	go run ./examples/sessions
//
// It uses an embedded miniredis, or the Redis at REDIS_ADDR if set (the
// outage step then is skipped: a shared Redis is not ours to stop). It
// serves on 127.0.0.1, prints what happened and exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/redisstore"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sessions:", err)
		os.Exit(1)
	}
}

// snippet:start

// newInstance is one stateless application instance: its sessions live in
// Redis, so any instance can serve any user.
func newInstance(rdb redis.UniversalClient, app http.Handler) (http.Handler, *session.Manager) {
	m := session.New(session.Config{
		Store:       redisstore.New(rdb, redisstore.Config{}),
		IdleTimeout: 30 * time.Minute,
		Lifetime:    12 * time.Hour,
		Cookie:      session.Cookie{Insecure: true}, // plain HTTP on loopback only; Secure by default
	})
	return m.Handler(app), m
}

// login renews the token (no fixation) and binds the session to the user.
func login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := session.Renew(ctx); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	session.SetUser(ctx, r.URL.Query().Get("user"))
	io.WriteString(w, "logged in")
}

// snippet:end

type instance struct {
	name string
	url  string
	m    *session.Manager
}

func run(out io.Writer) error {
	var rdb *redis.Client
	var mr *miniredis.Miniredis
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		fmt.Fprintln(out, "Redis:", addr)
	} else {
		mr = miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return err
		}
		defer mr.Close()
		// A pool larger than the dials the outage below fails, so the
		// client does not wait for its once-a-second probe after Redis is
		// back; and go-redis's log of those failed dials is kept quiet.
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true, PoolSize: 100})
		redis.SetLogger(quiet{})
		fmt.Fprintln(out, "Redis: embedded miniredis")
	}
	defer rdb.Close()

	loaded := make(chan struct{}, 1) // /stale has read its session
	gate := make(chan struct{})      // holds /stale until the logout is done
	mux := http.NewServeMux()
	mux.HandleFunc("/login", login)
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%q", session.User(r.Context()))
	})
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := session.Put(r.Context(), q.Get("k"), q.Get("v")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(session.Keys(r.Context()), ","))
	})
	mux.HandleFunc("/stale", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		user := session.User(ctx) // read before the logout...
		loaded <- struct{}{}
		<-gate // ...which happens now, on the other instance
		session.Put(ctx, "last-page", "/account")
		fmt.Fprintf(w, "saw user=%q", user)
	})
	mux.HandleFunc("/noop", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") })
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := session.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})

	var insts []*instance
	for _, name := range []string{"A", "B"} {
		h, m := newInstance(rdb, mux)
		defer m.Close()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
		go srv.Serve(ln)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		}()
		insts = append(insts, &instance{name: name, url: "http://" + ln.Addr().String(), m: m})
	}
	a, b := insts[0], insts[1]
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()

	// A browser with one cookie, talking to whichever instance it is sent to.
	type browser struct{ cookie *http.Cookie }
	do := func(br *browser, in *instance, path string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, in.url+path, nil)
		if br.cookie != nil {
			req.AddCookie(br.cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			if c.MaxAge < 0 {
				br.cookie = nil
			} else {
				br.cookie = c
			}
		}
		return resp.StatusCode, strings.TrimSpace(string(body)), nil
	}
	step := func(br *browser, in *instance, path string) (string, error) {
		code, body, err := do(br, in, path)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(out, "  %s %-26s -> %d %s\n", in.name, path, code, body)
		return body, nil
	}
	check := func(ok bool, what string) error {
		if !ok {
			return errors.New("unexpected: " + what)
		}
		return nil
	}

	alice := &browser{}
	fmt.Fprintln(out, "1. log in on A, known on B")
	step(alice, a, "/login?user=alice")
	body, err := step(alice, b, "/whoami")
	if err != nil {
		return err
	}
	if err := check(body == `user="alice"`, "B does not know alice"); err != nil {
		return err
	}

	fmt.Fprintln(out, "2. overlapping requests on A and B change different keys: both kept")
	var wg sync.WaitGroup
	twin := &browser{cookie: alice.cookie}
	wg.Go(func() { do(twin, a, "/put?k=theme&v=dark") })
	wg.Go(func() { do(alice, b, "/put?k=lang&v=fr") })
	wg.Wait()
	body, _ = step(alice, a, "/keys")
	if err := check(body == "lang,theme", "an update was lost: "+body); err != nil {
		return err
	}

	fmt.Fprintln(out, "3. a request that read the session before logout cannot log alice back in")
	stale := &browser{cookie: alice.cookie}
	staleDone := make(chan string, 1)
	go func() {
		_, body, _ := do(stale, b, "/stale")
		staleDone <- body
	}()
	<-loaded
	step(alice, a, "/logout")
	close(gate)
	fmt.Fprintf(out, "  B /stale (started before logout)   -> %s\n", <-staleDone)
	old := &browser{cookie: twin.cookie}
	body, _ = step(old, a, "/whoami")
	if err := check(body == `user=""`, "the old cookie is logged in again"); err != nil {
		return err
	}

	fmt.Fprintln(out, "4. log out everywhere")
	laptop, phone := &browser{}, &browser{}
	step(laptop, a, "/login?user=bob")
	step(phone, b, "/login?user=bob")
	n, err := a.m.DestroyAll(context.Background(), "bob")
	fmt.Fprintf(out, "  DestroyAll(bob) = %d, %v\n", n, err)
	body, _ = step(phone, b, "/whoami")
	if err := check(n == 2 && body == `user=""`, "bob is still logged in"); err != nil {
		return err
	}

	if mr != nil {
		fmt.Fprintln(out, "5. Redis down: 503, never an empty session; back up: nothing lost")
		carol := &browser{}
		step(carol, a, "/login?user=carol")
		mr.Close()
		body, _ = step(carol, b, "/whoami")
		step(carol, a, "/noop") // does not touch the session: served
		if err := mr.Restart(); err != nil {
			return err
		}
		body2, _ := step(carol, b, "/whoami")
		if err := check(strings.Contains(body, "store unavailable") && body2 == `user="carol"`, "outage handling"); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "ok")
	return nil
}

// quiet discards go-redis's log lines (its failed dials during step 5).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
