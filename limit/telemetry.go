package limit

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/stripe"
	"github.com/bulwark-go/bulwark/internal/telemetry"
)

// Telemetry names, following the library-wide scheme of the root package
// doc.
var (
	attrKind     = attribute.Key(telemetry.Name(pkg, "kind"))     // rate, keyed, bulkhead, adaptive
	attrDecision = attribute.Key(telemetry.Name(pkg, "decision")) // admitted, rejected
)

// counts are a limiter's decision counters: one uncontended atomic add
// per decision (striped per P), read at collection time.
type counts struct {
	admitted, rejected *stripe.Counter
	// more, if set, adds admissions counted elsewhere (a Rate counts
	// them next to its GCRA word, on the line it has just written).
	more func() int64
}

func newCounts() counts { return counts{admitted: stripe.NewCounter(), rejected: stripe.NewCounter()} }

func (c counts) record(ok bool) {
	if ok {
		c.admitted.Add(1)
	} else {
		c.rejected.Add(1)
	}
}

// instruments are one limiter's observable instruments. Nothing here
// runs on the call path: the callback reads the limiter's own counters at
// collection time.
type instruments struct {
	reg  metric.Registration
	once sync.Once
}

// register registers the instruments of one limiter: the decisions
// counter, and for concurrency limiters (inflight and limit not nil) the
// in-flight and limit gauges. Attribute sets are built here, once per
// limiter, not per collection.
func register(mp metric.MeterProvider, kind, name string, c counts, inflight, limit func() int64) *instruments {
	in := &instruments{}
	base := []attribute.KeyValue{telemetry.AttrName.String(name), attrKind.String(kind)}
	with := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(append([]attribute.KeyValue(nil), base...), kv...)...))
	}
	admitted, rejected, baseOpt := with(attrDecision.String("admitted")), with(attrDecision.String("rejected")), with()
	m := telemetry.Meter(mp, pkg)
	decisions, err := m.Int64ObservableCounter(telemetry.Name(pkg, "decisions"), metric.WithUnit("{call}"),
		metric.WithDescription("Calls the limiter admitted or rejected, by decision."))
	obs := []metric.Observable{decisions}
	var inflightG, limitG metric.Int64ObservableGauge
	if inflight != nil {
		var e1, e2 error
		inflightG, e1 = m.Int64ObservableGauge(telemetry.Name(pkg, "in_flight"), metric.WithUnit("{call}"),
			metric.WithDescription("Calls holding a slot of the concurrency limiter."))
		limitG, e2 = m.Int64ObservableGauge(telemetry.Name(pkg, "concurrency_limit"), metric.WithUnit("{call}"),
			metric.WithDescription("The concurrency limiter's current limit."))
		err = errors.Join(err, e1, e2)
		obs = append(obs, inflightG, limitG)
	}
	if err != nil {
		return in // the SDK has reported the error through otel.Handle; run without metrics
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		n := c.admitted.Sum()
		if c.more != nil {
			n += c.more()
		}
		o.ObserveInt64(decisions, n, admitted)
		o.ObserveInt64(decisions, c.rejected.Sum(), rejected)
		if inflight != nil {
			o.ObserveInt64(inflightG, inflight(), baseOpt)
			o.ObserveInt64(limitG, limit(), baseOpt)
		}
		return nil
	}, obs...)
	if err == nil {
		in.reg = reg
	}
	return in
}

// close unregisters the instruments; safe to call more than once.
func (in *instruments) close() {
	in.once.Do(func() {
		if in.reg != nil {
			_ = in.reg.Unregister()
		}
	})
}
