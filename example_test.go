package bulwark_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/retry"
)

// The recommended client stack in a few lines: retries outermost, then one
// circuit breaker per host, then the transport. The server fails the first
// request with a 503; the retry policy sends it again and the caller sees
// only the success.
func ExampleChainTransport() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()

	policy := retry.New(retry.Config{BaseDelay: time.Millisecond})
	defer policy.Close()
	hosts := breaker.NewSet(breaker.SetConfig{})
	defer hosts.Close()
	client := &http.Client{Transport: bulwark.ChainTransport(transport,
		policy.RoundTripper, // retries idempotent requests, with backoff and a budget
		hosts.RoundTripper,  // one breaker per host: a dead host fails fast
	)}

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%d %s after %d attempts\n", resp.StatusCode, body, hits.Load())
	// Output: 200 hello after 2 attempts
}

// The server side: a breaker in front of a handler sheds load with 503 and
// Retry-After while the handler keeps failing, and lets probes through
// once the open duration has passed.
func ExampleChainHandler_breaker() {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	guard := breaker.New(breaker.Config{ConsecutiveFailures: 2})
	defer guard.Close()
	h := bulwark.ChainHandler(app, guard.Handler)

	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		fmt.Println(rec.Code, rec.Header().Get("Retry-After") != "")
	}
	// Output:
	// 500 false
	// 500 false
	// 503 true
}
