package chaos

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "chaos"

var (
	attrFault  = attribute.Key(telemetry.Name(pkg, "fault"))
	attrAction = attribute.Key(telemetry.Name(pkg, "action"))
)

// telemetryState exports the fault counts through an observable counter;
// the hot path only adds to the fault's atomic counter.
type telemetryState struct {
	i      *Injector
	faults metric.Int64ObservableCounter
	reg    metric.Registration
	once   sync.Once
}

func newTelemetry(i *Injector, mp metric.MeterProvider) *telemetryState {
	t := &telemetryState{i: i}
	m := telemetry.Meter(mp, pkg)
	var err error
	t.faults, err = m.Int64ObservableCounter(telemetry.Name(pkg, "faults"), metric.WithUnit("{fault}"),
		metric.WithDescription("Faults injected, by fault name and action."))
	if err != nil {
		return t // reported through otel.Handle; run without metrics
	}
	if reg, err := m.RegisterCallback(t.observe, t.faults); err == nil {
		t.reg = reg
	}
	return t
}

// observe builds the attribute sets at collection time: an injector holds
// none.
func (t *telemetryState) observe(_ context.Context, o metric.Observer) error {
	i := t.i
	i.mu.Lock()
	defer i.mu.Unlock()
	for k, n := range i.counts {
		o.ObserveInt64(t.faults, n.Load(), metric.WithAttributes(
			telemetry.AttrName.String(i.name), attrFault.String(k.name), attrAction.String(k.action.String())))
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
