package idempotency

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/telemetry"
)

const pkg = "idempotency"

// result is what became of one request, the bulwark.idempotency.result
// attribute of bulwark.idempotency.requests.
type result uint8

const (
	resultExecuted   result = iota // claimed the key and ran
	resultReplayed                 // got the stored response
	resultConflict                 // key in progress: 409
	resultMismatch                 // key reused with another payload: 422
	resultInvalid                  // missing or malformed key, body too large: 400/413
	resultStoreError               // store unreachable before running: 503
	numResults
)

var resultNames = [numResults]string{"executed", "replayed", "conflict", "mismatch", "invalid", "store_error"}

var attrResult = attribute.Key(telemetry.Name(pkg, "result"))

// telemetryState counts in atomics on the request path and reports through
// observable instruments; attribute sets are built at collection time.
type telemetryState struct {
	name        string
	results     [numResults]atomic.Int64
	storeErrors atomic.Int64
	reg         metric.Registration
	once        sync.Once
}

func newTelemetry(name string, mp metric.MeterProvider) *telemetryState {
	t := &telemetryState{name: name}
	m := telemetry.Meter(mp, pkg)
	requests, err1 := m.Int64ObservableCounter(telemetry.Name(pkg, "requests"), metric.WithUnit("{request}"),
		metric.WithDescription("Requests that carried an idempotency key, by result."))
	storeErrs, err2 := m.Int64ObservableCounter(telemetry.Name(pkg, "store.errors"), metric.WithUnit("{error}"),
		metric.WithDescription("Store operations that failed after the request ran (renew, complete, release)."))
	if err1 != nil || err2 != nil {
		return t
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		name := telemetry.AttrName.String(t.name)
		for r := range numResults {
			o.ObserveInt64(requests, t.results[r].Load(),
				metric.WithAttributes(name, attrResult.String(resultNames[r])))
		}
		o.ObserveInt64(storeErrs, t.storeErrors.Load(), metric.WithAttributes(name))
		return nil
	}, requests, storeErrs)
	if err == nil {
		t.reg = reg
	}
	return t
}

func (t *telemetryState) count(r result) { t.results[r].Add(1) }
func (t *telemetryState) storeError()    { t.storeErrors.Add(1) }

func (t *telemetryState) close() {
	t.once.Do(func() {
		if t.reg != nil {
			t.reg.Unregister()
		}
	})
}
