package benchmarks

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark/retry"
)

// TestRetryPrometheusNames exports a retry policy's metrics through the
// OpenTelemetry Prometheus exporter and checks the names a Prometheus user
// sees, and that bulwark_retry_delays has its own bucket boundaries (the
// SDK's defaults, 0 to 10000 seconds, once put every sub-second delay in
// one bucket).
func TestRetryPrometheusNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer mp.Shutdown(context.Background())
	p := retry.New(retry.Config{Name: "db", MeterProvider: mp, MaxAttempts: 2, BaseDelay: time.Millisecond,
		Jitter: retry.NoJitter, Budget: retry.UnlimitedBudget()})
	defer p.Close()
	_ = p.Do(context.Background(), func(context.Context) error { return errors.New("down") })

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if strings.HasSuffix(mf.GetName(), "_ratio") {
			t.Errorf("exported %s: a unit of \"1\" leaked into the name", mf.GetName())
		}
		if mf.GetName() != "bulwark_retry_delays_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var bounds []float64
			for _, b := range m.GetHistogram().GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
			}
			if len(bounds) == 0 || bounds[0] > 0.001 || slices.Contains(bounds, 10000) {
				t.Errorf("bulwark_retry_delays_seconds buckets %v: want bulwark's, from 1ms", bounds)
			}
		}
	}
	want := []string{
		"bulwark_retry_attempts_total",
		"bulwark_retry_delays_seconds",
		"bulwark_retry_exhaustions_total",
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("no %s among the exported metrics %v", w, names)
		}
	}
}
