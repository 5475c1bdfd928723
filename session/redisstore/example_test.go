package redisstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/redisstore"
)

func Example() {
	mr := miniredis.NewMiniRedis() // a real deployment points the client at its Redis
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()

	m := session.New(session.Config{Store: redisstore.New(rdb, redisstore.Config{})})
	defer m.Close()
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := session.Get[int](r.Context(), "visits")
		session.Put(r.Context(), "visits", n+1)
		fmt.Fprint(w, n+1)
	})))
	defer srv.Close()

	var cookie *http.Cookie
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if cookie != nil {
			req.AddCookie(cookie) // the cookie is Secure: a cookie jar would not send it over http
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if cs := resp.Cookies(); len(cs) > 0 {
			cookie = cs[0]
		}
		fmt.Println("visit", string(b))
	}
	keys, _ := rdb.Keys(context.Background(), "bulwark:session:*").Result()
	fmt.Println(len(keys), "key in Redis, named by the token's hash:", keys[0] != "bulwark:session:{"+cookie.Value+"}")
	// Output:
	// visit 1
	// visit 2
	// visit 3
	// 1 key in Redis, named by the token's hash: true
}
