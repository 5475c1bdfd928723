package redisstore

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// noMeter keeps the fallback limiter out of telemetry: its decisions are
// the Limiter's, counted by the store-error metric.
type noMeter = noop.MeterProvider

var _ metric.MeterProvider = noMeter{}
