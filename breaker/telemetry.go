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

var outcomeNames = [3]string{"success", "failure", "neutral"}

// instruments are the observable instruments of one breaker made by New,
// or of a whole Set: one registration, whose callback reads the breakers'
// own counters at collection time. Nothing here runs on the call path,
// and nothing is kept per breaker: attribute sets are built by the
// callback, when a reader collects.
type instruments struct {
	calls, slow, rejections, transitions metric.Int64ObservableCounter
	state                                metric.Int64ObservableGauge
	reg                                  metric.Registration
	once                                 sync.Once
}

// newInstruments creates the instruments on mp's breaker meter and
// registers observe to report them.
func newInstruments(mp metric.MeterProvider, observe func(*instruments, metric.Observer)) *instruments {
	t := &instruments{}
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
	t.state, errs[4] = m.Int64ObservableGauge(telemetry.Name(pkg, "state"), metric.WithUnit("{state}"),
		metric.WithDescription("Breakers in each state: 1 for a breaker's current state and 0 for the others (summed over the members of an aggregated Set)."))
	if errors.Join(errs[:]...) != nil {
		return t // the SDK has reported the error through otel.Handle; run without metrics
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		observe(t, o)
		return nil
	}, t.calls, t.slow, t.rejections, t.transitions, t.state)
	if err == nil {
		t.reg = reg
	}
	return t
}

func (t *instruments) close() {
	t.once.Do(func() {
		if t.reg != nil {
			_ = t.reg.Unregister()
		}
	})
}

// snapshot is what one collection reads of a breaker (or a sum of them).
type snapshot struct {
	outcomes       [3]int64 // success, failure, neutral
	slow, rejected int64
	moves          [numStates][numStates]int64
	states         [numStates]int64 // breakers in each state
}

// addTo adds b's cumulative counters and state to s.
func (b *Breaker) addTo(s *snapshot) {
	b.mu.Lock()
	p := b.cur.Load()
	succ, fail, neutral, slow, rejected := p.sums()
	s.outcomes[0] += succ + b.totals[0]
	s.outcomes[1] += fail + b.totals[1]
	s.outcomes[2] += neutral + b.totals[2]
	s.slow += slow + b.totals[3]
	s.rejected += rejected + b.rejected
	for from := range b.moves {
		for to, n := range b.moves[from] {
			s.moves[from][to] += int64(n)
		}
	}
	s.states[p.state]++
	b.mu.Unlock()
}

// report observes s with the attributes base (bulwark.name, and
// bulwark.key for a Set member), building each point's attribute set now.
func (t *instruments) report(o metric.Observer, s *snapshot, base ...attribute.KeyValue) {
	n := len(base)
	kv := make([]attribute.KeyValue, n, n+2)
	copy(kv, base)
	with := func(extra ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributes(append(kv[:n:n], extra...)...)
	}
	for i, name := range outcomeNames {
		o.ObserveInt64(t.calls, s.outcomes[i], with(telemetry.AttrOutcome.String(name)))
	}
	plain := with()
	o.ObserveInt64(t.slow, s.slow, plain)
	o.ObserveInt64(t.rejections, s.rejected, plain)
	for from := range State(numStates) {
		for to := range State(numStates) {
			if v := s.moves[from][to]; v > 0 {
				o.ObserveInt64(t.transitions, v, with(attrFrom.String(from.String()), attrTo.String(to.String())))
			}
		}
	}
	for st := range State(numStates) {
		o.ObserveInt64(t.state, s.states[st], with(attrState.String(st.String())))
	}
}

// observe reports a breaker made by New.
func (b *Breaker) observe(t *instruments, o metric.Observer) {
	var s snapshot
	b.addTo(&s)
	t.report(o, &s, telemetry.AttrName.String(b.name))
}

// eventAttrs are the attributes of b's span events.
func (b *Breaker) eventAttrs(extra ...attribute.KeyValue) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, 2+len(extra))
	kv = append(kv, telemetry.AttrName.String(b.name))
	if b.inSet {
		kv = append(kv, telemetry.AttrKey.String(b.key))
	}
	return append(kv, extra...)
}

func (b *Breaker) rejectEvent(ctx context.Context, err error) {
	if !telemetry.Recording(ctx) {
		return
	}
	var extra []attribute.KeyValue
	var oe *OpenError
	if errors.As(err, &oe) {
		extra = append(extra, attrState.String(oe.State.String()))
	}
	telemetry.AddEvent(ctx, evRejected, b.eventAttrs(extra...)...)
}

func (b *Breaker) stateEvent(ctx context.Context, mv move) {
	if !telemetry.Recording(ctx) {
		return
	}
	telemetry.AddEvent(ctx, evChange, b.eventAttrs(attrFrom.String(mv.from.String()), attrTo.String(mv.to.String()))...)
}

// add adds o to s.
func (s *snapshot) add(o *snapshot) {
	for i := range s.outcomes {
		s.outcomes[i] += o.outcomes[i]
	}
	s.slow += o.slow
	s.rejected += o.rejected
	for from := range s.moves {
		for to := range s.moves[from] {
			s.moves[from][to] += o.moves[from][to]
		}
	}
	for i := range s.states {
		s.states[i] += o.states[i]
	}
}
