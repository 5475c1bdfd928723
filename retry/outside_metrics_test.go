package retry_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/retry"
)

func TestOutsideMetricNamesAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		p := retry.New(retry.Config{Name: "inv", MeterProvider: mp, Budget: retry.UnlimitedBudget(), Jitter: retry.NoJitter})
		p.Do(context.Background(), func(context.Context) error { return errBoom })
		p.Do(context.Background(), func(context.Context) error { return nil })
		conformance.Instruments(t, reader)
		var rm metricdata.ResourceMetrics
		reader.Collect(context.Background(), &rm)
		got := map[string]int64{}
		var delays uint64
		for _, sm := range rm.ScopeMetrics {
			if sm.Scope.Name != "github.com/bulwark-go/bulwark/retry" {
				continue
			}
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, dp := range d.DataPoints {
						if n, _ := dp.Attributes.Value("bulwark.name"); n != attribute.StringValue("inv") {
							t.Errorf("%s: bulwark.name %v", m.Name, n)
						}
						k, _ := dp.Attributes.Value("bulwark.retry.kind")
						r, _ := dp.Attributes.Value("bulwark.retry.reason")
						got[m.Name+"/"+k.Emit()+r.Emit()] += dp.Value
					}
				case metricdata.Histogram[float64]:
					if m.Name != "bulwark.retry.delays" || m.Unit != "s" {
						t.Errorf("histogram %s (%s)", m.Name, m.Unit)
					}
					for _, dp := range d.DataPoints {
						delays += dp.Count
						if dp.Bounds[0] != 0.001 || dp.Bounds[len(dp.Bounds)-1] != 60 {
							t.Errorf("delay buckets %v, documented 1ms to 60s", dp.Bounds)
						}
					}
				}
			}
		}
		if got["bulwark.retry.attempts/first"] != 2 || got["bulwark.retry.attempts/retry"] != 2 || got["bulwark.retry.exhaustions/attempts"] != 1 || delays != 2 {
			t.Fatalf("metrics %v, %d delays", got, delays)
		}
		p.Close()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		rm = metricdata.ResourceMetrics{}
		reader.Collect(context.Background(), &rm)
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if _, ok := m.Data.(metricdata.Sum[int64]); ok && sm.Scope.Name == "github.com/bulwark-go/bulwark/retry" {
					t.Errorf("%s still reported after Close", m.Name)
				}
			}
		}
		_ = time.Second
	})
}
