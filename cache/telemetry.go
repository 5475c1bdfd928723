package cache

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "cache"

var (
	attrTier   = attribute.Key(telemetry.Name(pkg, "tier"))
	attrReason = attribute.Key(telemetry.Name(pkg, "reason"))
	// attrChoice says what the cache does on a Store read error: "skip"
	// (go on to the origin) or "fail" (Config.FailOnStoreError).
	attrChoice = attribute.Key(telemetry.Name(pkg, "store.choice"))
)

// telemetryState holds a cache's observable instruments; the callback
// reads the cache's counters at collection time, so Gets pay nothing for
// telemetry beyond their counter adds.
type telemetryState struct {
	reg                                         metric.Registration
	hits, misses, loads, loadErrors, stale      metric.Int64ObservableCounter
	evictions, storeErrors                      metric.Int64ObservableCounter
	base, l1, l2, reasonRevalidate, reasonError metric.ObserveOption
	storeOpt                                    metric.ObserveOption
	stats                                       func() Stats
}

func newTelemetry[K comparable, V any](c *Cache[K, V], name string, mp metric.MeterProvider) *telemetryState {
	t := &telemetryState{stats: c.Stats}
	nameAttr := telemetry.AttrName.String(name)
	with := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{nameAttr}, kv...)...))
	}
	t.base = with()
	choice := "skip"
	if c.failOnStore {
		choice = "fail"
	}
	t.storeOpt = with(attrChoice.String(choice))
	t.l1, t.l2 = with(attrTier.String("l1")), with(attrTier.String("l2"))
	t.reasonRevalidate, t.reasonError = with(attrReason.String("revalidate")), with(attrReason.String("error"))
	m := telemetry.Meter(mp, pkg)
	var errs [7]error
	t.hits, errs[0] = m.Int64ObservableCounter(telemetry.Name(pkg, "hits"), metric.WithUnit("{get}"),
		metric.WithDescription("Gets served by a tier, by tier (l1: in-process, l2: the Store)."))
	t.misses, errs[1] = m.Int64ObservableCounter(telemetry.Name(pkg, "misses"), metric.WithUnit("{get}"),
		metric.WithDescription("Gets that no tier could serve."))
	t.loads, errs[2] = m.Int64ObservableCounter(telemetry.Name(pkg, "loads"), metric.WithUnit("{load}"),
		metric.WithDescription("Origin calls."))
	t.loadErrors, errs[3] = m.Int64ObservableCounter(telemetry.Name(pkg, "load_errors"), metric.WithUnit("{load}"),
		metric.WithDescription("Origin calls that failed."))
	t.stale, errs[4] = m.Int64ObservableCounter(telemetry.Name(pkg, "stale_serves"), metric.WithUnit("{get}"),
		metric.WithDescription("Stale values served, by reason (revalidate: stale-while-revalidate; error: stale-if-error)."))
	t.evictions, errs[5] = m.Int64ObservableCounter(telemetry.Name(pkg, "evictions"), metric.WithUnit("{entry}"),
		metric.WithDescription("Entries evicted from the in-process tier."))
	t.storeErrors, errs[6] = m.Int64ObservableCounter(telemetry.Name(pkg, "store.errors"), metric.WithUnit("{error}"),
		metric.WithDescription("Failed operations of the Store (the second tier), with what reads do about them (store.choice: skip or fail)."))
	if errors.Join(errs[:]...) != nil {
		return t
	}
	reg, err := m.RegisterCallback(t.observe, t.hits, t.misses, t.loads, t.loadErrors, t.stale, t.evictions, t.storeErrors)
	if err == nil {
		t.reg = reg
	}
	return t
}

func (t *telemetryState) observe(_ context.Context, o metric.Observer) error {
	s := t.stats()
	o.ObserveInt64(t.hits, s.HitsL1, t.l1)
	o.ObserveInt64(t.hits, s.HitsL2, t.l2)
	o.ObserveInt64(t.misses, s.Misses, t.base)
	o.ObserveInt64(t.loads, s.Loads, t.base)
	o.ObserveInt64(t.loadErrors, s.LoadErrors, t.base)
	o.ObserveInt64(t.stale, s.StaleWhileRevalidate, t.reasonRevalidate)
	o.ObserveInt64(t.stale, s.StaleIfError, t.reasonError)
	o.ObserveInt64(t.evictions, s.Evictions, t.base)
	o.ObserveInt64(t.storeErrors, s.StoreErrors, t.storeOpt)
	return nil
}

func (t *telemetryState) close() {
	if t.reg != nil {
		t.reg.Unregister()
	}
}
