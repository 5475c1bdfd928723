package redisstore_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/cache/redisstore"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestOutsideGapDropsL1(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("k", "v1")
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		b := newInstance(t, h.NewClient(nil), h.Prefix, o, cache.Config[string, string]{})
		a.get(t, "k")
		b.get(t, "k")
		h.Down()
		o.set("k", "v2")
		// While Redis is down, reads keep working, errors are not returned.
		if v := b.get(t, "k"); v != "v1" {
			t.Fatalf("L1 while down = %q", v)
		}
		if _, err := b.Get(context.Background(), "new"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("origin while down = %v", err)
		}
		h.Up()
		if ev := b.wait(t); !ev.Gap {
			t.Fatalf("event after reconnect = %+v, want a gap", ev)
		}
		if s := b.Stats(); s.Gaps < 1 {
			t.Fatalf("Gaps = %d", s.Gaps)
		}
		// The in-process tier was dropped: the Store's (stale) copy or the
		// origin answers, not the L1 value whose invalidation may be lost.
		before := b.Stats().HitsL1
		b.get(t, "k")
		if b.Stats().HitsL1 != before {
			t.Fatal("L1 still served after a gap")
		}
	})
}

func TestOutsideRedisDownServes(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("k", "v")
		o.set("n", "new")
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		a.get(t, "k")
		h.Down()
		if v := a.get(t, "k"); v != "v" {
			t.Fatalf("L1 while down = %q", v)
		}
		if v := a.get(t, "n"); v != "new" {
			t.Fatalf("origin while down = %q", v)
		}
		m, err := a.GetMany(context.Background(), []string{"k", "n", "m"})
		if err != nil || m["k"] != "v" || m["n"] != "new" {
			t.Fatalf("GetMany while down = %v, %v", m, err)
		}
		if err := a.Set(context.Background(), "k", "set"); !errors.Is(err, cache.ErrStore) {
			t.Fatalf("Set while down = %v, want ErrStore", err)
		}
		if v := a.get(t, "k"); v != "set" {
			t.Fatalf("L1 not updated by a failing Set: %q", v)
		}
		if s := a.Stats(); s.StoreErrors == 0 {
			t.Fatalf("no store errors counted: %+v", s)
		}
		f := newInstance(t, h.NewClient(nil), h.Prefix, o, cache.Config[string, string]{FailOnStoreError: true})
		if _, err := f.Get(context.Background(), "zz"); !errors.Is(err, cache.ErrStore) {
			t.Fatalf("FailOnStoreError Get = %v", err)
		}
		if _, err := f.GetMany(context.Background(), []string{"zz"}); !errors.Is(err, cache.ErrStore) {
			t.Fatalf("FailOnStoreError GetMany = %v", err)
		}
		h.Up()
	})
}

func TestOutsideNegativeSharedAndIntKeys(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		b := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		if _, err := a.Get(context.Background(), "gone"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := b.Get(context.Background(), "gone"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatal(err)
		}
		if n := o.calls.Load(); n != 1 {
			t.Fatalf("origin calls = %d: the not-found answer was not shared", n)
		}

		mk := func() (*cache.Cache[int, string], chan cache.InvalidateEvent) {
			ev := make(chan cache.InvalidateEvent, 10)
			c := cache.New(cache.Config[int, string]{
				Load:         func(ctx context.Context, k int) (string, error) { return "o" + strconv.Itoa(k), nil },
				Store:        redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix + "int:"}),
				OnInvalidate: func(_ context.Context, e cache.InvalidateEvent) { ev <- e },
			})
			t.Cleanup(func() { c.Close() })
			return c, ev
		}
		ia, _ := mk()
		ib, evb := mk()
		ctx := context.Background()
		ib.Get(ctx, 7)
		if err := ia.Set(ctx, 7, "seven"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-evb:
		case <-time.After(10 * time.Second):
			t.Fatal("no invalidation")
		}
		if v, _ := ib.Get(ctx, 7); v != "seven" {
			t.Fatalf("int key after invalidation = %q", v)
		}
	})
}

func TestOutsideSetAfterClose(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("k", "v")
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		b := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		b.get(t, "k")
		a.Close()
		if _, err := a.Get(context.Background(), "other"); !errors.Is(err, cache.ErrClosed) {
			t.Fatalf("Get after Close = %v", err)
		}
		if err := a.Set(context.Background(), "k", "after"); err != nil {
			t.Fatalf("Set after Close = %v, want nil (documented)", err)
		}
		b.wait(t)
		if v := b.get(t, "k"); v != "after" {
			t.Fatalf("other instance after a Set from a closed Cache: %q", v)
		}
	})
}

func TestOutsideKeyTooLongGoesOn(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		long := string(make([]byte, redisstore.MaxKeyLen+1))
		o.set(long, "v")
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		if v := a.get(t, long); v != "v" {
			t.Fatalf("%q", v)
		}
		if err := a.Set(context.Background(), long, "x"); !errors.Is(err, cache.ErrStore) || !errors.Is(err, redisstore.ErrKeyTooLong) {
			t.Fatalf("Set of a long key = %v", err)
		}
	})
}

func TestOutsideStoreConfigValidate(t *testing.T) {
	for name, cfg := range map[string]redisstore.Config{
		"neg Timeout":  {Timeout: -1},
		"huge Timeout": {Timeout: redisstore.MaxTimeout + 1},
		"long Prefix":  {Prefix: string(make([]byte, redisstore.MaxPrefixLen+1))},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate = nil", name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New(nil client) did not panic")
		}
	}()
	redisstore.New(nil, redisstore.Config{})
}

func TestSetOfAnUnencodableValueChangesNothing(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		c := cache.New(cache.Config[string, val]{
			Load:  func(ctx context.Context, k string) (val, error) { return val{}, nil },
			Store: redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix}),
		})
		defer c.Close()
		ctx := context.Background()
		if err := c.Set(ctx, "k", val{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "k", val{Bad: true}); err == nil {
			t.Fatal("Set of an unencodable value returned nil")
		}
		if v, err := c.Get(ctx, "k"); err != nil || v.Bad {
			t.Fatalf("Get after a failed Set = %+v, %v; want the previous value, as in the Store", v, err)
		}
	})
}

// val is a value whose JSON encoding fails when Bad is set.
type val struct{ Bad bool }

func (v val) MarshalJSON() ([]byte, error) {
	if v.Bad {
		return nil, errors.New("cannot encode")
	}
	return []byte(`{}`), nil
}
