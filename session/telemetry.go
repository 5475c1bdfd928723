package session

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "session"

var attrOp = attribute.Key(telemetry.Name(pkg, "op"))

// telemetryState holds a Manager's observable instruments: the counts are
// atomics on the Manager, read at collection time.
type telemetryState struct {
	reg  metric.Registration
	once sync.Once
}

func newTelemetry(m *Manager, name string, mp metric.MeterProvider) *telemetryState {
	t := &telemetryState{}
	meter := telemetry.Meter(mp, pkg)
	var errs [3]error
	var loads, saves, storeErrs metric.Int64ObservableCounter
	loads, errs[0] = meter.Int64ObservableCounter(telemetry.Name(pkg, "loads"), metric.WithUnit("{load}"),
		metric.WithDescription("Sessions read from the store (requests that never touch their session read nothing)."))
	saves, errs[1] = meter.Int64ObservableCounter(telemetry.Name(pkg, "saves"), metric.WithUnit("{save}"),
		metric.WithDescription("Commits to the store: changes, creations, renewals and throttled idle-deadline extensions."))
	storeErrs, errs[2] = meter.Int64ObservableCounter(telemetry.Name(pkg, "store.errors"), metric.WithUnit("{error}"),
		metric.WithDescription("Failed store operations, by operation (bulwark.session.op); the request is answered by the ErrorHandler when its headers are not yet written."))
	if errors.Join(errs[:]...) != nil {
		return t
	}
	base := telemetry.AttrName.String(name)
	baseOpt := metric.WithAttributeSet(attribute.NewSet(base))
	var opOpts [numOps]metric.ObserveOption
	for op := range numOps {
		opOpts[op] = metric.WithAttributeSet(attribute.NewSet(base, attrOp.String(opNames[op])))
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(loads, m.loads.Load(), baseOpt)
		o.ObserveInt64(saves, m.saves.Load(), baseOpt)
		for op := range numOps {
			o.ObserveInt64(storeErrs, m.storeErrs[op].Load(), opOpts[op])
		}
		return nil
	}, loads, saves, storeErrs)
	if err == nil {
		t.reg = reg
	}
	return t
}

func (t *telemetryState) close() {
	t.once.Do(func() {
		if t.reg != nil {
			_ = t.reg.Unregister()
		}
	})
}
