package lb

// EndpointHealth returns how many of b's endpoints are Healthy (not
// ejected, not failing their active checks) and how many it has. It
// satisfies health.Endpoints, so a readiness probe can watch a balancer:
//
//	health.Check{Name: "inventory", Func: health.EndpointCheck(b, 1)}
//
// It reads the current snapshot without a lock; the counts may be one
// state change behind a concurrent Update or ejection.
func (b *Balancer) EndpointHealth() (healthy, total int) {
	for _, e := range b.Endpoints() {
		total++
		if e.State == Healthy {
			healthy++
		}
	}
	return healthy, total
}
