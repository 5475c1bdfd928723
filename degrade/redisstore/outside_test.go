package redisstore_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/degrade/redisstore"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// node is one instance watching the shared store, its changes on ch.
type node struct {
	sw *degrade.Switches
	ch chan degrade.SwitchEvent
}

func newNode(t *testing.T, h *redistest.Harness) *node {
	n := &node{ch: make(chan degrade.SwitchEvent, 64)}
	st := redisstore.New(h.NewClient(nil), redisstore.Config{Prefix: h.Prefix})
	n.sw = degrade.NewSwitches(degrade.SwitchesConfig{Store: st, OnChange: func(_ context.Context, ev degrade.SwitchEvent) { n.ch <- ev }})
	t.Cleanup(func() { n.sw.Close(); st.Close() })
	return n
}

func (n *node) await(t *testing.T, name string, on bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for n.sw.Switch(name).On() != on {
		select {
		case <-n.ch:
		case <-deadline:
			t.Fatalf("switch %s never became %v", name, on)
		}
	}
}

func TestOutsideTwoInstancesAndRestart(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		a, b := newNode(t, h), newNode(t, h)
		ctx := context.Background()
		if err := a.sw.Set(ctx, "feat", false); err != nil {
			t.Fatal(err)
		}
		b.await(t, "feat", false)
		a.await(t, "feat", false)
		// Flip over the admin handler of b; a sees it.
		srv := httptest.NewServer(b.sw.AdminHandler(func(r *http.Request) bool { return r.Header.Get("X-Token") == "t" }))
		defer srv.Close()
		post := func(tok string) int {
			req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(url.Values{"name": {"feat"}, "on": {"true"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Token", tok)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if post("bad") != 403 {
			t.Fatal("unauthorised flip accepted")
		}
		if code := post("t"); code != 200 {
			t.Fatalf("flip: %d", code)
		}
		a.await(t, "feat", true)

		// Redis goes down: Set fails, nothing changes anywhere; admin 503.
		h.Down()
		if err := a.sw.Set(ctx, "feat", false); err == nil {
			t.Fatal("Set during outage succeeded")
		}
		if !a.sw.Switch("feat").On() || !b.sw.Switch("feat").On() {
			t.Fatal("switch changed during outage")
		}
		if code := post("t"); code != 503 {
			t.Fatalf("admin during outage: %d", code)
		}
		h.Up()
		// A change made behind their backs while they reconnect: a third
		// client writes the store directly.
		st := redisstore.New(h.NewClient(nil), redisstore.Config{Prefix: h.Prefix})
		defer st.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := st.Set(ctx, "feat", false); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
		a.await(t, "feat", false)
		b.await(t, "feat", false)
		// And flips keep working after the restart.
		if err := b.sw.Set(ctx, "other", false); err != nil {
			t.Fatal(err)
		}
		a.await(t, "other", false)
	})
}

func TestOutsideRestartEmptyKeepsValues(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		a := newNode(t, h)
		if err := a.sw.Set(context.Background(), "feat", false); err != nil {
			t.Fatal(err)
		}
		a.await(t, "feat", false)
		h.Down()
		h.UpEmpty()
		// After a reconnect onto an empty Redis, flips made there still arrive.
		st := redisstore.New(h.NewClient(nil), redisstore.Config{Prefix: h.Prefix})
		defer st.Close()
		deadline := time.Now().Add(10 * time.Second)
		for st.Set(context.Background(), "x", false) != nil {
			if time.Now().After(deadline) {
				t.Fatal("redis never back")
			}
		}
		a.await(t, "x", false)
		if a.sw.Switch("feat").On() {
			t.Log("feat back on after an empty restart (value lost with the data)")
		}
	})
}

func TestOutsideStoreValidate(t *testing.T) {
	for i, c := range []redisstore.Config{
		{Prefix: "a{b}"},
		{Timeout: -1},
		{Timeout: time.Hour},
	} {
		if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%d: %v", i, err)
		}
	}
	h := redistest.NewMiniredis(t)
	st := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
	if st.Close() != nil || st.Close() != nil {
		t.Fatal("Close")
	}
	if err := st.Set(context.Background(), "", true); !errors.Is(err, redisstore.ErrBadName) {
		t.Fatalf("empty name: %v", err)
	}
	if err := st.Set(context.Background(), strings.Repeat("x", degrade.MaxSwitchName+1), true); !errors.Is(err, redisstore.ErrBadName) {
		t.Fatalf("long name: %v", err)
	}
}
