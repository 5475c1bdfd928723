package main

import (
	"context"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// counts are the library's own counters the drill reports per phase, read
// from the OpenTelemetry metrics of the gateway and the instances (the
// stacks build the cache, the sessions and the idempotency keepers, and
// their counts are reported there).
type counts struct {
	cacheL1, cacheL2, cacheMisses, cacheStoreErrors int64 // the gateway's HTTP cache
	sessionStoreErrors                              int64 // the instances' sessions
	idemRefused                                     int64 // the idempotency layers' refusals: store down before running (result store_error)
	idemStoreErrors                                 int64 // their store failures after a request ran
}

func (c counts) minus(d counts) counts {
	return counts{
		c.cacheL1 - d.cacheL1, c.cacheL2 - d.cacheL2, c.cacheMisses - d.cacheMisses, c.cacheStoreErrors - d.cacheStoreErrors,
		c.sessionStoreErrors - d.sessionStoreErrors, c.idemRefused - d.idemRefused, c.idemStoreErrors - d.idemStoreErrors,
	}
}

// readCounts collects reader's metrics and sums the counters above.
func readCounts(reader *sdkmetric.ManualReader) counts {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		return counts{}
	}
	var c counts
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, p := range sum.DataPoints {
				switch m.Name {
				case "bulwark.cache.hits":
					tier, _ := p.Attributes.Value("bulwark.cache.tier")
					if tier.AsString() == "l2" {
						c.cacheL2 += p.Value
					} else {
						c.cacheL1 += p.Value
					}
				case "bulwark.cache.misses":
					c.cacheMisses += p.Value
				case "bulwark.cache.store.errors":
					c.cacheStoreErrors += p.Value
				case "bulwark.session.store.errors":
					c.sessionStoreErrors += p.Value
				case "bulwark.idempotency.requests":
					if r, _ := p.Attributes.Value("bulwark.idempotency.result"); r.AsString() == "store_error" {
						c.idemRefused += p.Value
					}
				case "bulwark.idempotency.store.errors":
					c.idemStoreErrors += p.Value
				}
			}
		}
	}
	return c
}
