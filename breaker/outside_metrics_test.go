package breaker_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func collectBreaker(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/bulwark-go/bulwark/breaker" {
			continue
		}
		for _, m := range sm.Metrics {
			var dps []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				dps = d.DataPoints
			case metricdata.Gauge[int64]:
				dps = d.DataPoints
			}
			for _, dp := range dps {
				k := m.Name + "/" + m.Unit
				for _, a := range []string{"bulwark.outcome", "bulwark.breaker.from", "bulwark.breaker.to", "bulwark.breaker.state", "bulwark.key"} {
					if v, ok := dp.Attributes.Value(attribute.Key(a)); ok {
						k += "/" + v.Emit()
					}
				}
				got[k] += dp.Value
			}
		}
	}
	return got
}

func TestOutsideMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	b := breaker.New(breaker.Config{Name: "pay", ConsecutiveFailures: 2, MeterProvider: mp})
	run(b, nil)
	run(b, errFail)
	run(b, errFail)
	run(b, nil) // rejected
	conformance.Instruments(t, reader)
	got := collectBreaker(t, reader)
	for k, want := range map[string]int64{
		"bulwark.breaker.calls/{call}/success":                 1,
		"bulwark.breaker.calls/{call}/failure":                 2,
		"bulwark.breaker.rejections/{call}":                    1,
		"bulwark.breaker.transitions/{transition}/closed/open": 1,
		"bulwark.breaker.state/{state}/open":                   1,
		"bulwark.breaker.state/{state}/closed":                 0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %d (present %v), want %d; all: %v", k, v, ok, want, got)
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := collectBreaker(t, reader); len(got) != 0 {
		t.Fatalf("reported after Close: %v", got)
	}
}
