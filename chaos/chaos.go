package chaos

import (
	"context"
	"math"
	"math/rand/v2"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// Injector injects the faults of its fault set into the traffic that
// passes through its RoundTripper, Handler or gRPC interceptors (package
// grpcx). Create one with [New]; the zero Injector is not usable. An
// Injector is safe for concurrent use: Enable, Disable and SetFaults may be
// called at any time while traffic flows, and take effect for the next
// request.
type Injector struct {
	// enabled is the whole cost of a disabled injector: one atomic load.
	enabled atomic.Bool
	faults  atomic.Pointer[faultSet]
	seed    uint64
	seq     atomic.Uint64
	header  string
	name    string
	clk     clock.Clock

	mu     sync.Mutex // SetFaults, counters
	counts map[counterKey]*atomic.Int64
	tel    *telemetryState
}

type counterKey struct {
	name   string
	action Action
}

// faultSet is an immutable snapshot of the faults, swapped whole.
type faultSet struct{ rules []rule }

type rule struct {
	Fault
	n *atomic.Int64
}

// New returns an injector configured by cfg. It panics with a
// *bulwark.ConfigError if cfg is not valid (see [Config.Validate]).
func New(cfg Config) *Injector {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	i := &Injector{seed: cfg.Seed, header: cfg.Header, name: cfg.Name, clk: clock.Real,
		counts: map[counterKey]*atomic.Int64{}}
	if i.seed == 0 {
		i.seed = rand.Uint64()
	}
	if i.header == "" {
		i.header = DefaultHeader
	}
	i.header = textproto.CanonicalMIMEHeaderKey(i.header) // looked up directly per request
	i.faults.Store(i.compile(cfg.Faults))
	i.enabled.Store(cfg.Enabled)
	i.tel = newTelemetry(i, cfg.MeterProvider)
	return i
}

// compile resolves defaults and binds each fault to its counter. It takes
// i.mu itself.
func (i *Injector) compile(fs []Fault) *faultSet {
	i.mu.Lock()
	defer i.mu.Unlock()
	s := &faultSet{rules: make([]rule, len(fs))}
	for k, f := range fs {
		if f.Probability == 0 {
			f.Probability = DefaultProbability
		}
		if f.HTTPStatus == 0 {
			f.HTTPStatus = DefaultHTTPStatus
		}
		if f.GRPCCode == 0 {
			f.GRPCCode = DefaultGRPCCode
		}
		if f.Latency.Shape == 0 {
			f.Latency.Shape = DefaultShape
		}
		if f.Name == "" {
			f.Name = f.Action.String()
			if f.Action == None {
				f.Name = "latency"
			}
		}
		f.Methods = append([]string(nil), f.Methods...)
		key := counterKey{f.Name, f.Action}
		n := i.counts[key]
		if n == nil {
			n = new(atomic.Int64)
			i.counts[key] = n
		}
		s.rules[k] = rule{Fault: f, n: n}
	}
	return s
}

// Enable starts injecting faults.
func (i *Injector) Enable() { i.enabled.Store(true) }

// Disable stops injecting faults; requests already delayed finish their
// delay. A disabled injector costs each request one atomic load.
func (i *Injector) Disable() { i.enabled.Store(false) }

// Enabled reports whether the injector is enabled.
func (i *Injector) Enabled() bool { return i.enabled.Load() }

// SetFaults replaces the fault set (nil removes every fault). It returns a
// *bulwark.ConfigError, leaving the set unchanged, if a fault is not
// valid. Counts of a fault that keeps its Name and Action carry on.
func (i *Injector) SetFaults(fs []Fault) error {
	if err := (Config{Faults: fs}).Validate(); err != nil {
		return err
	}
	i.faults.Store(i.compile(fs))
	return nil
}

// Faults returns a copy of the current fault set, defaults filled in.
func (i *Injector) Faults() []Fault {
	rs := i.faults.Load().rules
	out := make([]Fault, len(rs))
	for k, r := range rs {
		out[k] = r.Fault
		out[k].Methods = append([]string(nil), r.Methods...)
	}
	return out
}

// Injected returns how many times each fault has been injected since New,
// by fault Name (summed over actions if two faults share a name).
func (i *Injector) Injected() map[string]int64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	m := make(map[string]int64, len(i.counts))
	for k, n := range i.counts {
		m[k.name] += n.Load()
	}
	return m
}

// Close unregisters the injector's metric callback. The injector keeps
// working (and counting) afterwards. Close is safe to call more than once.
func (i *Injector) Close() error {
	i.tel.close()
	return nil
}

// plan is what to do to one request.
type plan struct {
	delay  time.Duration
	action Action
	name   string
	status int // HTTP status or gRPC code
	grpc   int
}

// pick returns the plan for a request, and false if no fault hits it. It
// counts the fault it picks.
func (i *Injector) pick(path, method, drill string, hasMethod bool) (plan, bool) {
	rs := i.faults.Load().rules
	for k := range rs {
		r := &rs[k]
		if !r.targets(path, method, drill, hasMethod) {
			continue
		}
		if r.Probability < 1 && i.float() >= r.Probability {
			continue
		}
		r.n.Add(1)
		return plan{delay: i.delay(&r.Latency), action: r.Action, name: r.Name, status: r.HTTPStatus, grpc: r.GRPCCode}, true
	}
	return plan{}, false
}

func (r *rule) targets(path, method, drill string, hasMethod bool) bool {
	if !r.AllTraffic {
		if drill == "" || (r.Drill != "" && drill != r.Drill) {
			return false
		}
	}
	if len(path) < len(r.PathPrefix) || path[:len(r.PathPrefix)] != r.PathPrefix {
		return false
	}
	if r.Methods == nil {
		return true
	}
	if !hasMethod {
		return false
	}
	for _, m := range r.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// uint64 returns the next value of the seeded source: SplitMix64 over a
// shared sequence number, which is lock-free, and repeatable for a given
// seed and order of requests.
func (i *Injector) uint64() uint64 {
	z := i.seed + i.seq.Add(1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform value in [0, 1).
func (i *Injector) float() float64 { return float64(i.uint64()>>11) / (1 << 53) }

// delay draws a delay from l.
func (i *Injector) delay(l *Latency) time.Duration {
	var d float64
	switch l.Dist {
	case Fixed:
		d = float64(l.Delay)
	case Uniform:
		d = float64(l.Delay) + i.float()*float64(l.Spread)
	case Normal:
		// Box–Muller; 1-u keeps the logarithm's argument in (0, 1].
		u1, u2 := 1-i.float(), i.float()
		d = float64(l.Delay) + float64(l.Spread)*math.Sqrt(-2*math.Log(u1))*math.Cos(2*math.Pi*u2)
	case Pareto:
		d = float64(l.Delay) / math.Pow(1-i.float(), 1/l.Shape)
	}
	limit := float64(MaxDelay)
	if l.Max > 0 {
		limit = float64(l.Max)
	}
	if !(d < limit) { // also catches +Inf and NaN
		d = limit
	}
	return time.Duration(max(d, 0))
}

// sleep waits for d or until ctx is done; it returns context.Cause(ctx) in
// the latter case.
func (i *Injector) sleep(ctx context.Context, d time.Duration) error {
	return clock.Sleep(ctx, i.clk, d)
}

// Do runs fn with the faults targeted at path (an operation name: methods
// and drill header do not apply, so only faults with AllTraffic set and
// Methods nil can hit it). It adds the fault's latency, then: for Error
// and Abort returns a [*FaultError] without calling fn; for Drop calls fn
// and returns a *FaultError in place of its result. A ctx that ends during
// the latency returns context.Cause(ctx) without calling fn. Do panics if
// ctx or fn is nil.
func (i *Injector) Do(ctx context.Context, path string, fn func(context.Context) error) error {
	if ctx == nil {
		panic("chaos: Injector.Do called with a nil ctx")
	}
	if fn == nil {
		panic("chaos: Injector.Do called with a nil fn")
	}
	if !i.enabled.Load() {
		return fn(ctx)
	}
	p, ok := i.pick(path, "", "", false)
	if !ok {
		return fn(ctx)
	}
	if err := i.sleep(ctx, p.delay); err != nil {
		return err
	}
	switch p.action {
	case Error, Abort:
		return &FaultError{Fault: p.name, Action: p.action}
	case Drop:
		_ = fn(ctx)
		return &FaultError{Fault: p.name, Action: p.action}
	}
	return fn(ctx)
}
