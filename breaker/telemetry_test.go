package breaker

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/bulwark-go/bulwark/internal/clock"
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
