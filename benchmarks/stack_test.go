package benchmarks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"

	"github.com/bulwark-go/bulwark/stack"
)

// failsafeStack is failsafehttp configured with the policies of
// stack.NewClient's defaults, outermost first: a 30 s total timeout;
// retries (3 attempts, exponential backoff from 100 ms to 10 s, a retry
// budget); a circuit breaker opening at 50% failures over 100 calls for
// 60 s (bulwark's breaker defaults), judging 5xx but 501, 408, 429 and
// errors as failures; a 10 s attempt timeout. (failsafe-go's breaker is
// one for the client, not one per host: that only makes its work lighter.)
func failsafeStack(base http.RoundTripper) http.RoundTripper {
	failure := func(resp *http.Response, err error) bool {
		if err != nil {
			return true
		}
		c := resp.StatusCode
		return c == 408 || c == 429 || (c >= 500 && c != 501)
	}
	return failsafehttp.NewRoundTripper(base,
		fstimeout.New[*http.Response](30*time.Second),
		failsafehttp.NewRetryPolicyBuilder().
			WithMaxAttempts(3).
			WithBackoff(100*time.Millisecond, 10*time.Second).
			WithBudget(budget.New()).
			Build(),
		circuitbreaker.NewBuilder[*http.Response]().
			HandleIf(failure).
			WithFailureThresholdRatio(50, 100).
			WithDelay(60*time.Second).
			Build(),
		fstimeout.New[*http.Response](10*time.Second),
	)
}

// BenchmarkStackRoundTripper: the preset client stack's own cost per call
// over an in-memory transport (a canned 200, no I/O), against failsafehttp
// with the same policies. The target (issue 16): at most a tenth of
// failsafehttp's cost added to the bare transport, and no allocation
// beyond the bare transport's.
func BenchmarkStackRoundTripper(b *testing.B) {
	base := retryCannedTransport{}
	c := stack.NewClient(stack.ClientConfig{Transport: base})
	defer c.Close()
	// The same stack without its two timeout layers, to show where the
	// cost is: each is a context.WithDeadline, a request clone and a body
	// wrapper per call.
	nt := stack.NewClient(stack.ClientConfig{Transport: base, Timeout: -1, AttemptTimeout: -1})
	defer nt.Close()
	transports := []struct {
		name string
		rt   http.RoundTripper
	}{
		{"bare", base},
		{"bulwark", c.Client.Transport},
		{"bulwark-no-timeouts", nt.Client.Transport},
		{"failsafehttp", failsafeStack(base)},
	}
	for _, tc := range transports {
		b.Run(tc.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, "http://backend.test/items/1", nil)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tc.rt.RoundTrip(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkStackLoopback: a GET to a real server on 127.0.0.1 through the
// preset client (stack.NewClient's defaults) and through a bare
// http.Client on the same transport settings, interleaved request by
// request, so that both see the same machine at the same moment. It
// reports each one's time per request and their ratio (target: at most
// 1.02). ns/op is the time of the pair.
func BenchmarkStackLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	bareTr := srv.Client().Transport.(*http.Transport).Clone()
	defer bareTr.CloseIdleConnections()
	bare := &http.Client{Transport: bareTr}
	stackTr := bareTr.Clone()
	defer stackTr.CloseIdleConnections()
	c := stack.NewClient(stack.ClientConfig{Transport: stackTr})
	defer c.Close()
	get := func(client *http.Client) time.Duration {
		start := time.Now()
		resp, err := client.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		return time.Since(start)
	}
	var tBare, tStack time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		// Alternate which goes first, so that neither always finds the
		// other's just-warmed caches.
		if n%2 == 0 {
			tBare += get(bare)
			tStack += get(c.Client)
		} else {
			tStack += get(c.Client)
			tBare += get(bare)
		}
		n++
	}
	b.ReportMetric(float64(tBare)/float64(n), "bare-ns/req")
	b.ReportMetric(float64(tStack)/float64(n), "bulwark-ns/req")
	b.ReportMetric(float64(tStack)/float64(tBare), "bulwark/bare")
}
