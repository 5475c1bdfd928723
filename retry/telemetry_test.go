package retry

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Recording a retry's delay allocates nothing, with the global (no-op)
// provider and with the SDK's, and the delay carries the policy's name.
func TestRetryDelayRecordAllocatesNothing(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	ctx := context.Background()
	ev := Event{Attempt: 2, Delay: 5 * time.Millisecond}
	for name, cfg := range map[string]Config{"global": {Name: "inv"}, "sdk": {Name: "inv", MeterProvider: mp}} {
		p := New(cfg)
		p.tel.retry(ctx, ev) // the SDK makes the series once
		if n := testing.AllocsPerRun(100, func() { p.tel.retry(ctx, ev) }); n != 0 {
			t.Errorf("%s provider: %v allocations per recorded delay, want 0", name, n)
		}
		p.Close()
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var count uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == instDelays {
				for _, dp := range h.DataPoints {
					if v, _ := dp.Attributes.Value("bulwark.name"); v != attribute.StringValue("inv") {
						t.Errorf("delay recorded with bulwark.name %v, want inv", v)
					}
					count += dp.Count
				}
			}
		}
	}
	if count != 101+1 { // AllocsPerRun runs the function once more to warm up
		t.Errorf("%d delays recorded, want 102", count)
	}
}
