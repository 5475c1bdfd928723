package degrade

import (
	"context"
	"errors"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	s := NewShedder(ShedderConfig{Name: "api", MeterProvider: mp})
	th := NewThrottler(ThrottlerConfig{Name: "up", MeterProvider: mp})
	f := New(Config{Name: "recs", MeterProvider: mp})
	th.setRand(func() float64 { return 0 }) // every request with p > 0 is throttled
	for range 5 {
		th.Do(context.Background(), func(context.Context) error { return errors.New("x") })
		Call(context.Background(), f, "", func(context.Context) (int, error) { return 0, errors.New("x") }, Value(1))
	}
	s.Do(context.Background(), Default, func(context.Context) error { return nil })
	conformance.Instruments(t, reader)

	var rm metricdata.ResourceMetrics
	reader.Collect(context.Background(), &rm)
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					got[m.Name] += dp.Value
				}
			}
		}
	}
	if got["bulwark.degrade.fallbacks"] != 5 || got["bulwark.degrade.throttled_requests"] != 4 {
		t.Fatalf("counts %v", got)
	}
	s.Close()
	th.Close()
	f.Close()
	f.Close()
}
