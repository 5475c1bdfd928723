package breaker_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
)

// TestConfigBadValuesFailLoudly: every bad value is reported by Validate,
// naming the field, and New panics with the same *bulwark.ConfigError
// (the sizes before any allocation: a WindowSize of math.MaxInt32 once
// made New try to allocate 16 GiB).
func TestConfigBadValuesFailLoudly(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		field string
		cfg   breaker.Config
	}{
		{"FailureRate", breaker.Config{FailureRate: 1.5}},
		{"FailureRate", breaker.Config{FailureRate: 10}},
		{"FailureRate", breaker.Config{FailureRate: nan}},
		{"FailureRate", breaker.Config{FailureRate: -0.5}},
		{"SlowCallRate", breaker.Config{SlowCallRate: nan}},
		{"SlowCallRate", breaker.Config{SlowCallRate: 2}},
		{"WindowSize", breaker.Config{WindowSize: math.MaxInt}},
		{"WindowSize", breaker.Config{WindowSize: math.MaxInt32}},
		{"WindowSize", breaker.Config{WindowSize: breaker.MaxWindowSize + 1}},
		{"WindowSize", breaker.Config{WindowSize: -1}},
		{"WindowBuckets", breaker.Config{WindowDuration: time.Minute, WindowBuckets: math.MaxInt}},
		{"WindowBuckets", breaker.Config{WindowBuckets: -3}},
		{"WindowDuration", breaker.Config{WindowDuration: -time.Second}},
		{"WindowDuration", breaker.Config{WindowDuration: math.MaxInt64}},
		{"ConsecutiveFailures", breaker.Config{ConsecutiveFailures: -1}},
		{"MinimumCalls", breaker.Config{MinimumCalls: -1}},
		{"SlowCallDuration", breaker.Config{SlowCallDuration: -1}},
		{"OpenDuration", breaker.Config{OpenDuration: math.MaxInt64}},
		{"OpenDuration", breaker.Config{OpenDuration: -time.Second}},
		{"MaxOpenDuration", breaker.Config{MaxOpenDuration: math.MaxInt64}},
		{"MaxOpenDuration", breaker.Config{OpenDuration: time.Minute, MaxOpenDuration: time.Second}},
		{"OpenDurationGrowth", breaker.Config{OpenDurationGrowth: nan}},
		{"OpenDurationGrowth", breaker.Config{OpenDurationGrowth: 0.5}},
		{"OpenDurationGrowth", breaker.Config{OpenDurationGrowth: math.Inf(1)}},
		{"OpenJitter", breaker.Config{OpenJitter: nan}},
		{"OpenJitter", breaker.Config{OpenJitter: 5}},
		{"OpenJitter", breaker.Config{OpenJitter: math.Inf(-1)}},
		{"HalfOpenProbes", breaker.Config{HalfOpenProbes: -2}},
		{"HalfOpenMaxWait", breaker.Config{HalfOpenMaxWait: -1}},
		{"HalfOpenMaxWait", breaker.Config{HalfOpenMaxWait: 48 * time.Hour}},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		var ce *bulwark.ConfigError
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) || ce.Field != c.field || ce.Package != "breaker" {
			t.Errorf("%+v: Validate = %v, want a ConfigError for %s", c.cfg, err, c.field)
			continue
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Errorf("error %q does not name %s", err, c.field)
		}
		func() {
			defer func() {
				r := recover()
				if pe, _ := r.(error); !errors.As(pe, &ce) || ce.Field != c.field {
					t.Errorf("%+v: New panicked with %v, want the ConfigError for %s", c.cfg, r, c.field)
				}
			}()
			breaker.New(c.cfg)
			t.Errorf("%+v: New did not panic", c.cfg)
		}()
		func() {
			defer func() {
				r := recover()
				if pe, _ := r.(error); !errors.As(pe, &ce) || ce.Field != "Config."+c.field {
					t.Errorf("%+v: NewSet panicked with %v, want the ConfigError for Config.%s", c.cfg, r, c.field)
				}
			}()
			breaker.NewSet(breaker.SetConfig{Config: c.cfg})
		}()
	}
	for _, sc := range []breaker.SetConfig{{MaxKeys: -1}, {IdleTimeout: -time.Second}} {
		if err := sc.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: Validate = %v", sc, err)
		}
	}
}

// TestConfigGoodValues: zero, the documented "off" values and the bounds
// themselves are accepted.
func TestConfigGoodValues(t *testing.T) {
	good := []breaker.Config{
		{},
		{FailureRate: 1, SlowCallRate: 1, OpenJitter: 1},
		{OpenJitter: -1},
		{OpenJitter: -0.5},
		{WindowSize: breaker.MaxWindowSize, WindowBuckets: breaker.MaxWindowBuckets},
		{OpenDuration: breaker.MaxDuration, MaxOpenDuration: breaker.MaxDuration, OpenDurationGrowth: breaker.MaxOpenDurationGrowth},
		{OpenDuration: 2 * time.Minute}, // past the default cap: the cap follows it
		{ConsecutiveFailures: 6, OpenDuration: 60 * time.Second, OpenDurationGrowth: 1, OpenJitter: -1},
	}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
			continue
		}
		b := breaker.New(c)
		b.Close()
	}
	if err := (breaker.SetConfig{}).Validate(); err != nil {
		t.Error(err)
	}
}
