package retry_test

import (
	"errors"
	"math"
	"testing"
	"time"

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
