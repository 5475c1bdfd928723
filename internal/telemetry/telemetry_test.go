package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMeterScopeAndName(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	c, err := Meter(mp, "breaker").Int64Counter(Name("breaker", "calls"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 1)
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 1 {
		t.Fatalf("scopes = %d", len(rm.ScopeMetrics))
	}
	sm := rm.ScopeMetrics[0]
	if sm.Scope.Name != "github.com/bulwark-go/bulwark/breaker" || sm.Metrics[0].Name != "bulwark.breaker.calls" {
		t.Fatalf("scope %q metric %q", sm.Scope.Name, sm.Metrics[0].Name)
	}
	if Meter(nil, "x") == nil || Tracer(nil, "x") == nil {
		t.Fatal("global fallbacks returned nil")
	}
}

func TestAddEventOnlyOnRecordingSpan(t *testing.T) {
	AddEvent(context.Background(), "ignored") // no span: must not panic
	if Recording(context.Background()) {
		t.Fatal("background context reported recording")
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	ctx, span := Tracer(tp, "breaker").Start(context.Background(), "call")
	if !Recording(ctx) {
		t.Fatal("span context not recording")
	}
	AddEvent(ctx, Name("breaker", "rejected"), AttrName.String("db"))
	span.End()
	ended := sr.Ended()
	if len(ended) != 1 || len(ended[0].Events()) != 1 {
		t.Fatalf("events = %v", ended)
	}
	ev := ended[0].Events()[0]
	if ev.Name != "bulwark.breaker.rejected" || ev.Attributes[0] != attribute.String("bulwark.name", "db") {
		t.Fatalf("event = %+v", ev)
	}
}
