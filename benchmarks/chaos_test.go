package benchmarks

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulwark-go/bulwark/chaos"
)

// BenchmarkChaosHandler measures what a chaos layer costs a request it
// does not hit: disabled (one atomic load), and enabled with a fault aimed
// at drill traffic the request does not carry. "hit" is an enabled
// latency-only fault of zero delay, the cost of the fault path itself.
func BenchmarkChaosHandler(b *testing.B) {
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, bc := range []struct {
		name    string
		enabled bool
		fault   chaos.Fault
		drill   string
	}{
		{"disabled", false, chaos.Fault{Action: chaos.Abort}, ""},
		{"enabled-untargeted", true, chaos.Fault{Action: chaos.Abort, PathPrefix: "/other"}, "d"},
		{"enabled-hit", true, chaos.Fault{Latency: chaos.Latency{Dist: chaos.Uniform, Spread: 1}}, "d"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			inj := chaos.New(chaos.Config{Enabled: bc.enabled, Faults: []chaos.Fault{bc.fault}})
			defer inj.Close()
			h := inj.Handler(noop)
			w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)
			if bc.drill != "" {
				r.Header.Set(chaos.DefaultHeader, bc.drill)
			}
			b.ReportAllocs()
			defer reportCPUSince(b, cpuTime())
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
	b.Run("none", func(b *testing.B) {
		w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		for b.Loop() {
			noop.ServeHTTP(w, r)
		}
	})
}

// BenchmarkChaosRoundTripperDisabled is the client side of a disabled
// injector.
func BenchmarkChaosRoundTripperDisabled(b *testing.B) {
	inj := chaos.New(chaos.Config{Faults: []chaos.Fault{{Action: chaos.Abort}}})
	defer inj.Close()
	resp := &http.Response{}
	rt := inj.RoundTripper(rtFunc(func(*http.Request) (*http.Response, error) { return resp, nil }))
	r := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	defer reportCPUSince(b, cpuTime())
	for b.Loop() {
		rt.RoundTrip(r)
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
