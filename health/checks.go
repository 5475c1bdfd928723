package health

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// BreakerRule says when breaker states fail a check (see [BreakerCheck]).
// A breaker counts as open when its state is Open or ForcedOpen; HalfOpen
// and Disabled do not count (a half-open breaker is already letting probe
// calls through).
type BreakerRule struct {
	// Keys are the members of the Set to watch: the hosts or gRPC
	// methods your service depends on. A key the Set does not hold yet is
	// created, closed. Nil means every member the Set holds when the check
	// runs (breaker.Set.All), so dependencies seen at run time are watched
	// without being named.
	Keys []string
	// Critical are keys of which any one open fails the check (they are
	// watched whether or not Keys lists them).
	Critical []string
	// OpenFraction, in (0, 1], fails the check when at least this
	// fraction of the watched breakers (Keys and Critical together) is
	// open. Default 0.5 (DefaultOpenFraction): half of the dependencies
	// down means the instance cannot serve, and taking it out of the
	// balancer sends its traffic to instances that can.
	OpenFraction float64
}

// DefaultOpenFraction is BreakerRule.OpenFraction's default.
const DefaultOpenFraction = 0.5

// BreakerCheck returns a check of the breakers of set named by rule. It
// fails with an error listing the open keys when a Critical key's breaker
// is open, or when the open fraction of the watched breakers reaches
// OpenFraction; otherwise (and when nothing is watched) it passes. It
// reads states only; it never calls through a breaker. It panics with a
// *bulwark.ConfigError if rule.OpenFraction is out of range, and if set
// is nil.
func BreakerCheck(set *breaker.Set, rule BreakerRule) CheckFunc {
	if set == nil {
		panic("health: BreakerCheck called with a nil set")
	}
	v := validate.New("health")
	v.Fraction("BreakerRule.OpenFraction", rule.OpenFraction)
	if err := v.Err(); err != nil {
		panic(err)
	}
	frac := rule.OpenFraction
	if frac == 0 {
		frac = DefaultOpenFraction
	}
	critical := map[string]bool{}
	var keys []string
	for _, k := range rule.Critical {
		if !critical[k] {
			critical[k] = true
			keys = append(keys, k)
		}
	}
	for _, k := range rule.Keys {
		if !critical[k] {
			keys = append(keys, k)
		}
	}
	all := rule.Keys == nil
	return func(context.Context) error {
		keys := keys
		if all {
			keys = slices.Clip(keys)
			for k := range set.All() {
				if !critical[k] {
					keys = append(keys, k)
				}
			}
		}
		var open, critOpen []string
		for _, k := range keys {
			if s := set.Get(k).State(); s == breaker.Open || s == breaker.ForcedOpen {
				open = append(open, k)
				if critical[k] {
					critOpen = append(critOpen, k)
				}
			}
		}
		switch {
		case len(critOpen) > 0:
			return fmt.Errorf("health: critical breakers open: %s", strings.Join(critOpen, ", "))
		case len(keys) > 0 && float64(len(open))/float64(len(keys)) >= frac:
			return fmt.Errorf("health: %d of %d breakers open: %s", len(open), len(keys), strings.Join(open, ", "))
		}
		return nil
	}
}

// Endpoints is what [EndpointCheck] needs of a load balancer: how many of
// its endpoints are healthy (not ejected, breaker not open) and how many
// it has. A balancer satisfies it with one method; any other source with
// [EndpointsFunc].
type Endpoints interface {
	EndpointHealth() (healthy, total int)
}

// EndpointsFunc adapts a function to [Endpoints].
type EndpointsFunc func() (healthy, total int)

// EndpointHealth returns f().
func (f EndpointsFunc) EndpointHealth() (healthy, total int) { return f() }

// EndpointCheck returns a check that fails when fewer than minHealthy of
// e's endpoints are healthy (a minHealthy of zero or less means 1). It
// panics if e is nil.
func EndpointCheck(e Endpoints, minHealthy int) CheckFunc {
	if e == nil {
		panic("health: EndpointCheck called with a nil Endpoints")
	}
	minHealthy = max(minHealthy, 1)
	return func(context.Context) error {
		healthy, total := e.EndpointHealth()
		if healthy < minHealthy {
			return fmt.Errorf("health: %d of %d endpoints healthy, want at least %d", healthy, total, minHealthy)
		}
		return nil
	}
}
