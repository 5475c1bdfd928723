package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// TestMetricsExposition serves instruments of every kind through the
// -metrics server and checks the Prometheus text it answers: names, types,
// suffixes, escaped labels, cumulative buckets that end at the count.
func TestMetricsExposition(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	m := mp.Meter("github.com/bulwark-go/bulwark/retry")
	ctx := context.Background()
	attrs := metric.WithAttributes(attribute.String("bulwark.name", `dr"ill\`), attribute.String("bulwark.outcome", "success"))
	calls, _ := m.Int64Counter("bulwark.retry.calls", metric.WithUnit("{call}"), metric.WithDescription("Calls made."))
	calls.Add(ctx, 3, attrs)
	inflight, _ := m.Int64UpDownCounter("bulwark.retry.in_flight", metric.WithUnit("{call}"))
	inflight.Add(ctx, 2)
	lat, _ := m.Float64Histogram("bulwark.retry.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.01, 0.1, 1))
	for _, v := range []float64{0.005, 0.05, 0.05, 5} {
		lat.Record(ctx, v)
	}

	ms, err := startMetrics("127.0.0.1:0", reader)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.close()
	resp, err := http.Get(ms.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	scope := `otel_scope_name="github.com/bulwark-go/bulwark/retry"`
	for _, want := range []string{
		"# HELP bulwark_retry_calls_total Calls made.\n",
		"# TYPE bulwark_retry_calls_total counter\n",
		`bulwark_retry_calls_total{bulwark_name="dr\"ill\\",bulwark_outcome="success",` + scope + "} 3\n",
		"# TYPE bulwark_retry_in_flight gauge\n",
		"bulwark_retry_in_flight{" + scope + "} 2\n",
		"# TYPE bulwark_retry_duration_seconds histogram\n",
		"bulwark_retry_duration_seconds_bucket{" + scope + `,le="0.01"} 1` + "\n",
		"bulwark_retry_duration_seconds_bucket{" + scope + `,le="0.1"} 3` + "\n",
		"bulwark_retry_duration_seconds_bucket{" + scope + `,le="1"} 3` + "\n",
		"bulwark_retry_duration_seconds_bucket{" + scope + `,le="+Inf"} 4` + "\n",
		"bulwark_retry_duration_seconds_sum{" + scope + "} 5.105\n",
		"bulwark_retry_duration_seconds_count{" + scope + "} 4\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q:\n%s", want, text)
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	for in, want := range map[string]string{":9464": "127.0.0.1:9464", "127.0.0.1:0": "127.0.0.1:0", "[::1]:9464": "[::1]:9464"} {
		if got := loopbackAddr(in); got != want {
			t.Errorf("loopbackAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
