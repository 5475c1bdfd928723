package breaker

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "breaker"

// Telemetry names, following the library-wide scheme of the root package
// doc.
var (
	attrState  = attribute.Key(telemetry.Name(pkg, "state"))
	attrFrom   = attribute.Key(telemetry.Name(pkg, "from"))
	attrTo     = attribute.Key(telemetry.Name(pkg, "to"))
	evRejected = telemetry.Name(pkg, "rejected")
	evChange   = telemetry.Name(pkg, "state_change")
)

// telemetry holds one breaker's observable instruments. Nothing here runs
// on the call path: the callback reads the breaker's own counters at
// collection time.
type telemetryState struct {
	b                                    *Breaker
	base                                 []attribute.KeyValue
	reg                                  metric.Registration
	once                                 sync.Once
	calls, slow, rejections, transitions metric.Int64ObservableCounter
	state                                metric.Int64ObservableGauge

	outcomeOpts [3]metric.ObserveOption
	baseOpt     metric.ObserveOption
	stateOpts   [numStates]metric.ObserveOption
	moveOpts    [numStates][numStates]metric.ObserveOption
}

func newTelemetry(b *Breaker, mp metric.MeterProvider) *telemetryState {
	t := &telemetryState{b: b}
	t.base = []attribute.KeyValue{telemetry.AttrName.String(b.name)}
	if b.inSet {
		t.base = append(t.base, telemetry.AttrKey.String(b.key))
	}
	with := func(kv ...attribute.KeyValue) metric.ObserveOption {
		all := append(append([]attribute.KeyValue(nil), t.base...), kv...)
		return metric.WithAttributeSet(attribute.NewSet(all...))
	}
	t.baseOpt = with()
	for i, o := range []string{"success", "failure", "neutral"} {
		t.outcomeOpts[i] = with(telemetry.AttrOutcome.String(o))
	}
	for s := range State(numStates) {
		t.stateOpts[s] = with(attrState.String(s.String()))
		for to := range State(numStates) {
			t.moveOpts[s][to] = with(attrFrom.String(s.String()), attrTo.String(to.String()))
		}
	}
	m := telemetry.Meter(mp, pkg)
	var errs [5]error
	t.calls, errs[0] = m.Int64ObservableCounter(telemetry.Name(pkg, "calls"), metric.WithUnit("{call}"),
		metric.WithDescription("Calls let through by the breaker, by outcome."))
	t.slow, errs[1] = m.Int64ObservableCounter(telemetry.Name(pkg, "slow_calls"), metric.WithUnit("{call}"),
		metric.WithDescription("Calls slower than the slow-call threshold."))
	t.rejections, errs[2] = m.Int64ObservableCounter(telemetry.Name(pkg, "rejections"), metric.WithUnit("{call}"),
		metric.WithDescription("Calls rejected by the breaker."))
	t.transitions, errs[3] = m.Int64ObservableCounter(telemetry.Name(pkg, "transitions"), metric.WithUnit("{transition}"),
		metric.WithDescription("State changes, by from and to state."))
	t.state, errs[4] = m.Int64ObservableGauge(telemetry.Name(pkg, "state"), metric.WithUnit("1"),
		metric.WithDescription("1 for the breaker's current state, 0 for the others."))
	if errors.Join(errs[:]...) != nil {
		return t // the SDK has reported the error through otel.Handle; run without metrics
	}
	reg, err := m.RegisterCallback(t.observe, t.calls, t.slow, t.rejections, t.transitions, t.state)
	if err == nil {
		t.reg = reg
	}
	return t
}

func (t *telemetryState) observe(_ context.Context, o metric.Observer) error {
	b := t.b
	b.mu.Lock()
	p := b.cur.Load()
	succ, fail, neutral, slow, rejected := p.sums()
	succ += b.totals[0]
	fail += b.totals[1]
	neutral += b.totals[2]
	slow += b.totals[3]
	rejected += b.rejected
	moves := b.moves
	state := p.state
	b.mu.Unlock()

	o.ObserveInt64(t.calls, succ, t.outcomeOpts[0])
	o.ObserveInt64(t.calls, fail, t.outcomeOpts[1])
	o.ObserveInt64(t.calls, neutral, t.outcomeOpts[2])
	o.ObserveInt64(t.slow, slow, t.baseOpt)
	o.ObserveInt64(t.rejections, rejected, t.baseOpt)
	for from := range State(numStates) {
		for to := range State(numStates) {
			if n := moves[from][to]; n > 0 {
				o.ObserveInt64(t.transitions, n, t.moveOpts[from][to])
			}
		}
	}
	for s := range State(numStates) {
		v := int64(0)
		if s == state {
			v = 1
		}
		o.ObserveInt64(t.state, v, t.stateOpts[s])
	}
	return nil
}

func (t *telemetryState) close() {
	t.once.Do(func() {
		if t.reg != nil {
			_ = t.reg.Unregister()
		}
	})
}

func (t *telemetryState) rejectEvent(ctx context.Context, err error) {
	if !telemetry.Recording(ctx) {
		return
	}
	kv := append([]attribute.KeyValue(nil), t.base...)
	var oe *OpenError
	if errors.As(err, &oe) {
		kv = append(kv, attrState.String(oe.State.String()))
	}
	telemetry.AddEvent(ctx, evRejected, kv...)
}

func (t *telemetryState) stateEvent(ctx context.Context, mv move) {
	if !telemetry.Recording(ctx) {
		return
	}
	kv := append(append([]attribute.KeyValue(nil), t.base...), attrFrom.String(mv.from.String()), attrTo.String(mv.to.String()))
	telemetry.AddEvent(ctx, evChange, kv...)
}
