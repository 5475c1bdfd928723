package benchmarks

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark/breaker"
)

// TestBreakerPrometheusNames exports a breaker's and a Set's metrics
// through the OpenTelemetry Prometheus exporter and checks the names a
// Prometheus user sees: the state gauge once had the unit "1", which the
// exporter turns into bulwark_breaker_state_ratio.
func TestBreakerPrometheusNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer mp.Shutdown(context.Background())
	b := breaker.New(breaker.Config{Name: "db", MeterProvider: mp, ConsecutiveFailures: 1})
	defer b.Close()
	_ = b.Do(context.Background(), func(context.Context) error { return errors.New("down") })
	_ = b.Do(context.Background(), func(context.Context) error { return nil }) // rejected
	s := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{Name: "hosts", MeterProvider: mp}, AggregateMetrics: true})
	defer s.Close()
	_ = s.Do(context.Background(), "a", func(context.Context) error { return nil })

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
	}
	want := []string{
		"bulwark_breaker_calls_total",
		"bulwark_breaker_rejections_total",
		"bulwark_breaker_slow_calls_total",
		"bulwark_breaker_state",
		"bulwark_breaker_transitions_total",
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("no %s among the exported metrics %v", w, names)
		}
	}
	for _, mf := range mfs {
		if mf.GetName() != "bulwark_breaker_state" {
			continue
		}
		open := 0.0
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "bulwark_breaker_state" && l.GetValue() == "open" {
					open += m.GetGauge().GetValue()
				}
			}
		}
		if open != 1 {
			t.Errorf("bulwark_breaker_state{bulwark_breaker_state=\"open\"} sums to %v, want 1 (the tripped breaker)", open)
		}
	}
}
