// Package validate checks Config values the same way in every package, so
// that the rules of CONTRIBUTING.md ("Config values") hold everywhere:
// zero means the documented default, a negative value means "off" only
// where a field says so, and NaN, infinities, out-of-range values and sizes
// past their bound are errors naming the field and the allowed range.
//
// Usage, in a Config's Validate method:
//
//	v := validate.New("breaker")
//	v.Fraction("FailureRate", c.FailureRate)
//	v.Size("WindowSize", c.WindowSize, MaxWindowSize)
//	return v.Err()
package validate

import (
	"fmt"
	"math"
	"time"

	"github.com/bulwark-go/bulwark"
)

// V collects the first bad value of one Config. The zero V is not usable;
// create one with [New].
type V struct {
	pkg string
	err *bulwark.ConfigError
}

// New returns a validator for a Config of package pkg.
func New(pkg string) *V { return &V{pkg: pkg} }

// Err returns the first bad value found, as a [*bulwark.ConfigError], or
// nil.
func (v *V) Err() error {
	if v.err == nil {
		return nil
	}
	return v.err
}

// Check records field as bad, with value and what is allowed, unless ok.
// Only the first bad field is kept.
func (v *V) Check(ok bool, field string, value any, allowed string) {
	if !ok && v.err == nil {
		v.err = &bulwark.ConfigError{Package: v.pkg, Field: field, Value: value, Allowed: allowed}
	}
}

// Fraction checks a rate in (0, 1], with 0 meaning the default.
func (v *V) Fraction(field string, x float64) {
	v.Check(x == 0 || (x > 0 && x <= 1), field, x, "0 (default) or a value in (0, 1]")
}

// Float checks a finite x in [lo, hi], with 0 meaning the default.
func (v *V) Float(field string, x, lo, hi float64) {
	v.Check(x == 0 || (!math.IsNaN(x) && x >= lo && x <= hi), field, x,
		fmt.Sprintf("0 (default) or a value in [%g, %g]", lo, hi))
}

// Duration checks a d in [0, max], with 0 meaning the default. A max of
// zero or less means no upper bound.
func (v *V) Duration(field string, d, max time.Duration) {
	if max > 0 {
		v.Check(d >= 0 && d <= max, field, d, fmt.Sprintf("0 (default) or a duration up to %v", max))
		return
	}
	v.Check(d >= 0, field, d, "0 (default) or a positive duration")
}

// DurationOrOff is Duration for a field where a negative value means off.
func (v *V) DurationOrOff(field string, d, max time.Duration) {
	if d < 0 {
		return
	}
	v.Duration(field, d, max)
}

// Size checks a count or size n in [0, max], with 0 meaning the default.
func (v *V) Size(field string, n, max int) {
	v.Check(n >= 0 && n <= max, field, n, fmt.Sprintf("0 (default) or a value in [1, %d]", max))
}
