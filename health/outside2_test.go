package health_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/lb"
)

func TestOutsidePanicMessage(t *testing.T) {
	h := health.New(health.Config{Checks: []health.Check{{Name: "p", Func: func(ctx context.Context) error { panic("boom") }}}})
	defer h.Close()
	r := h.Report(context.Background(), health.Ready).Checks["p"]
	if !strings.Contains(r.Error, "boom") {
		t.Fatalf("error %q lacks the panic's message", r.Error)
	}
}

func TestOutsideReportCtxShorter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		h := health.New(health.Config{Checks: []health.Check{{Name: "hang", Timeout: 10 * time.Second, Func: func(ctx context.Context) error { <-release; return nil }}}})
		defer h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		rep := h.Report(ctx, health.Ready)
		if time.Since(start) != time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
		r := rep.Checks["hang"]
		if rep.Status != health.StatusFail || r.Status != health.StatusTimeout || r.Duration != time.Second ||
			!strings.HasPrefix(r.Error, "probe ended before the check: ") {
			t.Fatalf("probe ended by its ctx: %+v", rep)
		}
	})
}

func TestOutsideBackgroundFirstResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := health.New(health.Config{Checks: []health.Check{{Name: "bg", Background: true, TTL: time.Minute, Func: func(ctx context.Context) error {
			runs.Add(1)
			time.Sleep(100 * time.Millisecond)
			return errors.New("bad")
		}}}})
		defer h.Close()
		rep := h.Report(context.Background(), health.Ready)
		if rep.Checks["bg"].Status != health.StatusFail || runs.Load() != 1 {
			t.Fatalf("first result: %+v runs %d", rep, runs.Load())
		}
	})
}

func TestOutsideCloseCancelsRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := health.New(health.Config{Checks: []health.Check{{Name: "c", TTL: time.Nanosecond, Func: func(ctx context.Context) error {
			return ctx.Err()
		}}}})
		if r := h.Report(context.Background(), health.Ready); r.Status != health.StatusOK {
			t.Fatal(r)
		}
		h.Close()
		time.Sleep(time.Millisecond)
		if r := h.Report(context.Background(), health.Ready); r.Checks["c"].Status != health.StatusFail {
			t.Fatalf("after Close: %+v", r)
		}
	})
}

func TestOutsideGroups(t *testing.T) {
	ok := func(context.Context) error { return nil }
	h := health.New(health.Config{Checks: []health.Check{
		{Name: "a", Func: ok, Groups: []string{"orders", "billing"}},
		{Name: "b", Func: func(context.Context) error { return errors.New("x") }, Groups: []string{"billing"}},
	}})
	defer h.Close()
	if g := h.Groups(); len(g) != 2 || g[0] != "billing" || g[1] != "orders" {
		t.Fatalf("Groups %v", g)
	}
	if !h.HasGroup(health.Ready) || !h.HasGroup(health.Live) || h.HasGroup("nope") {
		t.Fatal("HasGroup")
	}
	for g, want := range map[string]int{"orders": 200, "billing": 503, health.Live: 200} {
		rec := httptest.NewRecorder()
		h.Group(g).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != want {
			t.Errorf("group %s: %d", g, rec.Code)
		}
	}
	if err := h.Add(health.Check{Name: "a", Func: ok}); err == nil {
		t.Fatal("duplicate name accepted by Add")
	}
	if err := h.Add(health.Check{Name: "c", Func: ok, Groups: []string{"new"}}); err != nil || !h.HasGroup("new") {
		t.Fatalf("Add: %v", err)
	}
}

func TestOutsideConcurrentProbesShareOneRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := health.New(health.Config{Checks: []health.Check{{Name: "slow", Func: func(ctx context.Context) error {
			runs.Add(1)
			time.Sleep(100 * time.Millisecond)
			return nil
		}}}})
		defer h.Close()
		done := make(chan health.Report, 10)
		for range 10 {
			go func() { done <- h.Report(context.Background(), health.Ready) }()
		}
		for range 10 {
			if r := <-done; r.Status != health.StatusOK {
				t.Fatal(r)
			}
		}
		if runs.Load() != 1 {
			t.Fatalf("%d runs", runs.Load())
		}
	})
}

func TestOutsideEndpointCheckBalancer(t *testing.T) {
	b := lb.New(lb.Config{})
	defer b.Close()
	chk := health.EndpointCheck(b, 1)
	if chk(context.Background()) == nil {
		t.Fatal("a balancer with no endpoints passed")
	}
}
