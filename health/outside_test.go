package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/health"
)

type body struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status      string `json:"status"`
		Critical    bool   `json:"critical"`
		Error       string `json:"error"`
		Duration    string `json:"duration"`
		LastChecked string `json:"last_checked"`
	} `json:"checks"`
}

func probe(t *testing.T, c *http.Client, url string) (int, body, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return resp.StatusCode, b, resp.Header
}

func TestOutsideProbesOverRealServer(t *testing.T) {
	var dbDown, searchDown atomic.Bool
	h := health.New(health.Config{Checks: []health.Check{
		{Name: "db", TTL: time.Nanosecond, Func: func(ctx context.Context) error {
			if dbDown.Load() {
				return errors.New("db down")
			}
			return nil
		}},
		{Name: "search", Optional: true, TTL: time.Nanosecond, Func: func(ctx context.Context) error {
			if searchDown.Load() {
				return errors.New("search down")
			}
			return nil
		}},
		{Name: "loop", Liveness: true, Func: func(ctx context.Context) error { return nil }},
	}})
	defer h.Close()
	srv := httptest.NewServer(h.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })))
	defer srv.Close()
	c := srv.Client()

	code, b, hdr := probe(t, c, srv.URL+"/readyz")
	if code != 200 || b.Status != "ok" || len(b.Checks) != 3 || hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("ready: %d %+v %v", code, b, hdr)
	}
	if !b.Checks["db"].Critical || b.Checks["search"].Critical {
		t.Fatalf("critical flags: %+v", b.Checks)
	}
	if _, err := time.Parse(time.RFC3339Nano, b.Checks["db"].LastChecked); err != nil {
		t.Fatal(err)
	}
	if _, err := time.ParseDuration(b.Checks["db"].Duration); err != nil {
		t.Fatal(err)
	}
	code, b, _ = probe(t, c, srv.URL+"/livez")
	if code != 200 || len(b.Checks) != 1 || b.Checks["loop"].Status != "ok" {
		t.Fatalf("live: %d %+v", code, b)
	}
	searchDown.Store(true)
	code, b, _ = probe(t, c, srv.URL+"/readyz")
	if code != 200 || b.Checks["search"].Status != "fail" || b.Checks["search"].Error != "search down" {
		t.Fatalf("optional down: %d %+v", code, b)
	}
	dbDown.Store(true)
	code, b, _ = probe(t, c, srv.URL+"/readyz")
	if code != 503 || b.Status != "fail" || b.Checks["db"].Error != "db down" {
		t.Fatalf("critical down: %d %+v", code, b)
	}
	code, _, _ = probe(t, c, srv.URL+"/livez")
	if code != 200 {
		t.Fatalf("liveness affected by a dependency: %d", code)
	}
	resp, err := c.Get(srv.URL + "/other")
	if err != nil || resp.StatusCode != 299 {
		t.Fatalf("pass-through: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestOutsideHangingCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var runs atomic.Int64
		h := health.New(health.Config{Checks: []health.Check{
			{Name: "hang", Timeout: 2 * time.Second, TTL: time.Minute, Func: func(ctx context.Context) error {
				runs.Add(1)
				<-release // ignores ctx
				return nil
			}},
			{Name: "fine", Func: func(ctx context.Context) error { return nil }},
		}})
		defer h.Close()
		defer close(release)
		start := time.Now()
		rep := h.Report(context.Background(), health.Ready)
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("probe took %v", d)
		}
		if rep.Status != health.StatusFail || rep.Checks["hang"].Status != health.StatusTimeout || rep.Checks["fine"].Status != health.StatusOK {
			t.Fatalf("report %+v", rep)
		}
		if rep.Checks["hang"].Error != "timeout after 2s" {
			t.Fatalf("error %q", rep.Checks["hang"].Error)
		}
		// A second probe while the run is still going answers at once.
		start = time.Now()
		rep = h.Report(context.Background(), health.Ready)
		if time.Since(start) != 0 || rep.Checks["hang"].Status != health.StatusTimeout || runs.Load() != 1 {
			t.Fatalf("second probe: %v %+v runs=%d", time.Since(start), rep, runs.Load())
		}
	})
}

func TestOutsideHangingCheckHTTP(t *testing.T) {
	release := make(chan struct{})
	h := health.New(health.Config{Checks: []health.Check{
		{Name: "hang", Timeout: 50 * time.Millisecond, Func: func(ctx context.Context) error { <-release; return nil }},
	}})
	defer h.Close()
	defer close(release)
	srv := httptest.NewServer(h.Handler(http.NotFoundHandler()))
	defer srv.Close()
	code, b, _ := probe(t, srv.Client(), srv.URL+"/readyz")
	if code != 503 || b.Checks["hang"].Status != "timeout" {
		t.Fatalf("%d %+v", code, b)
	}
}

func TestOutsideCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := health.New(health.Config{Checks: []health.Check{
			{Name: "c", TTL: 5 * time.Second, Func: func(ctx context.Context) error { runs.Add(1); return nil }},
		}})
		defer h.Close()
		for range 10 {
			h.Report(context.Background(), health.Ready)
		}
		if runs.Load() != 1 {
			t.Fatalf("runs = %d, want 1 within TTL", runs.Load())
		}
		time.Sleep(5*time.Second + time.Millisecond)
		h.Report(context.Background(), health.Ready)
		if runs.Load() != 2 {
			t.Fatalf("runs = %d after TTL", runs.Load())
		}
	})
}

func TestOutsideBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := health.New(health.Config{Checks: []health.Check{
			{Name: "bg", Background: true, TTL: time.Second, Func: func(ctx context.Context) error { runs.Add(1); return nil }},
		}})
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		n := runs.Load()
		if n < 3 || n > 4 {
			t.Fatalf("background runs = %d in 3.5s with TTL 1s", n)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		if h.Close() != nil {
			t.Fatal("second Close")
		}
		time.Sleep(5 * time.Second)
		if runs.Load() != n {
			t.Fatal("background check ran after Close")
		}
		if err := h.Add(health.Check{Name: "x", Func: func(context.Context) error { return nil }}); !errors.Is(err, health.ErrClosed) {
			t.Fatalf("Add after Close: %v", err)
		}
	})
}

func TestOutsidePanickingCheck(t *testing.T) {
	h := health.New(health.Config{Checks: []health.Check{
		{Name: "p", Func: func(ctx context.Context) error { panic("boom") }},
	}})
	defer h.Close()
	rep := h.Report(context.Background(), health.Ready)
	if rep.Checks["p"].Status != health.StatusFail || rep.Checks["p"].Error == "" {
		t.Fatalf("%+v", rep)
	}
}

func TestOutsideBreakerCheck(t *testing.T) {
	set := breaker.NewSet(breaker.SetConfig{})
	defer set.Close()
	chk := health.BreakerCheck(set, health.BreakerRule{Critical: []string{"pay"}})
	if err := chk(context.Background()); err != nil {
		t.Fatal(err)
	}
	set.Get("pay").ForceOpen()
	if err := chk(context.Background()); err == nil {
		t.Fatal("critical open passed")
	}
	set.Get("pay").Reset()
	// Nil Keys: every member.
	all := health.BreakerCheck(set, health.BreakerRule{})
	set.Get("a")
	set.Get("b")
	set.Get("c")
	set.Get("a").ForceOpen()
	if err := all(context.Background()); err != nil {
		t.Fatalf("1 of 4 open failed: %v", err)
	}
	set.Get("b").ForceOpen()
	if err := all(context.Background()); err == nil {
		t.Fatal("2 of 4 open passed")
	}
}

func TestOutsideEndpointCheck(t *testing.T) {
	var healthy atomic.Int64
	chk := health.EndpointCheck(health.EndpointsFunc(func() (int, int) { return int(healthy.Load()), 3 }), 2)
	healthy.Store(1)
	if chk(context.Background()) == nil {
		t.Fatal("1 of 3 passed with min 2")
	}
	healthy.Store(2)
	if err := chk(context.Background()); err != nil {
		t.Fatal(err)
	}
	chk0 := health.EndpointCheck(health.EndpointsFunc(func() (int, int) { return 0, 0 }), 0)
	if chk0(context.Background()) == nil {
		t.Fatal("0 healthy passed with min 0 (means 1)")
	}
}

func TestOutsideValidate(t *testing.T) {
	ok := func(context.Context) error { return nil }
	bad := []health.Config{
		{Checks: []health.Check{{Name: "", Func: ok}}},
		{Checks: []health.Check{{Name: "a"}}},
		{Checks: []health.Check{{Name: "a", Func: ok}, {Name: "a", Func: ok}}},
		{Checks: []health.Check{{Name: "a", Func: ok, Timeout: -1}}},
		{Checks: []health.Check{{Name: "a", Func: ok, Timeout: 2 * time.Minute}}},
		{Checks: []health.Check{{Name: "a", Func: ok, TTL: -1}}},
		{Checks: []health.Check{{Name: "a", Func: ok, TTL: 2 * time.Hour}}},
		{Checks: []health.Check{{Name: "a", Func: ok, Groups: []string{health.Ready}}}},
		{Checks: []health.Check{{Name: "a", Func: ok, Groups: []string{""}}}},
		{Checks: make([]health.Check, health.MaxChecks+1)},
	}
	for i, c := range bad {
		if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%d: %v", i, err)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("BreakerCheck NaN fraction did not panic")
			}
		}()
		health.BreakerCheck(breaker.NewSet(breaker.SetConfig{}), health.BreakerRule{OpenFraction: math.NaN()})
	}()
}

// A probe path without a leading slash never matches a request's path, and
// two probes on one path hide one of them: both were silently accepted.
func TestConfigRejectsUnservableProbePaths(t *testing.T) {
	for _, c := range []health.Config{
		{LivePath: "livez"},
		{ReadyPath: "readyz"},
		{LivePath: "/same", ReadyPath: "/same"},
		{LivePath: "/readyz"},
		{ReadyPath: "/livez"},
	} {
		if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: Validate = %v", c, err)
		}
	}
	if err := (health.Config{LivePath: "/healthz/live", ReadyPath: "/healthz/ready"}).Validate(); err != nil {
		t.Fatal(err)
	}
}
