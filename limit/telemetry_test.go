package limit

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestInstruments(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())

	r := NewRate(RateConfig{Name: "r", Rate: 1, Burst: 2, MeterProvider: mp})
	defer r.Close()
	for range 5 {
		r.Allow()
	}
	b := NewBulkhead(BulkheadConfig{Name: "b", MaxConcurrent: 3, MeterProvider: mp})
	defer b.Close()
	p, _ := b.Acquire(context.Background())
	defer p.Release(bulwark.Success)
	a := NewAdaptive(AdaptiveConfig{Name: "a", MeterProvider: mp})
	defer a.Close()
	k := NewKeyed(KeyedConfig{Rate: RateConfig{Name: "k", MeterProvider: mp}})
	defer k.Close()

	conformance.Instruments(t, rd)

	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var dps []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				dps = d.DataPoints
			case metricdata.Gauge[int64]:
				dps = d.DataPoints
			}
			for _, dp := range dps {
				name, _ := dp.Attributes.Value(attribute.Key("bulwark.name"))
				dec, _ := dp.Attributes.Value(attrDecision)
				got[m.Name+"/"+name.AsString()+"/"+dec.AsString()] = dp.Value
			}
		}
	}
	for key, want := range map[string]int64{
		"bulwark.limit.decisions/r/admitted": 2,
		"bulwark.limit.decisions/r/rejected": 3,
		"bulwark.limit.decisions/b/admitted": 1,
		"bulwark.limit.in_flight/b/":         1,
		"bulwark.limit.concurrency_limit/b/": 3,
		"bulwark.limit.concurrency_limit/a/": DefaultMinLimit, // measuring no-load latency
		"bulwark.limit.decisions/k/admitted": 0,
	} {
		if got[key] != want {
			t.Errorf("%s = %d, want %d", key, got[key], want)
		}
	}

	// Close unregisters: nothing of r is collected afterwards.
	r.Close()
	r.Close()
	rm = metricdata.ResourceMetrics{}
	rd.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					if v, _ := dp.Attributes.Value(attribute.Key("bulwark.name")); v.AsString() == "r" {
						t.Fatal("a closed limiter is still collected")
					}
				}
			}
		}
	}
}
