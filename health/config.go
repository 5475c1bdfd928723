package health

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/internal/validate"
)

// CheckFunc checks one dependency: nil means healthy. It must return
// soon after ctx is done (ctx carries the check's Timeout). Any function
// of that shape is a check, e.g. a go-redis ping:
//
//	health.CheckFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
type CheckFunc func(ctx context.Context) error

// Check is one registered check. Name and Func are required; every other
// field's zero value is a documented default.
type Check struct {
	// Name names the check in the JSON report and in errors: 1 to
	// MaxNameLen bytes, unique within a Health.
	Name string
	// Func runs the check. Required.
	Func CheckFunc
	// Timeout bounds one run of Func: Func's ctx is cancelled after it,
	// and a probe waiting for the run reports status "timeout" once it
	// has passed, whether or not Func has returned. Default 1 s
	// (DefaultTimeout, Kubernetes' default probe timeoutSeconds); at most
	// MaxTimeout.
	Timeout time.Duration
	// TTL is how long a result is reused before the check runs again: a
	// probe within TTL of the last run answers from the cache. Default 5 s
	// (DefaultTTL). With Background, the interval between runs. At most
	// MaxTTL.
	TTL time.Duration
	// Background runs the check in a goroutine of its own every TTL from
	// New (or Add) until Close, so that a probe never waits for it (except
	// for the very first result, which a probe waits for as for an
	// on-demand check). Default false: the check runs on demand, when a
	// probe finds its cached result older than TTL.
	Background bool
	// Optional marks a check whose failure is reported but does not fail
	// the probe (the endpoint keeps answering 200). Default false: the
	// check is critical, and its failure fails every probe that runs it.
	Optional bool
	// Liveness makes the check part of the liveness probe too. Liveness
	// probes run only such checks; a liveness check should test the
	// process itself (a deadlocked loop), never a dependency, or an
	// outage will restart every instance at once. Default false.
	Liveness bool
	// Groups names further groups the check belongs to, for
	// [Health.Report] and [Health.Group] and the gRPC health service
	// (whose service names map to groups). The names Ready and Live are
	// reserved. Default none; at most MaxGroups names of 1 to MaxNameLen
	// bytes.
	Groups []string
}

// Config configures a [Health]. The zero Config is valid: no checks, both
// probes healthy.
type Config struct {
	// Checks are the initial checks; more can be added with [Health.Add].
	// At most MaxChecks.
	Checks []Check
	// LivePath and ReadyPath are the paths [Health.Handler] serves,
	// matched exactly against the request's URL path. Defaults "/livez"
	// and "/readyz" (the Kubernetes API server's own). Each must start
	// with "/", and the two must differ.
	LivePath, ReadyPath string
}

// Defaults and bounds, see [Check] and [Config].
const (
	DefaultTimeout   = time.Second
	DefaultTTL       = 5 * time.Second
	DefaultLivePath  = "/livez"
	DefaultReadyPath = "/readyz"
	MaxTimeout       = time.Minute
	MaxTTL           = time.Hour
	MaxChecks        = 1024
	MaxGroups        = 64
	MaxNameLen       = 128
)

// The reserved group names: Ready is every check, Live the checks with
// Check.Liveness set.
const (
	Ready = "ready"
	Live  = "live"
)

// Validate reports the first bad value of c as a *bulwark.ConfigError.
func (c Config) Validate() error {
	v := validate.New("health")
	v.Check(len(c.Checks) <= MaxChecks, "Checks", len(c.Checks), fmt.Sprintf("at most %d checks", MaxChecks))
	seen := map[string]bool{}
	for i, ch := range c.Checks {
		validateCheck(v, fmt.Sprintf("Checks[%d].", i), ch)
		v.Check(!seen[ch.Name], fmt.Sprintf("Checks[%d].Name", i), ch.Name, "a name no other check has")
		seen[ch.Name] = true
	}
	live, ready := c.LivePath, c.ReadyPath
	if live == "" {
		live = DefaultLivePath
	}
	if ready == "" {
		ready = DefaultReadyPath
	}
	v.Check(strings.HasPrefix(live, "/"), "LivePath", c.LivePath, `"" (default) or a path starting with "/"`)
	v.Check(strings.HasPrefix(ready, "/"), "ReadyPath", c.ReadyPath, `"" (default) or a path starting with "/"`)
	v.Check(live != ready, "ReadyPath", c.ReadyPath, "a path other than LivePath")
	return v.Err()
}

func validateCheck(v *validate.V, p string, c Check) {
	v.Check(c.Name != "" && len(c.Name) <= MaxNameLen, p+"Name", c.Name, fmt.Sprintf("1 to %d bytes", MaxNameLen))
	v.Check(c.Func != nil, p+"Func", "nil", "a function")
	v.Duration(p+"Timeout", c.Timeout, MaxTimeout)
	v.Duration(p+"TTL", c.TTL, MaxTTL)
	v.Check(len(c.Groups) <= MaxGroups, p+"Groups", len(c.Groups), fmt.Sprintf("at most %d groups", MaxGroups))
	for k, g := range c.Groups {
		v.Check(g != "" && len(g) <= MaxNameLen && g != Ready && g != Live, fmt.Sprintf("%sGroups[%d]", p, k), g,
			fmt.Sprintf("1 to %d bytes, not %q or %q", MaxNameLen, Ready, Live))
	}
}
