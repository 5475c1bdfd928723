package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"

	"github.com/bulwark-go/bulwark/session"
)

func Example() {
	// The zero Config keeps sessions in memory; share a
	// session/redisstore Store between instances instead. Insecure only
	// because this example talks plain HTTP on loopback.
	m := session.New(session.Config{Cookie: session.Cookie{Insecure: true}})
	defer m.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if err := session.Renew(ctx); err != nil { // new token at every privilege change
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		session.SetUser(ctx, "alice") // for DestroyAll
		session.Put(ctx, "name", "Alice")
		io.WriteString(w, "welcome")
	})
	mux.HandleFunc("/cart/add", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		items, _ := session.Get[[]string](ctx, "cart")
		session.Put(ctx, "cart", append(items, r.URL.Query().Get("item")))
	})
	mux.HandleFunc("/cart", func(w http.ResponseWriter, r *http.Request) {
		name, _ := session.Get[string](r.Context(), "name")
		items, _ := session.Get[[]string](r.Context(), "cart")
		fmt.Fprintf(w, "%s's cart: %v", name, items)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		session.Destroy(r.Context())
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(path string) string {
		resp, err := browser.Get(srv.URL + path)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	fmt.Println(get("/login"))
	get("/cart/add?item=tea")
	get("/cart/add?item=cake")
	fmt.Println(get("/cart"))
	get("/logout")
	fmt.Println(get("/cart"))
	// Output:
	// welcome
	// Alice's cart: [tea cake]
	// 's cart: []
}

func ExampleManager_DestroyAll() {
	m := session.New(session.Config{Cookie: session.Cookie{Insecure: true}})
	defer m.Close()
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			session.Renew(r.Context())
			session.SetUser(r.Context(), "bob")
		}
		fmt.Fprint(w, session.User(r.Context()))
	})))
	defer srv.Close()

	var devices []*http.Client
	for range 3 { // bob logs in on three devices
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, _ := c.Get(srv.URL + "/login")
		resp.Body.Close()
		devices = append(devices, c)
	}
	n, err := m.DestroyAll(context.Background(), "bob") // "log out everywhere"
	fmt.Println(n, err)
	resp, _ := devices[0].Get(srv.URL + "/whoami")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("logged in as %q\n", b)
	// Output:
	// 3 <nil>
	// logged in as ""
}

func ExampleGet() {
	type Prefs struct{ Theme string }
	m := session.New(session.Config{})
	defer m.Close()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		session.Put(ctx, "prefs", Prefs{Theme: "dark"})
		p, ok := session.Get[Prefs](ctx, "prefs")
		fmt.Println(p.Theme, ok)
		_, ok = session.Get[int](ctx, "prefs") // not an int
		fmt.Println(ok)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	// Output:
	// dark true
	// false
}
