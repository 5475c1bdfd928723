package cache_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	o := newOrigin()
	o.set("k", "v")
	c := newCache(t, o, cache.Config[string, string]{Name: "prices", MeterProvider: mp})
	get(t, c, "k")
	get(t, c, "k")
	get(t, c, "k")
	conformance.Instruments(t, reader)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				tier, _ := dp.Attributes.Value("bulwark.cache.tier")
				got[m.Name+"/"+tier.AsString()] += dp.Value
			}
		}
	}
	if got["bulwark.cache.hits/l1"] != 2 || got["bulwark.cache.misses/"] != 1 || got["bulwark.cache.loads/"] != 1 {
		t.Fatalf("collected %v", got)
	}
	c.Close()
	rm = metricdata.ResourceMetrics{}
	reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		if len(sm.Metrics) > 0 {
			t.Fatalf("instruments still reported after Close: %v", sm.Metrics)
		}
	}
}
