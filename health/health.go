package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Status is the status of a check or of a whole report.
type Status string

// The statuses.
const (
	// StatusOK: the check passed (for a report: no critical check
	// failed).
	StatusOK Status = "ok"
	// StatusFail: the check returned an error or panicked (for a report:
	// a critical check did not pass).
	StatusFail Status = "fail"
	// StatusTimeout: the check did not return within its Timeout.
	StatusTimeout Status = "timeout"
)

// ErrClosed is the error of [Health.Add] after Close.
var ErrClosed = errors.New("health: closed")

// Result is the latest result of one check.
type Result struct {
	// Status is ok, fail or timeout.
	Status Status
	// Error is the check's error message: for a timeout, "timeout after
	// <Timeout>", or, when the probe's own context ended before the check
	// answered, "probe ended before the check: <cause>" (Status is then
	// timeout too); empty when Status is ok.
	Error string
	// Duration is how long the run took (its Timeout for a timeout; how
	// long the probe waited, when the probe's context ended first).
	Duration time.Duration
	// Checked is when the run started.
	Checked time.Time
	// Critical reports whether a failure of the check fails the probe
	// (Check.Optional is false).
	Critical bool
}

// Report is the result of a probe: the overall status and each check's
// result by name.
type Report struct {
	// Status is StatusOK unless a critical check of the probe did not
	// pass, StatusFail then.
	Status Status
	// Checks holds every check the probe ran, by Name.
	Checks map[string]Result
}

// Health runs registered checks for liveness and readiness probes, over
// HTTP ([Health.Handler], [Health.Liveness], [Health.Readiness]) and gRPC
// (grpcx.HealthServer). Create one with [New]; the zero Health is not
// usable. A Health is safe for concurrent use. Call Close to stop the
// background checks.
type Health struct {
	cfg    Config
	clk    clock.Clock
	checks atomic.Pointer[[]*check] // copy on write
	mu     sync.Mutex               // Add, Close
	ctx    context.Context          // cancelled by Close: ends loops and runs
	cancel context.CancelFunc
	loops  sync.WaitGroup
	closed bool
}

// check is one registered check and its cached result.
type check struct {
	Check
	mu     sync.Mutex
	last   *Result // nil before the first result
	flight *flight // the run in progress, if any
}

// flight is one run of a check; done is closed when it has a result.
type flight struct {
	start    time.Time
	deadline time.Time
	done     chan struct{}
	res      Result
}

// New returns a Health with cfg's checks; background checks start at
// once. It panics with a *bulwark.ConfigError if cfg is not valid.
func New(cfg Config) *Health {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.LivePath == "" {
		cfg.LivePath = DefaultLivePath
	}
	if cfg.ReadyPath == "" {
		cfg.ReadyPath = DefaultReadyPath
	}
	h := &Health{cfg: cfg, clk: clock.Real}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	empty := []*check{}
	h.checks.Store(&empty)
	for _, c := range cfg.Checks {
		_ = h.Add(c) // validated above
	}
	return h
}

// Add registers a check (a background check starts at once). It returns a
// *bulwark.ConfigError if c is not valid or its Name is taken, and
// [ErrClosed] after Close.
func (h *Health) Add(c Check) error {
	v := validate.New("health")
	validateCheck(v, "Check.", c)
	if err := v.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	old := *h.checks.Load()
	v.Check(len(old) < MaxChecks, "Checks", len(old)+1, fmt.Sprintf("at most %d checks", MaxChecks))
	for _, o := range old {
		v.Check(o.Name != c.Name, "Check.Name", c.Name, "a name no other check has")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	c.Groups = slices.Clone(c.Groups)
	ch := &check{Check: c}
	next := append(slices.Clip(old), ch)
	h.checks.Store(&next)
	if c.Background {
		h.loops.Add(1)
		go h.loop(ch)
	}
	return nil
}

// loop refreshes a background check every TTL until Close.
func (h *Health) loop(c *check) {
	defer h.loops.Done()
	for {
		f := h.start(c)
		h.wait(h.ctx, c, f)
		t := h.clk.NewTimer(c.TTL)
		select {
		case <-t.C():
		case <-h.ctx.Done():
			t.Stop()
			return
		}
	}
}

// Close stops the background checks, cancels the context of every run in
// progress and waits for the background loops to end (each within its
// check's Timeout). A check function that ignores its context keeps its
// own goroutine until it returns. Probes still work after Close: on-demand
// checks run as before (with a cancelled context, so a well-behaved check
// fails at once) and background checks report their last result. Close
// is safe to call more than once; it returns nil.
func (h *Health) Close() error {
	h.mu.Lock()
	already := h.closed
	h.closed = true
	h.mu.Unlock()
	if !already {
		h.cancel()
		h.loops.Wait()
	}
	return nil
}

// result returns c's result for a probe made with ctx: the cached one if
// fresh (or, for a background check, if any), otherwise the result of a
// run started now or already in progress (one run at a time per check:
// concurrent probes share it), waiting at most until that run's deadline.
// If ctx ends first the result is a timeout too.
func (h *Health) result(ctx context.Context, c *check) Result {
	c.mu.Lock()
	if c.last != nil && (c.Background || h.clk.Now().Sub(c.last.Checked) < c.TTL) {
		r := *c.last
		c.mu.Unlock()
		return r
	}
	c.mu.Unlock()
	return h.wait(ctx, c, h.start(c))
}

// start returns the run in progress, or starts one.
func (h *Health) start(c *check) *flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flight != nil {
		return c.flight
	}
	now := h.clk.Now()
	f := &flight{start: now, deadline: now.Add(c.Timeout), done: make(chan struct{})}
	c.flight = f
	go h.run(c, f)
	return f
}

// run runs the check once and publishes its result.
func (h *Health) run(c *check, f *flight) {
	ctx, cancel := context.WithDeadline(h.ctx, f.deadline)
	defer cancel()
	err := safeCall(ctx, c.Func)
	d := h.clk.Now().Sub(f.start)
	res := Result{Status: StatusOK, Duration: d, Checked: f.start, Critical: !c.Optional}
	switch {
	case err == nil:
	case d >= c.Timeout || errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		res.Status, res.Error = StatusTimeout, fmt.Sprintf("timeout after %v", c.Timeout)
	default:
		res.Status, res.Error = StatusFail, err.Error()
	}
	c.mu.Lock()
	f.res = res
	c.last = &res
	c.flight = nil
	c.mu.Unlock()
	close(f.done)
}

// safeCall runs fn, turning a panic into an error: a panic in a
// background goroutine would otherwise end the process.
func safeCall(ctx context.Context, fn CheckFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("health: check panicked: %v", v)
		}
	}()
	return fn(ctx)
}

// wait waits for f's result until its deadline or ctx's end, whichever
// comes first. A run past its deadline is a timeout, cached as c's
// latest result until the run returns.
func (h *Health) wait(ctx context.Context, c *check, f *flight) Result {
	timeout := func() Result {
		res := Result{Status: StatusTimeout, Error: fmt.Sprintf("timeout after %v", c.Timeout),
			Duration: c.Timeout, Checked: f.start, Critical: !c.Optional}
		c.mu.Lock()
		if c.flight == f {
			c.last = &res
		}
		c.mu.Unlock()
		return res
	}
	select {
	case <-f.done:
		return f.res
	default:
	}
	d := f.deadline.Sub(h.clk.Now())
	if d <= 0 {
		return timeout()
	}
	t := h.clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.done:
		return f.res
	case <-t.C():
		return timeout()
	case <-ctx.Done():
		res := Result{Status: StatusTimeout, Error: "probe ended before the check: " + context.Cause(ctx).Error(),
			Duration: h.clk.Now().Sub(f.start), Checked: f.start, Critical: !c.Optional}
		return res
	}
}

// members returns the checks of group g.
func (h *Health) members(g string) []*check {
	var out []*check
	for _, c := range *h.checks.Load() {
		if g == Ready || (g == Live && c.Liveness) || slices.Contains(c.Groups, g) {
			out = append(out, c)
		}
	}
	return out
}

// HasGroup reports whether group g exists: Ready and Live always do,
// other names when at least one check lists them.
func (h *Health) HasGroup(g string) bool {
	return g == Ready || g == Live || len(h.members(g)) > 0
}

// Report runs the checks of group g (Ready: every check; Live: the
// liveness checks; another name: the checks listing it in Groups),
// concurrently, each answered from its cache when fresh, and returns their
// results. It never waits longer than the longest Timeout among them, or
// than ctx allows. A group without checks reports StatusOK. Report panics
// if ctx is nil.
func (h *Health) Report(ctx context.Context, g string) Report {
	if ctx == nil {
		panic("health: Health.Report called with a nil ctx")
	}
	cs := h.members(g)
	rep := Report{Status: StatusOK, Checks: make(map[string]Result, len(cs))}
	results := make([]Result, len(cs))
	var wg sync.WaitGroup
	for k, c := range cs {
		if k == len(cs)-1 {
			results[k] = h.result(ctx, c) // the last one in this goroutine
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[k] = h.result(ctx, c)
		}()
	}
	wg.Wait()
	for k, c := range cs {
		r := results[k]
		rep.Checks[c.Name] = r
		if r.Status != StatusOK && !c.Optional {
			rep.Status = StatusFail
		}
	}
	return rep
}

// Groups returns the names of the groups the checks list in Check.Groups,
// sorted, without the reserved Ready and Live.
func (h *Health) Groups() []string {
	var out []string
	for _, c := range *h.checks.Load() {
		for _, g := range c.Groups {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	slices.Sort(out)
	return out
}
