package retry_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/retry"
)

// Bad values fail loudly at construction, naming the field (issue 6; issue
// 7 item 4: a NaN in BudgetConfig switched the budget off).
func TestBadConfigFailsLoudly(t *testing.T) {
	for _, tc := range []struct {
		field string
		cfg   retry.Config
	}{
		{"MaxAttempts", retry.Config{MaxAttempts: -1}},
		{"BaseDelay", retry.Config{BaseDelay: -time.Second}},
		{"MaxDelay", retry.Config{MaxDelay: -1}},
		{"Jitter", retry.Config{Jitter: retry.NoJitter + 1}},
		{"MaxDuration", retry.Config{MaxDuration: -time.Second}},
		{"MaxBufferedBody", retry.Config{MaxBufferedBody: math.MaxInt64}},
		{"Hedge.Delay", retry.Config{Hedge: retry.HedgeConfig{Delay: -time.Millisecond}}},
		{"Hedge.Percentile", retry.Config{Hedge: retry.HedgeConfig{Percentile: math.NaN()}}},
		{"Hedge.Percentile", retry.Config{Hedge: retry.HedgeConfig{Percentile: 1}}},
		{"Hedge.Percentile", retry.Config{Hedge: retry.HedgeConfig{Percentile: -0.5}}},
		{"Hedge.MaxInFlight", retry.Config{Hedge: retry.HedgeConfig{Delay: time.Second, MaxInFlight: -1}}},
		{"Hedge.MaxInFlight", retry.Config{Hedge: retry.HedgeConfig{Delay: time.Second, MaxInFlight: math.MaxInt}}},
	} {
		err := tc.cfg.Validate()
		var ce *bulwark.ConfigError
		if !errors.As(err, &ce) || ce.Package != "retry" || ce.Field != tc.field || !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v", tc.field, err)
			continue
		}
		got := func() (v any) {
			defer func() { v = recover() }()
			retry.New(tc.cfg)
			return nil
		}()
		if e, ok := got.(*bulwark.ConfigError); !ok || e.Field != tc.field {
			t.Errorf("%s: New panicked with %v, want the *bulwark.ConfigError", tc.field, got)
		}
	}
	for _, tc := range []struct {
		field string
		cfg   retry.BudgetConfig
	}{
		{"Budget.Ratio", retry.BudgetConfig{Ratio: math.NaN()}},
		{"Budget.Ratio", retry.BudgetConfig{Ratio: math.Inf(1)}},
		{"Budget.Ratio", retry.BudgetConfig{Ratio: -0.1}},
		{"Budget.MinPerSecond", retry.BudgetConfig{MinPerSecond: math.NaN()}},
		{"Budget.MinPerSecond", retry.BudgetConfig{MinPerSecond: math.Inf(1)}},
		{"Budget.MinPerSecond", retry.BudgetConfig{MinPerSecond: math.Inf(-1)}},
		{"Budget.Window", retry.BudgetConfig{Window: -time.Second}},
	} {
		var ce *bulwark.ConfigError
		if err := tc.cfg.Validate(); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%s: Validate() = %v", tc.field, err)
		}
		got := func() (v any) {
			defer func() { v = recover() }()
			retry.NewBudget(tc.cfg)
			return nil
		}()
		if e, ok := got.(*bulwark.ConfigError); !ok || e.Field != tc.field {
			t.Errorf("%s: NewBudget panicked with %v", tc.field, got)
		}
	}
	// Valid edges: zero values, "off" values, math.MaxInt attempts.
	for _, cfg := range []retry.Config{
		{}, {MaxAttempts: math.MaxInt}, {MaxPushback: -1}, {MaxBufferedBody: -1},
		{MaxBufferedBody: retry.MaxBufferedBodyLimit}, {Hedge: retry.HedgeConfig{Percentile: 0.95, MaxInFlight: retry.MaxInFlightLimit}},
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if err := (retry.BudgetConfig{MinPerSecond: -1, Ratio: retry.MaxBudgetRatio}).Validate(); err != nil {
		t.Error(err)
	}
}

// Close is idempotent: calls after the first return nil.
func TestCloseIdempotent(t *testing.T) {
	p := retry.New(retry.Config{})
	for range 3 {
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseFromManyGoroutinesStopsMetrics: Close may be called from several
// goroutines at once (CONTRIBUTING.md, "Closing"); afterwards the policy's
// metrics are gone from the reader and the policy still works.
func TestCloseFromManyGoroutinesStopsMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	p := retry.New(retry.Config{Name: "db", MeterProvider: mp})
	if err := p.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				out = append(out, m.Name)
			}
		}
		return out
	}
	if got := names(); !slices.Contains(got, "bulwark.retry.attempts") {
		t.Fatalf("metrics before Close: %v, want bulwark.retry.attempts", got)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := names(); slices.Contains(got, "bulwark.retry.attempts") || slices.Contains(got, "bulwark.retry.exhaustions") {
		t.Fatalf("metrics after Close: %v, want no observable retry instrument", got)
	}
	if err := p.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("Do after Close: %v", err)
	}
}
