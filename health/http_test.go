package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestHandlerConformance(t *testing.T) {
	conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
		return New(Config{Checks: []Check{{Name: "a", Func: okCheck}}}).Handler(next)
	}})
}

func getJSON(t *testing.T, url string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: body is not JSON: %v", url, err)
	}
	return resp.StatusCode, resp.Header, body
}

// TestEndpointsOverRealServer: /livez and /readyz over a real server, the
// JSON structure, a failing critical check, and a hanging check that
// comes back as a timeout within its Timeout.
func TestEndpointsOverRealServer(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := New(Config{Checks: []Check{
		{Name: "loop", Liveness: true, Func: okCheck},
		{Name: "cache", Optional: true, Func: func(context.Context) error { return errors.New("cache: miss storm") }},
		{Name: "redis", Timeout: 50 * time.Millisecond, Func: func(context.Context) error { <-release; return nil }},
	}})
	defer h.Close()
	srv := httptest.NewServer(h.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app")
	})))
	defer srv.Close()

	code, hdr, body := getJSON(t, srv.URL+"/livez")
	if code != 200 || body["status"] != "ok" || hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("/livez: %d %v %v", code, hdr, body)
	}
	if checks := body["checks"].(map[string]any); len(checks) != 1 || checks["loop"] == nil {
		t.Fatalf("/livez ran %v, want loop only", checks)
	}

	start := time.Now()
	code, _, body = getJSON(t, srv.URL+"/readyz")
	if time.Since(start) > 10*time.Second { // a generous bound: the point is that it returns at all
		t.Fatalf("/readyz took %v", time.Since(start))
	}
	if code != 503 || body["status"] != "fail" {
		t.Fatalf("/readyz with a hanging critical check: %d %v", code, body)
	}
	checks := body["checks"].(map[string]any)
	redis := checks["redis"].(map[string]any)
	if redis["status"] != "timeout" || redis["error"] != "timeout after 50ms" || redis["critical"] != true || redis["duration"] != "50ms" {
		t.Fatalf("redis: %v", redis)
	}
	if _, err := time.Parse(time.RFC3339Nano, redis["last_checked"].(string)); err != nil {
		t.Fatalf("last_checked: %v", err)
	}
	cache := checks["cache"].(map[string]any)
	if cache["status"] != "fail" || cache["error"] != "cache: miss storm" || cache["critical"] != false {
		t.Fatalf("cache: %v", cache)
	}
	loop := checks["loop"].(map[string]any)
	if _, hasErr := loop["error"]; hasErr || loop["status"] != "ok" {
		t.Fatalf("loop: %v", loop)
	}
	for _, k := range []string{"status", "critical", "duration", "last_checked"} {
		if _, ok := loop[k]; !ok {
			t.Errorf("a check's JSON lacks %q: %v", k, loop)
		}
	}

	resp, err := http.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "app" {
		t.Fatalf("/other = %q, want the app", b)
	}
}

func TestReadinessOKWithOptionalFailure(t *testing.T) {
	h := New(Config{ReadyPath: "/ready", Checks: []Check{
		{Name: "cache", Optional: true, Func: func(context.Context) error { return errors.New("down") }},
	}})
	defer h.Close()
	srv := httptest.NewServer(h.Handler(http.NotFoundHandler()))
	defer srv.Close()
	code, _, body := getJSON(t, srv.URL+"/ready")
	if code != 200 || body["status"] != "ok" {
		t.Fatalf("%d %v", code, body)
	}
	g := httptest.NewServer(h.Group("nope"))
	defer g.Close()
	if code, _, body := getJSON(t, g.URL); code != 200 || len(body["checks"].(map[string]any)) != 0 {
		t.Fatalf("empty group: %d %v", code, body)
	}
}
