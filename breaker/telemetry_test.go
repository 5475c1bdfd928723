package breaker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

// points collects the int64 data points of a metric by an attribute.
func points(t *testing.T, rd sdkmetric.Reader, name string, by attribute.Key) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/bulwark-go/bulwark/breaker" {
			t.Fatalf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var dps []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				dps = d.DataPoints
			case metricdata.Gauge[int64]:
				dps = d.DataPoints
			}
			for _, dp := range dps {
				if v, _ := dp.Attributes.Value("bulwark.name"); v.AsString() != "db" {
					t.Fatalf("bulwark.name = %q", v.AsString())
				}
				k, _ := dp.Attributes.Value(by)
				out[k.Emit()] += dp.Value
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	clk := clock.NewFake(time.Time{})
	b := New(Config{Name: "db", clk: clk, MeterProvider: mp, ConsecutiveFailures: 2, OpenDuration: time.Second})
	feed(t, b, "SSNFF") // trips: the counts of the closed period must survive the change
	_, _ = b.Allow()
	_, _ = b.Allow()
	calls := points(t, rd, "bulwark.breaker.calls", "bulwark.outcome")
	if calls["success"] != 2 || calls["failure"] != 2 || calls["neutral"] != 1 {
		t.Fatalf("calls %v", calls)
	}
	if r := points(t, rd, "bulwark.breaker.rejections", "bulwark.name"); r["db"] != 2 {
		t.Fatalf("rejections %v", r)
	}
	if s := points(t, rd, "bulwark.breaker.state", "bulwark.breaker.state"); s["open"] != 1 || s["closed"] != 0 || len(s) != 5 {
		t.Fatalf("state %v", s)
	}
	if tr := points(t, rd, "bulwark.breaker.transitions", "bulwark.breaker.to"); tr["open"] != 1 || len(tr) != 1 {
		t.Fatalf("transitions %v", tr)
	}
	b.Close()
	b.Close()
	if c := points(t, rd, "bulwark.breaker.calls", "bulwark.outcome"); len(c) != 0 {
		t.Fatalf("metrics still reported after Close: %v", c)
	}
}

func TestSpanEvents(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	b, _ := mk(t, Config{Name: "db", ConsecutiveFailures: 1})
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	_ = b.Do(ctx, func(context.Context) error { return errors.New("x") })
	_ = b.Do(ctx, func(context.Context) error { return nil })
	span.End()
	evs := sr.Ended()[0].Events()
	if len(evs) != 2 || evs[0].Name != "bulwark.breaker.state_change" || evs[1].Name != "bulwark.breaker.rejected" {
		t.Fatalf("events %+v", evs)
	}
	want := attribute.NewSet(attribute.String("bulwark.name", "db"), attribute.String("bulwark.breaker.from", "closed"),
		attribute.String("bulwark.breaker.to", "open"))
	if got := attribute.NewSet(evs[0].Attributes...); !got.Equals(&want) {
		t.Fatalf("state_change attrs %v", evs[0].Attributes)
	}
}

func TestInstrumentsConform(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	b := New(Config{Name: "db", MeterProvider: mp})
	defer b.Close()
	s := NewSet(SetConfig{Config: Config{Name: "hosts", MeterProvider: mp}})
	defer s.Close()
	s.Get("a")
	conformance.Instruments(t, rd)
}

// setPoints collects an int64 metric's points as "key|by-value" -> value.
func setPoints(t *testing.T, rd sdkmetric.Reader, name string, by attribute.Key) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var dps []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				dps = d.DataPoints
			case metricdata.Gauge[int64]:
				dps = d.DataPoints
			}
			for _, dp := range dps {
				if v, _ := dp.Attributes.Value("bulwark.name"); v.AsString() != "hosts" {
					t.Fatalf("bulwark.name = %q", v.AsString())
				}
				k := "-" // no bulwark.key attribute
				if v, ok := dp.Attributes.Value("bulwark.key"); ok {
					k = v.AsString()
				}
				b, _ := dp.Attributes.Value(by)
				out[k+"|"+b.Emit()] += dp.Value
			}
		}
	}
	return out
}

func TestSetMetricsPerKeyAndAggregated(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(fmt.Sprint("aggregate=", agg), func(t *testing.T) {
			rd := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
			defer mp.Shutdown(context.Background())
			s, clk := mkSet(t, SetConfig{Config: Config{Name: "hosts", MeterProvider: mp, ConsecutiveFailures: 1},
				IdleTimeout: time.Minute, AggregateMetrics: agg})
			ctx := context.Background()
			_ = s.Do(ctx, "a", func(context.Context) error { return errBoom }) // a opens
			_ = s.Do(ctx, "a", func(context.Context) error { return nil })     // rejected
			_ = s.Do(ctx, "b", func(context.Context) error { return nil })
			_ = s.Do(ctx, "b", func(context.Context) error { return nil })
			calls := setPoints(t, rd, "bulwark.breaker.calls", "bulwark.outcome")
			states := setPoints(t, rd, "bulwark.breaker.state", "bulwark.breaker.state")
			rejections := setPoints(t, rd, "bulwark.breaker.rejections", "bulwark.name")
			if !agg {
				if calls["a|failure"] != 1 || calls["b|success"] != 2 || calls["a|success"] != 0 {
					t.Fatalf("per-key calls %v", calls)
				}
				if states["a|open"] != 1 || states["b|closed"] != 1 || states["a|closed"] != 0 {
					t.Fatalf("per-key states %v", states)
				}
				if rejections["a|hosts"] != 1 {
					t.Fatalf("per-key rejections %v", rejections)
				}
				return
			}
			if calls["-|failure"] != 1 || calls["-|success"] != 2 || len(calls) != 3 {
				t.Fatalf("aggregated calls %v, want one series per outcome", calls)
			}
			if states["-|open"] != 1 || states["-|closed"] != 1 || len(states) != 5 {
				t.Fatalf("aggregated states %v, want 1 open and 1 closed member", states)
			}
			if rejections["-|hosts"] != 1 {
				t.Fatalf("aggregated rejections %v", rejections)
			}
			// Evicting b keeps its calls in the counters (they never go
			// back) and takes it out of the state gauge.
			clk.Advance(time.Minute)
			s.Get("c") // sweep: marks cleared
			clk.Advance(time.Minute)
			s.Get("d") // sweep: b (and a? open, but idle) evicted
			calls = setPoints(t, rd, "bulwark.breaker.calls", "bulwark.outcome")
			if calls["-|success"] != 2 || calls["-|failure"] != 1 {
				t.Fatalf("after eviction, calls %v: evicted members' counts were lost", calls)
			}
			states = setPoints(t, rd, "bulwark.breaker.state", "bulwark.breaker.state")
			var members int64
			for _, v := range states {
				members += v
			}
			if members != int64(s.Len()) {
				t.Fatalf("state gauge counts %d members, the set holds %d", members, s.Len())
			}
		})
	}
}

func TestSetCloseStopsMetrics(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	s := NewSet(SetConfig{Config: Config{Name: "hosts", MeterProvider: mp}})
	s.Get("a")
	if c := setPoints(t, rd, "bulwark.breaker.state", "bulwark.breaker.state"); c["a|closed"] != 1 {
		t.Fatalf("before Close: %v", c)
	}
	s.Close()
	if c := setPoints(t, rd, "bulwark.breaker.state", "bulwark.breaker.state"); len(c) != 0 {
		t.Fatalf("after Close: %v", c)
	}
}
