package validate

import (
	"errors"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRules(t *testing.T) {
	bad := []func(v *V){
		func(v *V) { v.Fraction("F", math.NaN()) },
		func(v *V) { v.Fraction("F", 1.5) },
		func(v *V) { v.Fraction("F", 10) },
		func(v *V) { v.Fraction("F", -0.1) },
		func(v *V) { v.Float("F", math.Inf(1), 1, 10) },
		func(v *V) { v.Float("F", math.NaN(), 1, 10) },
		func(v *V) { v.Float("F", 0.5, 1, 10) },
		func(v *V) { v.Duration("D", -1, 0) },
		func(v *V) { v.Duration("D", time.Hour, time.Minute) },
		func(v *V) { v.DurationOrOff("D", time.Hour, time.Minute) },
		func(v *V) { v.Size("S", math.MaxInt, 1<<20) },
		func(v *V) { v.Size("S", -1, 10) },
	}
	for i, f := range bad {
		v := New("pkg")
		f(v)
		if err := v.Err(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("bad case %d: Err() = %v, want an ErrInvalidConfig", i, err)
		}
	}
	good := []func(v *V){
		func(v *V) { v.Fraction("F", 0) },
		func(v *V) { v.Fraction("F", 1) },
		func(v *V) { v.Float("F", 0, 1, 10) },
		func(v *V) { v.Float("F", 10, 1, 10) },
		func(v *V) { v.Duration("D", 0, time.Minute) },
		func(v *V) { v.Duration("D", time.Hour, 0) },
		func(v *V) { v.DurationOrOff("D", -1, time.Minute) },
		func(v *V) { v.Size("S", 1<<20, 1<<20) },
	}
	for i, f := range good {
		v := New("pkg")
		f(v)
		if err := v.Err(); err != nil {
			t.Errorf("good case %d: Err() = %v", i, err)
		}
	}
}

func TestFirstErrorKept(t *testing.T) {
	v := New("breaker")
	v.Fraction("FailureRate", 2)
	v.Size("WindowSize", -1, 10)
	var ce *bulwark.ConfigError
	if !errors.As(v.Err(), &ce) || ce.Field != "FailureRate" || ce.Package != "breaker" {
		t.Fatalf("Err() = %v, want the FailureRate error", v.Err())
	}
}
