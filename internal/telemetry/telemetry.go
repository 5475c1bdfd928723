// Package telemetry holds bulwark's OpenTelemetry conventions, so that every
// package names its meter, instruments, attributes and span events the same
// way. The scheme is documented for users in the root package doc:
//
//   - Instrumentation scope (meter and tracer name): the package's import
//     path, e.g. "github.com/bulwark-go/bulwark/breaker".
//   - Instrument names: "bulwark.<package>.<plural noun>", e.g.
//     "bulwark.breaker.calls", "bulwark.retry.attempts"; units in UCUM
//     ("{call}", "s").
//   - Attributes: "bulwark.name" (the instance's Config.Name),
//     "bulwark.key" (the key of a per-key set), "bulwark.outcome"
//     (success|failure|neutral), and package-specific ones as
//     "bulwark.<package>.<attribute>".
//   - Span events: "bulwark.<package>.<event>", added to the span already in
//     the call's context (bulwark starts no spans of its own on hot paths).
//
// Hot paths pay at most one atomic add for telemetry: counts are kept in
// the primitives' own atomic counters and exported through observable
// (asynchronous) instruments whose callbacks read them at collection time.
package telemetry

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopePrefix is the prefix of every bulwark instrumentation scope.
const ScopePrefix = "github.com/bulwark-go/bulwark/"

// Attribute keys shared by every package.
const (
	AttrName    = attribute.Key("bulwark.name")
	AttrKey     = attribute.Key("bulwark.key")
	AttrOutcome = attribute.Key("bulwark.outcome")
)

// Meter returns the meter for package pkg ("breaker", "retry", ...) from mp,
// or from the global provider when mp is nil.
func Meter(mp metric.MeterProvider, pkg string) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(ScopePrefix + pkg)
}

// Tracer returns the tracer for package pkg from tp, or from the global
// provider when tp is nil.
func Tracer(tp trace.TracerProvider, pkg string) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopePrefix + pkg)
}

// Name returns the instrument or event name "bulwark.<pkg>.<name>".
func Name(pkg, name string) string { return "bulwark." + pkg + "." + name }

// AddEvent adds a span event to the recording span in ctx, if any. When the
// context carries no recording span it costs a context lookup and nothing
// else; attributes are only built by callers after checking [Recording].
func AddEvent(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(name, trace.WithAttributes(attrs...))
}

// Recording reports whether ctx carries a recording span, so callers can
// skip building event attributes.
func Recording(ctx context.Context) bool {
	return ctx != nil && trace.SpanFromContext(ctx).IsRecording()
}
