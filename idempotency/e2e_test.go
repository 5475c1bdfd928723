package idempotency_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cenkalti/backoff/v4"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/retry"
)

// dropFirst is a failure drill's "response dropped after the server did
// the work": it sends the request for real, then throws the response away
// and reports a broken connection, the first n times.
type dropFirst struct {
	next    http.RoundTripper
	n       atomic.Int64
	dropped atomic.Int64
}

var errDropped = errors.New("drill: connection reset after the server answered")

func (d *dropFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err == nil && d.n.Add(-1) >= 0 {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d.dropped.Add(1)
		return nil, errDropped
	}
	return resp, err
}

// TestRetryWithAutomaticKeysRunsOnce closes the loop: a POST through
// bulwark's retry with automatic Idempotency-Keys, whose first response is
// lost after the server did the work, runs the handler exactly once and
// gives the client the original response.
func TestRetryWithAutomaticKeysRunsOnce(t *testing.T) {
	a := &app{}
	s := start(t, a, idempotency.Config{})
	policy := retry.New(retry.Config{
		NewBackOff:     func() backoff.BackOff { return &backoff.ZeroBackOff{} },
		IdempotencyKey: true,
	})
	defer policy.Close()
	drop := &dropFirst{next: http.DefaultTransport}
	drop.n.Store(1)
	client := &http.Client{Transport: policy.RoundTripper(drop)}
	resp, err := client.Post(s.URL, "text/plain", strings.NewReader("pay 10"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if drop.dropped.Load() != 1 {
		t.Fatalf("the drill dropped %d responses, want 1", drop.dropped.Load())
	}
	if a.runs.Load() != 1 {
		t.Fatalf("the handler ran %d times, want exactly once", a.runs.Load())
	}
	if resp.StatusCode != 201 || string(body) != "order 1 for pay 10" || resp.Header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("client got %d %q (replayed %q), want the original 201 \"order 1 for pay 10\", replayed",
			resp.StatusCode, body, resp.Header.Get(idempotency.ReplayedHeader))
	}

	// Without the middleware the same client acts twice: the duplicate
	// the middleware prevents.
	bare := &app{}
	bareSrv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { bare.ServeHTTP(w, r) }),
		idempotency.Config{Methods: []string{"NONE"}})
	drop.n.Store(1)
	resp2, err := client.Post(bareSrv.URL, "text/plain", strings.NewReader("pay 10"))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if bare.runs.Load() != 2 {
		t.Fatalf("without the middleware the handler ran %d times; the test's premise (a duplicate) did not hold", bare.runs.Load())
	}
}
