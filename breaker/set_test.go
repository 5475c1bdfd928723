package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

func mkSet(t testing.TB, cfg SetConfig) (*Set, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	cfg.Config.clk = clk
	cfg.Config.OpenJitter = -1
	s := NewSet(cfg)
	t.Cleanup(func() { s.Close() })
	return s, clk
}

func TestSetLazyCreationAndLookup(t *testing.T) {
	var names []string
	s, _ := mkSet(t, SetConfig{Config: Config{ConsecutiveFailures: 1,
		OnStateChange: func(_ context.Context, e StateChangeEvent) { names = append(names, e.Name+"/"+e.Key) }}})
	if s.Len() != 0 {
		t.Fatal("not empty")
	}
	a := s.Get("a")
	if s.Get("a") != a || s.Get("b") == a || s.Len() != 2 {
		t.Fatal("Get does not return one breaker per key")
	}
	_ = s.Do(context.Background(), "a", func(context.Context) error { return errBoom })
	if a.State() != Open || s.Get("b").State() != Closed {
		t.Fatal("keys share state")
	}
	if len(names) != 1 || names[0] != "/a" {
		t.Fatalf("OnStateChange names %v, want [/a]", names)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = s.Get("b") }); n != 0 {
		t.Fatalf("Get of an existing key allocates %v", n)
	}
}

func TestSetEvictsIdleKeys(t *testing.T) {
	s, clk := mkSet(t, SetConfig{IdleTimeout: time.Minute})
	a, b := s.Get("a"), s.Get("b")
	clk.Advance(time.Minute)
	s.Get("c") // sweep: a and b were used since the last sweep, they stay
	if s.Len() != 3 {
		t.Fatalf("len %d after first sweep", s.Len())
	}
	s.Get("a")
	clk.Advance(time.Minute)
	s.Get("d") // sweep: b idle for a full sweep period; c was created after the last sweep
	if s.Len() != 3 {
		t.Fatalf("len %d, want 3 (a, c, d)", s.Len())
	}
	if s.Get("a") != a {
		t.Fatal("a used key was evicted")
	}
	if s.Get("b") == b {
		t.Fatal("idle key b was not evicted")
	}
}

func TestSetBoundedUnderFloodOfKeys(t *testing.T) {
	const max = 100
	s, _ := mkSet(t, SetConfig{MaxKeys: max})
	hot := s.Get("hot")
	var wg sync.WaitGroup
	var over atomic.Bool
	for g := range 8 {
		wg.Go(func() {
			for i := range 1500 {
				_ = s.Get(fmt.Sprintf("flood-%d-%d", g, i))
				if s.Len() > max {
					over.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if over.Load() || s.Len() > max {
		t.Fatalf("set grew past MaxKeys: %d", s.Len())
	}
	// A key in constant use survives a flood (CLOCK eviction).
	_ = hot // idle during the concurrent flood: it may have gone
	h := s.Get("hot")
	for i := range 1000 {
		_ = s.Get(fmt.Sprint("again-", i))
		if s.Get("hot") != h {
			t.Fatalf("a key in constant use was evicted at %d", i)
		}
	}
}

func TestSetOverflowWhenEveryBreakerIsOpen(t *testing.T) {
	s, _ := mkSet(t, SetConfig{MaxKeys: 2, Config: Config{ConsecutiveFailures: 1}})
	for _, k := range []string{"a", "b"} {
		_ = s.Do(context.Background(), k, func(context.Context) error { return errBoom })
	}
	s.Get("a")
	s.Get("b") // both used since the last sweep and open: nothing to evict
	c, d := s.Get("c"), s.Get("d")
	if c != d || s.Len() != 2 {
		t.Fatalf("overflow: c==d %v, len %d", c == d, s.Len())
	}
	if s.Get("a").State() != Open {
		t.Fatal("an open breaker was evicted")
	}
}

// TestSetSaturatedSendsNewKeysToOverflowForASecond guards the flood path:
// once a full set has found nothing to evict, new keys share the overflow
// breaker without searching for a victim again until a second has passed.
func TestSetSaturatedSendsNewKeysToOverflowForASecond(t *testing.T) {
	s, clk := mkSet(t, SetConfig{MaxKeys: 2, Config: Config{ConsecutiveFailures: 1}})
	for _, k := range []string{"a", "b"} {
		_ = s.Do(context.Background(), k, func(context.Context) error { return errBoom })
	}
	over := s.Get("c") // both open: overflow, and the set is saturated
	s.Get("a").Reset() // "a" could now be evicted...
	if d := s.Get("d"); d != over {
		t.Fatal("within a second of a fruitless search, a new key got its own breaker")
	}
	clk.Advance(time.Second) // ...and after the recheck interval it is
	if e := s.Get("e"); e == over || s.Len() != 2 {
		t.Fatalf("after the recheck: own breaker %v, len %d", e != over, s.Len())
	}
}

func TestSetRoundTripperPerHost(t *testing.T) {
	var badHits, goodHits atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer good.Close()
	s, _ := mkSet(t, SetConfig{Config: Config{ConsecutiveFailures: 3}})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: s.RoundTripper(tr)}
	get := func(url string) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	for range 5 {
		_ = get(bad.URL)
		if err := get(good.URL); err != nil {
			t.Fatalf("good host: %v", err)
		}
	}
	if badHits.Load() != 3 || goodHits.Load() != 5 {
		t.Fatalf("hits bad %d good %d, want 3 and 5", badHits.Load(), goodHits.Load())
	}
	if err := get(bad.URL); !errors.Is(err, ErrOpen) {
		t.Fatalf("bad host: %v", err)
	}
}

func TestSetCloseEmpties(t *testing.T) {
	s := NewSet(SetConfig{})
	s.Get("a")
	s.Close()
	if s.Len() != 0 {
		t.Fatal("Close left breakers")
	}
	if s.Get("x") != s.Get("y") {
		t.Fatal("after Close keys should share the overflow breaker")
	}
	s.Close()
}
