package retry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

// Telemetry names, all built by telemetry.Name; see the package doc.
var (
	attrKind   = attribute.Key(telemetry.Name("retry", "kind"))
	attrReason = attribute.Key(telemetry.Name("retry", "reason"))
	attrHedge  = attribute.Key(telemetry.Name("retry", "hedge"))
	attrNumber = attribute.Key(telemetry.Name("retry", "attempt"))
	attrDelay  = attribute.Key(telemetry.Name("retry", "delay"))

	eventAttempt   = telemetry.Name("retry", "attempt")
	eventExhausted = telemetry.Name("retry", "exhausted")

	instAttempts    = telemetry.Name("retry", "attempts")
	instExhaustions = telemetry.Name("retry", "exhaustions")
	instDelays      = telemetry.Name("retry", "delays")
)

// delayBuckets are the bucket boundaries, in seconds, of
// bulwark.retry.delays: backoff delays run from milliseconds (a first
// retry after 100ms of full jitter is often a few ms) to the 10s default
// cap, and server pushback up to the 30s default cap and beyond.
var delayBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

type instruments struct {
	name   attribute.KeyValue
	delays metric.Float64Histogram
	// delayOpts carries the name attribute of every delay recorded,
	// built once: metric.WithAttributes per Record cost four allocations
	// per retry.
	delayOpts []metric.RecordOption
	reg       metric.Registration
}

// init creates the instruments. Counts are read from the policy's own
// counters by an observable callback; only the delay histogram is
// recorded synchronously, on the retry path.
func (t *instruments) init(p *Policy, mp metric.MeterProvider) {
	m := telemetry.Meter(mp, "retry")
	name := telemetry.AttrName.String(p.name)
	attempts, err1 := m.Int64ObservableCounter(instAttempts,
		metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts made, by kind: first, retry, hedge."))
	giveUps, err2 := m.Int64ObservableCounter(instExhaustions,
		metric.WithUnit("{call}"),
		metric.WithDescription("Calls that stopped retrying a retryable error, by reason: attempts, budget, deadline, pushback, rejected."))
	t.delays, _ = m.Float64Histogram(instDelays,
		metric.WithUnit("s"),
		metric.WithDescription("Delays waited before retries."),
		metric.WithExplicitBucketBoundaries(delayBuckets...))
	t.delayOpts = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(name))}
	if err1 != nil || err2 != nil {
		return
	}
	kinds := [3]metric.ObserveOption{
		metric.WithAttributes(name, attrKind.String("first")),
		metric.WithAttributes(name, attrKind.String("retry")),
		metric.WithAttributes(name, attrKind.String("hedge")),
	}
	var reasons [numReasons]metric.ObserveOption
	for r := range reasons {
		reasons[r] = metric.WithAttributes(name, attrReason.String(Reason(r).String()))
	}
	t.reg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(attempts, int64(p.calls.Load()), kinds[0])
		o.ObserveInt64(attempts, int64(p.retries.Load()), kinds[1])
		o.ObserveInt64(attempts, int64(p.hedges.Load()), kinds[2])
		for r := range reasons {
			o.ObserveInt64(giveUps, int64(p.giveUps[r].Load()), reasons[r])
		}
		return nil
	}, attempts, giveUps)
	t.name = name
}

func (t *instruments) close() error {
	if t.reg == nil {
		return nil
	}
	return t.reg.Unregister()
}

// retry records a retry or hedge about to start: the delay histogram, and
// a span event on the caller's span when it is recording.
func (t *instruments) retry(ctx context.Context, ev Event) {
	if t.delays != nil && !ev.Hedge {
		t.delays.Record(ctx, ev.Delay.Seconds(), t.delayOpts...)
	}
	if telemetry.Recording(ctx) {
		telemetry.AddEvent(ctx, eventAttempt,
			attrNumber.Int(ev.Attempt), attrHedge.Bool(ev.Hedge),
			attrDelay.Float64(ev.Delay.Seconds()))
	}
}

// exhausted adds a span event when a call stops retrying.
func (t *instruments) exhausted(ctx context.Context, attempts int, r Reason) {
	if telemetry.Recording(ctx) {
		telemetry.AddEvent(ctx, eventExhausted, attrNumber.Int(attempts), attrReason.String(r.String()))
	}
}
