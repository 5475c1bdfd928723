package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/degrade/redisstore"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// instance is one service instance's switches over the shared Redis; its
// changes arrive on ch.
type instance struct {
	sw *degrade.Switches
	ch chan degrade.SwitchEvent
}

func newInstance(t *testing.T, h *redistest.Harness, own bool) *instance {
	t.Helper()
	rdb := h.Client
	if own {
		rdb = h.NewClient(nil)
	}
	in := &instance{ch: make(chan degrade.SwitchEvent, 64)}
	store := redisstore.New(rdb, redisstore.Config{Prefix: h.Prefix})
	t.Cleanup(func() { store.Close() })
	in.sw = degrade.NewSwitches(degrade.SwitchesConfig{
		Store:    store,
		OnChange: func(_ context.Context, ev degrade.SwitchEvent) { in.ch <- ev },
	})
	t.Cleanup(func() { in.sw.Close() })
	return in
}

// waitFor waits (bounded) until the instance has applied name = on.
func (in *instance) waitFor(t *testing.T, name string, on bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for in.sw.Switch(name).On() != on {
		select {
		case <-in.ch:
		case <-deadline:
			t.Fatalf("the switch %q never became %v", name, on)
		}
	}
}

func TestSwitchesFlipAcrossInstances(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		a, b := newInstance(t, h, false), newInstance(t, h, true)
		ctx := context.Background()
		if err := a.sw.Set(ctx, "recommendations", false); err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "recommendations", false)
		if err := b.sw.Set(ctx, "recommendations", true); err != nil {
			t.Fatal(err)
		}
		a.waitFor(t, "recommendations", true)
		if err := b.sw.Set(ctx, "search", false); err != nil {
			t.Fatal(err)
		}
		a.waitFor(t, "search", false)
		if err := a.sw.Set(ctx, "ads", false); err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "ads", false)
		// A new instance reads the stored values.
		c := newInstance(t, h, true)
		c.waitFor(t, "search", false)
		c.waitFor(t, "ads", false)
		if got := c.sw.List(); got["search"] || got["ads"] || !c.sw.Switch("recommendations").On() {
			t.Fatalf("a new instance: %v", got)
		}
	})
}

// TestSwitchesSurviveRestart: the stored values survive a Redis restart,
// Set fails (changing nothing) while Redis is down, and an instance that
// reconnects re-reads the stored values, catching a change it never got
// a message for (a Redis restored from a snapshot).
func TestSwitchesSurviveRestart(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		ctx := context.Background()
		a, b := newInstance(t, h, false), newInstance(t, h, true)
		if err := a.sw.Set(ctx, "search", false); err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "search", false)
		snap := h.Snapshot()
		if err := a.sw.Set(ctx, "search", true); err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "search", true)

		h.Down()
		if err := a.sw.Set(ctx, "search", false); err == nil {
			t.Fatal("Set succeeded with Redis down")
		}
		if !a.sw.Switch("search").On() || !b.sw.Switch("search").On() {
			t.Fatal("a failed Set changed a switch")
		}
		h.UpFrom(snap) // Redis comes back holding search = false, and announces nothing
		b.waitFor(t, "search", false)
		a.waitFor(t, "search", false)

		h.Down()
		h.Up()
		c := newInstance(t, h, true)
		c.waitFor(t, "search", false)
		if err := c.sw.Set(ctx, "search", true); err != nil {
			t.Fatal(err)
		}
		a.waitFor(t, "search", true)
	})
}

func TestStoreRejectsBadInput(t *testing.T) {
	h := redistest.New(t)
	s := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
	if err := s.Set(context.Background(), "", true); !errors.Is(err, redisstore.ErrBadName) {
		t.Fatalf("empty name: %v", err)
	}
	// Garbage in the hash and on the channel is ignored.
	h.Client.HSet(context.Background(), h.Prefix+"{switches}", "weird", "maybe", "ok", "1")
	got, err := s.Load(context.Background())
	if err != nil || len(got) != 1 || !got["ok"] {
		t.Fatalf("Load = %v, %v", got, err)
	}
	for _, c := range []redisstore.Config{{Prefix: "a{b}"}, {Timeout: -1}} {
		if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestStoreSlowAndFull: a Redis slower than the store's timeout, and a
// full Redis, make Set fail (counted in bulwark.degrade.store.errors)
// without changing the stored value, and reads go on.
func TestStoreSlowAndFull(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		s := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix, Timeout: 200 * time.Millisecond, MeterProvider: mp})
		defer s.Close()
		ctx := context.Background()
		if err := s.Set(ctx, "a", false); err != nil {
			t.Fatal(err)
		}
		h.SetLatency(2 * time.Second)
		if err := s.Set(ctx, "a", true); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Set on a slow Redis: %v", err)
		}
		h.SetLatency(0)
		h.SetFull(true)
		if err := s.Set(ctx, "a", true); err == nil {
			t.Fatal("Set on a full Redis succeeded")
		}
		got, err := s.Load(ctx)
		if err != nil || got["a"] {
			t.Fatalf("Load on a full Redis: %v %v", got, err)
		}
		h.SetFull(false)
		conformance.Instruments(t, reader)
		var rm metricdata.ResourceMetrics
		reader.Collect(ctx, &rm)
		var sets int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "bulwark.degrade.store.errors" {
					for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
						if v, _ := dp.Attributes.Value("bulwark.degrade.store.op"); v.AsString() == "set" {
							sets = dp.Value
						}
					}
				}
			}
		}
		if sets != 2 {
			t.Fatalf("store errors for set = %d, want 2", sets)
		}
	})
}
