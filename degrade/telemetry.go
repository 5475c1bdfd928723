package degrade

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "degrade"

var (
	attrCriticality = attribute.Key(telemetry.Name(pkg, "criticality"))
	attrReason      = attribute.Key(telemetry.Name(pkg, "reason"))
	attrSource      = attribute.Key(telemetry.Name(pkg, "source"))
)

// registration unregisters a metric callback once.
type registration struct {
	reg  metric.Registration
	once sync.Once
}

func (r *registration) close() {
	r.once.Do(func() {
		if r.reg != nil {
			_ = r.reg.Unregister()
		}
	})
}

// shedTelemetry exports a Shedder's counters; attribute sets are built
// at collection time.
type shedTelemetry struct{ registration }

func newShedTelemetry(s *Shedder, mp metric.MeterProvider) *shedTelemetry {
	t := &shedTelemetry{}
	m := telemetry.Meter(mp, pkg)
	shed, err1 := m.Int64ObservableCounter(telemetry.Name(pkg, "shed_requests"), metric.WithUnit("{request}"),
		metric.WithDescription("Requests rejected by the load shedder, by criticality."))
	inflight, err2 := m.Int64ObservableUpDownCounter(telemetry.Name(pkg, "inflight_requests"), metric.WithUnit("{request}"),
		metric.WithDescription("Requests admitted by the load shedder and not yet done."))
	capacity, err3 := m.Float64ObservableGauge(telemetry.Name(pkg, "capacity"), metric.WithUnit("{request}"),
		metric.WithDescription("The load shedder's estimated in-flight capacity (0 while unknown)."))
	if err1 != nil || err2 != nil || err3 != nil {
		return t
	}
	name := telemetry.AttrName.String(s.cfg.Name)
	t.reg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := s.Stats()
		for c, n := range st.Shed {
			o.ObserveInt64(shed, n, metric.WithAttributes(name, attrCriticality.String(Criticality(c).String())))
		}
		o.ObserveInt64(inflight, st.InFlight, metric.WithAttributes(name))
		o.ObserveFloat64(capacity, st.Capacity, metric.WithAttributes(name))
		return nil
	}, shed, inflight, capacity)
	return t
}

func telemetryMeter(mp metric.MeterProvider) metric.Meter { return telemetry.Meter(mp, pkg) }
func metricName(n string) string                          { return telemetry.Name(pkg, n) }
func nameAttr(n string) attribute.KeyValue                { return telemetry.AttrName.String(n) }
