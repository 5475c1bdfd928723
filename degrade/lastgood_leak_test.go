package degrade_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/degrade"
)

// The last good response was keyed by URL alone, so one user's response to
// GET /me (and any Set-Cookie it carried) was served to another user whose
// request failed. Last good responses are now kept per URL and credentials
// (Authorization, Cookie), and responses that set a cookie or say no-store
// are never kept.
func TestLastGoodResponseNeverCrossesUsers(t *testing.T) {
	var failing atomic.Bool
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(500)
			return
		}
		switch r.URL.Path {
		case "/session":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "secret-" + r.Header.Get("X-User")})
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		}
		io.WriteString(w, "for "+r.Header.Get("Authorization")+r.Header.Get("Cookie"))
	})
	check := func(t *testing.T, c *http.Client, base string) {
		get := func(path string, hdr ...string) (int, string, http.Header) {
			req, _ := http.NewRequest("GET", base+path, nil)
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b), resp.Header
		}
		failing.Store(false)
		get("/me", "Authorization", "Bearer alice")
		get("/me", "Cookie", "sid=alice")
		get("/session", "X-User", "alice")
		get("/nostore")
		failing.Store(true)
		if code, body, _ := get("/me", "Authorization", "Bearer bob"); code != 500 {
			t.Errorf("bob's bearer got alice's /me: %d %q", code, body)
		}
		if code, body, _ := get("/me", "Cookie", "sid=bob"); code != 500 {
			t.Errorf("bob's cookie got alice's /me: %d %q", code, body)
		}
		if code, body, _ := get("/me"); code != 500 {
			t.Errorf("anonymous got a user's /me: %d %q", code, body)
		}
		if code, _, h := get("/session", "X-User", "bob"); code != 500 || h.Get("Set-Cookie") != "" {
			t.Errorf("a Set-Cookie was replayed: %d %v", code, h)
		}
		if code, _, _ := get("/nostore"); code != 500 {
			t.Errorf("a no-store response was kept: %d", code)
		}
		// The same credentials still get their own last good response.
		if code, body, h := get("/me", "Authorization", "Bearer alice"); code != 200 || body != "for Bearer alice" || h.Get(degrade.FallbackHeader) != "status" {
			t.Errorf("alice lost her last good /me: %d %q", code, body)
		}
		if code, body, _ := get("/me", "Cookie", "sid=alice"); code != 200 || body != "for sid=alice" {
			t.Errorf("alice's cookie lost her last good /me: %d %q", code, body)
		}
	}
	t.Run("Handler", func(t *testing.T) {
		f := degrade.New(degrade.Config{MaxAge: time.Hour})
		srv := httptest.NewServer(f.Handler(app))
		defer srv.Close()
		check(t, srv.Client(), srv.URL)
	})
	t.Run("RoundTripper", func(t *testing.T) {
		f := degrade.New(degrade.Config{MaxAge: time.Hour})
		srv := httptest.NewServer(app)
		defer srv.Close()
		check(t, &http.Client{Transport: f.RoundTripper(srv.Client().Transport)}, srv.URL)
	})
}
