package timeout

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "timeout"

// Telemetry names; see the package doc.
var (
	attrLimit  = attribute.Key(telemetry.Name(pkg, "limit"))
	evTimedOut = telemetry.Name(pkg, "timed_out")
)

// instruments holds one Timeout's observable instruments: nothing runs on
// the call path, the callback reads the Timeout's counters at collection
// time.
type instruments struct {
	name attribute.KeyValue
	reg  metric.Registration
	once sync.Once
}

func (in *instruments) init(t *Timeout, mp metric.MeterProvider) {
	in.name = telemetry.AttrName.String(t.name)
	m := telemetry.Meter(mp, pkg)
	timeouts, err1 := m.Int64ObservableCounter(telemetry.Name(pkg, "timeouts"),
		metric.WithUnit("{call}"),
		metric.WithDescription("Calls, attempts and requests whose time ran out."))
	abandoned, err2 := m.Int64ObservableUpDownCounter(telemetry.Name(pkg, "abandoned_calls"),
		metric.WithUnit("{call}"),
		metric.WithDescription("Functions abandoned at their deadline (Config.Abandon) that are still running."))
	if err1 != nil || err2 != nil {
		return // the SDK has reported the error through otel.Handle; run without metrics
	}
	opt := metric.WithAttributeSet(attribute.NewSet(in.name))
	in.reg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(timeouts, t.timeouts.Load(), opt)
		o.ObserveInt64(abandoned, t.abandoned.Load(), opt)
		return nil
	}, timeouts, abandoned)
}

func (in *instruments) close() error {
	var err error
	in.once.Do(func() {
		if in.reg != nil {
			err = in.reg.Unregister()
		}
	})
	return err
}

// event adds the timed_out span event to the caller's recording span.
func (in *instruments) event(ctx context.Context, limit time.Duration) {
	if telemetry.Recording(ctx) {
		telemetry.AddEvent(ctx, evTimedOut, in.name, attrLimit.Float64(limit.Seconds()))
	}
}
