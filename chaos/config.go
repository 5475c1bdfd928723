package chaos

import (
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Action is what a fault does to a request, after its latency (if any).
type Action uint8

// The actions.
const (
	// None adds the fault's latency and nothing else.
	None Action = iota
	// Error answers in place of the server: HTTP status Fault.HTTPStatus,
	// or gRPC code Fault.GRPCCode. The request never reaches the server.
	Error
	// Abort fails the exchange as a broken connection would, without the
	// request reaching the server. Client side: RoundTrip returns a
	// [*FaultError] (a transport error), a gRPC call codes.Unavailable.
	// Server side: the connection is closed (hijacked and closed over
	// HTTP/1, the stream reset over HTTP/2) without an answer; a gRPC
	// server returns codes.Unavailable.
	Abort
	// Drop lets the server do all of its work, then loses the response:
	// the client sees a transport error (HTTP) or codes.Unavailable
	// (gRPC), although the request took effect. This is the fault an
	// Idempotency-Key exists for.
	Drop
	numActions
)

var actionNames = [...]string{"none", "error", "abort", "drop"}

// String returns "none", "error", "abort" or "drop".
func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Dist is the distribution the added latency is drawn from.
type Dist uint8

// The distributions. Each draws from the Injector's seeded source.
const (
	// Fixed adds exactly Latency.Delay.
	Fixed Dist = iota
	// Uniform adds a delay uniform in [Delay, Delay+Spread).
	Uniform
	// Normal adds a normally distributed delay of mean Delay and standard
	// deviation Spread, clamped at zero.
	Normal
	// Pareto adds a heavy-tailed delay: Delay (the minimum, the scale)
	// divided by U^(1/Shape) for U uniform in (0, 1]; most requests get
	// about Delay, a few get many times more, as real tail latency does.
	Pareto
	numDists
)

// Latency is the delay a fault adds before its action. The zero Latency
// adds none. Every drawn delay is capped at Max (if set) and at
// [MaxDelay].
type Latency struct {
	// Dist is the distribution. Default Fixed.
	Dist Dist
	// Delay is the fixed delay (Fixed), the minimum (Uniform, Pareto) or
	// the mean (Normal). Default 0. At most MaxDelay.
	Delay time.Duration
	// Spread is the width (Uniform) or the standard deviation (Normal);
	// unused by Fixed and Pareto. Default 0. At most MaxDelay.
	Spread time.Duration
	// Shape is Pareto's shape parameter α; smaller is heavier-tailed.
	// Default 1.16, the shape of the 80/20 rule. In [0.1, 100].
	Shape float64
	// Max caps every drawn delay. Default 0: capped at MaxDelay only.
	Max time.Duration
}

// Defaults and bounds, see [Config], [Fault] and [Latency].
const (
	// DefaultHeader is Config.Header's default.
	DefaultHeader = "Bulwark-Chaos"
	// DefaultProbability is Fault.Probability's default: every targeted
	// request.
	DefaultProbability = 1.0
	// DefaultHTTPStatus is Fault.HTTPStatus's default.
	DefaultHTTPStatus = 503
	// DefaultGRPCCode is Fault.GRPCCode's default, codes.Unavailable.
	DefaultGRPCCode = 14
	// DefaultShape is Latency.Shape's default for Pareto.
	DefaultShape = 1.16
	// MaxDelay bounds every added delay.
	MaxDelay = time.Hour
	// MaxFaults bounds the length of a fault set.
	MaxFaults = 1024
)

// Fault is one kind of injected failure and the traffic it targets. A
// request is targeted when it matches PathPrefix, Methods and the drill
// header rule (Drill, AllTraffic); a targeted request is hit with
// Probability. The zero Fault is not valid: it must add latency or have
// an Action.
type Fault struct {
	// Name names the fault in the metric (the bulwark.chaos.fault
	// attribute), in [FaultError] and in the Bulwark-Chaos-Fault header of
	// injected HTTP errors. Default: the Action's name ("latency" when
	// Action is None).
	Name string

	// Probability, in (0, 1], is the chance that a targeted request is
	// hit. Default 1 (DefaultProbability): every targeted request.
	Probability float64
	// PathPrefix targets requests whose URL path (for gRPC, the full
	// method name "/pkg.Service/Method") starts with it. Default "": every
	// path.
	PathPrefix string
	// Methods targets requests with one of these HTTP methods. Default
	// nil: every method. gRPC calls have no HTTP method and are targeted
	// only when Methods is nil.
	Methods []string
	// Drill, when set, targets only requests whose drill header
	// (Config.Header; for gRPC, the same name as lower-case metadata) has
	// exactly this value. When empty, any request carrying the header
	// with a non-empty value is targeted. Either way, requests without
	// the header are left alone unless AllTraffic is set.
	Drill string
	// AllTraffic targets requests whatever their drill header says,
	// production traffic included. Default false: only drill traffic.
	AllTraffic bool

	// Latency is added before the action. Default: none.
	Latency Latency
	// Action is what happens after the latency. Default None.
	Action Action
	// HTTPStatus is the status of an Error over HTTP. Default 503; in
	// [400, 599].
	HTTPStatus int
	// GRPCCode is the gRPC status code (google.golang.org/grpc/codes
	// value) of an Error over gRPC. Default 14 (Unavailable); in [1, 16].
	GRPCCode int
}

// Config configures an [Injector]. The zero Config is valid and safe: an
// injector that is disabled and has no faults.
type Config struct {
	// Name names the injector in telemetry (the bulwark.name attribute).
	// Default "".
	Name string
	// Enabled starts the injector enabled. Default false: nothing is
	// injected until [Injector.Enable].
	Enabled bool
	// Header is the drill header that marks drill traffic (see
	// Fault.Drill). Default "Bulwark-Chaos". It must be a header field
	// name (an RFC 9110 token).
	Header string
	// Faults is the initial fault set, tried in order: a request gets at
	// most one fault, the first that targets it and whose coin lands.
	// Default none. At most MaxFaults; replace it at run time with
	// [Injector.SetFaults].
	Faults []Fault
	// Seed seeds the source of the probability coins and the latency
	// draws, so that a drill (and a test) is repeatable. Default 0: a
	// random seed.
	Seed uint64
	// MeterProvider receives the fault counter; nil means the global
	// provider.
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad value of c as a *bulwark.ConfigError.
func (c Config) Validate() error {
	v := validate.New("chaos")
	v.Check(c.Header == "" || httpx.IsToken(c.Header), "Header", c.Header, "a header field name (an RFC 9110 token)")
	validateFaults(v, "Faults", c.Faults)
	return v.Err()
}

func validateFaults(v *validate.V, field string, fs []Fault) {
	v.Check(len(fs) <= MaxFaults, field, len(fs), fmt.Sprintf("at most %d faults", MaxFaults))
	for i, f := range fs {
		p := fmt.Sprintf("%s[%d].", field, i)
		v.Fraction(p+"Probability", f.Probability)
		v.Check(f.Action < numActions, p+"Action", f.Action, "None, Error, Abort or Drop")
		v.Check(f.HTTPStatus == 0 || (f.HTTPStatus >= 400 && f.HTTPStatus <= 599), p+"HTTPStatus", f.HTTPStatus, "0 (default) or a status in [400, 599]")
		v.Check(f.GRPCCode >= 0 && f.GRPCCode <= 16, p+"GRPCCode", f.GRPCCode, "0 (default) or a code in [1, 16]")
		l := f.Latency
		v.Check(l.Dist < numDists, p+"Latency.Dist", l.Dist, "Fixed, Uniform, Normal or Pareto")
		v.Duration(p+"Latency.Delay", l.Delay, MaxDelay)
		v.Duration(p+"Latency.Spread", l.Spread, MaxDelay)
		v.Duration(p+"Latency.Max", l.Max, MaxDelay)
		v.Check(l.Shape == 0 || (!math.IsNaN(l.Shape) && l.Shape >= 0.1 && l.Shape <= 100), p+"Latency.Shape", l.Shape, "0 (default) or a value in [0.1, 100]")
		v.Check(f.Action != None || l.Delay > 0 || l.Spread > 0, p+"Action", f.Action, "an Action, or a Latency that adds a delay")
	}
}
