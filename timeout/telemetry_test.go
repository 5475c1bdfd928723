package timeout

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/bulwark-go/bulwark/internal/conformance"
)

// collect returns the int64 value of each timeout instrument, checking
// the bulwark.name attribute.
func collect(t *testing.T, rd *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s: %T, want an int64 sum", m.Name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				if v, _ := dp.Attributes.Value("bulwark.name"); v.AsString() != "db" {
					t.Fatalf("%s: bulwark.name = %q", m.Name, v.AsString())
				}
				out[m.Name] += dp.Value
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rd := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
		defer mp.Shutdown(context.Background())
		to := New(Config{Name: "db", Timeout: 10 * time.Millisecond, Abandon: true, MeterProvider: mp})

		release := make(chan struct{})
		for range 2 {
			_ = to.Do(context.Background(), func(context.Context) error { <-release; return nil })
		}
		_ = to.Do(context.Background(), func(context.Context) error { return nil })
		got := collect(t, rd)
		if got["bulwark.timeout.timeouts"] != 2 || got["bulwark.timeout.abandoned_calls"] != 2 {
			t.Fatalf("metrics %v, want 2 timeouts, 2 abandoned calls running", got)
		}
		close(release)
		synctest.Wait()
		if got := collect(t, rd); got["bulwark.timeout.abandoned_calls"] != 0 || got["bulwark.timeout.timeouts"] != 2 {
			t.Fatalf("metrics %v once the abandoned calls returned", got)
		}
		conformance.Instruments(t, rd)

		if err := to.Close(); err != nil {
			t.Fatal(err)
		}
		if err := to.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if got := collect(t, rd); len(got) != 0 {
			t.Fatalf("metrics %v after Close, want none", got)
		}
	})
}

func TestTimedOutSpanEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		defer tp.Shutdown(context.Background())
		ctx, span := tp.Tracer("test").Start(context.Background(), "call")
		to := mk(t, Config{Name: "db", Timeout: 10 * time.Millisecond})
		_ = to.Do(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		_ = to.Do(ctx, func(ctx context.Context) error { return nil })
		span.End()
		evs := sr.Ended()[0].Events()
		if len(evs) != 1 || evs[0].Name != "bulwark.timeout.timed_out" {
			t.Fatalf("events %v, want one bulwark.timeout.timed_out", evs)
		}
	})
}
