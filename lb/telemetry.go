package lb

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "lb"

var (
	attrEndpoint = attribute.Key(telemetry.Name(pkg, "endpoint"))
	attrState    = attribute.Key(telemetry.Name(pkg, "state"))
)

// telemetryState holds a balancer's observable instruments. Nothing runs
// on the call path: the callback reads the endpoints' own counters at
// collection time, and builds the attribute sets it needs then.
type telemetryState struct {
	b                 *Balancer
	reg               metric.Registration
	once              sync.Once
	calls, ejections  metric.Int64ObservableCounter
	inflight, members metric.Int64ObservableGauge
}

func newTelemetry(b *Balancer, mp metric.MeterProvider) *telemetryState {
	t := &telemetryState{b: b}
	m := telemetry.Meter(mp, pkg)
	var errs [4]error
	t.calls, errs[0] = m.Int64ObservableCounter(telemetry.Name(pkg, "calls"), metric.WithUnit("{call}"),
		metric.WithDescription("Calls finished, by endpoint and outcome."))
	t.ejections, errs[1] = m.Int64ObservableCounter(telemetry.Name(pkg, "ejections"), metric.WithUnit("{ejection}"),
		metric.WithDescription("Outlier ejections, by endpoint."))
	t.inflight, errs[2] = m.Int64ObservableGauge(telemetry.Name(pkg, "in_flight"), metric.WithUnit("{call}"),
		metric.WithDescription("Calls in flight, by endpoint (counted by LeastRequest, P2C and bounded RingHash; 0 under the others)."))
	t.members, errs[3] = m.Int64ObservableGauge(telemetry.Name(pkg, "endpoints"), metric.WithUnit("{endpoint}"),
		metric.WithDescription("Endpoints, by state (healthy, ejected, unhealthy)."))
	if errors.Join(errs[:]...) != nil {
		return t // the SDK has reported the error through otel.Handle; run without metrics
	}
	reg, err := m.RegisterCallback(t.observe, t.calls, t.ejections, t.inflight, t.members)
	if err == nil {
		t.reg = reg
	}
	return t
}

func (t *telemetryState) observe(_ context.Context, o metric.Observer) error {
	name := telemetry.AttrName.String(t.b.name)
	var byState [3]int64
	for _, e := range t.b.Endpoints() {
		ep := attrEndpoint.String(e.Endpoint.Addr)
		o.ObserveInt64(t.calls, e.Successes, metric.WithAttributes(name, ep, telemetry.AttrOutcome.String("success")))
		o.ObserveInt64(t.calls, e.Failures, metric.WithAttributes(name, ep, telemetry.AttrOutcome.String("failure")))
		o.ObserveInt64(t.ejections, e.Ejections, metric.WithAttributes(name, ep))
		o.ObserveInt64(t.inflight, e.InFlight, metric.WithAttributes(name, ep))
		byState[e.State]++
	}
	for s, n := range byState {
		o.ObserveInt64(t.members, n, metric.WithAttributes(name, attrState.String(State(s).String())))
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
