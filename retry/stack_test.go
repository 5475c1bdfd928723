package retry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/pipehttp"
	"github.com/bulwark-go/bulwark/retry"
)

// The client stack of the README and of examples/drill, over real servers:
// retry outermost, a breaker per host below it (retry's tests may combine
// primitives; retry itself does not import breaker).

// A breaker's rejection is the error that retry reads as a local rejection
// through its RetryAfter method; this keeps the two in step.
var _ interface{ RetryAfter() time.Duration } = (*breaker.OpenError)(nil)

// deadHost returns the address of a port on 127.0.0.1 that refuses
// connections.
func deadHost(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// Issue 7 item 11: with the README stack and no deadline, a GET to a host
// whose breaker is open returns at once (no attempt sent, no delay slept)
// with an error matching breaker.ErrOpen.
func TestOpenBreakerFailsFastWithoutDeadline(t *testing.T) {
	host := deadHost(t)
	var retries atomic.Int32
	policy := retry.New(retry.Config{BaseDelay: time.Millisecond,
		OnRetry: func(context.Context, retry.Event) { retries.Add(1) }})
	defer policy.Close()
	breakers := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 3}})
	defer breakers.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: policy.RoundTripper(breakers.RoundTripper(tr))}

	// Three refused attempts trip the breaker.
	if _, err := client.Get("http://" + host + "/"); err == nil || errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("first GET: %v, want the connection's error", err)
	}
	if s := breakers.Get(host).State(); s != breaker.Open {
		t.Fatalf("breaker %v after 3 refused attempts", s)
	}
	retries.Store(0)
	_, err := client.Get("http://" + host + "/")
	var ex *retry.ExhaustedError
	if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &ex) || ex.Reason != retry.ReasonRejected ||
		ex.Attempts != 1 || retries.Load() != 0 {
		t.Fatalf("GET to an open breaker: %v (%d retries), want ErrOpen at once", err, retries.Load())
	}
}

// The same stack in a synctest bubble shows it exactly: no fake time
// passes before the rejection is returned. With WaitRejected and a
// deadline, the call waits for the breaker instead, and succeeds once the
// host is back.
func TestOpenBreakerSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var up atomic.Bool
		tr := pipehttp.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !up.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			io.WriteString(w, "ok")
		}))
		breakers := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 3, OpenDuration: 5 * time.Second, OpenJitter: -1}})
		defer breakers.Close()
		get := func(p *retry.Policy, ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://backend.test/", nil)
			resp, err := p.RoundTripper(breakers.RoundTripper(tr)).RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return resp, err
		}
		fast := retry.New(retry.Config{BaseDelay: time.Millisecond, Budget: retry.UnlimitedBudget()})
		defer fast.Close()
		if resp, err := get(fast, context.Background()); err != nil || resp.StatusCode != 503 {
			t.Fatalf("first GET: %v, %v", resp, err)
		}
		start := time.Now()
		_, err := get(fast, context.Background())
		if !errors.Is(err, breaker.ErrOpen) || time.Since(start) != 0 {
			t.Fatalf("GET to an open breaker: %v after %v of fake time, want ErrOpen at once", err, time.Since(start))
		}

		up.Store(true)
		waiting := retry.New(retry.Config{WaitRejected: true, Budget: retry.UnlimitedBudget()})
		defer waiting.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start = time.Now()
		resp, err := get(waiting, ctx)
		if err != nil || resp.StatusCode != 200 || time.Since(start) <= 0 || time.Since(start) > 5*time.Second {
			t.Fatalf("WaitRejected: %v, %v after %v, want 200 once the breaker half-opens", resp, err, time.Since(start))
		}
	})
}

// picker is round-robin over instances that skips those whose breaker
// rejects, with a per-attempt timeout: a small stand-in for package lb
// (lb.Config.Breakers, a breaker per instance, and stack.ClientConfig's
// AttemptTimeout do this in the preset client stack).
type picker struct {
	addrs    []string
	breakers *breaker.Set
	base     http.RoundTripper
	next     atomic.Uint64
	timeout  time.Duration
}

func (p *picker) RoundTrip(req *http.Request) (*http.Response, error) {
	n := uint64(len(p.addrs))
	start := p.next.Add(1) - 1
	var err error
	for i := range n {
		addr := p.addrs[(start+i)%n]
		ctx, cancel := context.WithTimeout(req.Context(), p.timeout)
		out := req.Clone(ctx)
		out.URL.Host, out.Host = addr, addr
		var resp *http.Response
		resp, err = p.base.RoundTrip(out)
		if err != nil {
			cancel()
			if errors.Is(err, breaker.ErrOpen) || errors.Is(err, breaker.ErrHalfOpenFull) {
				continue
			}
			return nil, err
		}
		httpx.CancelOnClose(resp, cancel)
		return resp, nil
	}
	return nil, err
}

// hungListener accepts connections and never answers, like a wedged
// process; it closes them when the test ends.
func hungListener(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { lis.Close(); <-done })
	return lis.Addr().String()
}

// Issue 7 item 12: hedging must not blind the breaker. With one slow (or
// hung) instance among three, the hedge's losers on it are cancelled with
// bulwark.ErrSuperseded, which its breaker counts as failures: it opens,
// and the requests after that no longer pay the hedge delay. The bound is
// structural (p99 below the hedge delay), not a tight timing.
func TestHedgingOpensBreakerOfSlowInstance(t *testing.T) {
	const hedgeDelay = 100 * time.Millisecond
	for _, mode := range []string{"slow", "hung"} {
		t.Run(mode, func(t *testing.T) {
			ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			fast1, fast2 := httptest.NewServer(ok), httptest.NewServer(ok)
			defer fast1.Close()
			defer fast2.Close()
			var bad string
			if mode == "slow" {
				slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select { // answers after 1.5s, unless the client gives up first
					case <-time.After(1500 * time.Millisecond):
						io.WriteString(w, "late")
					case <-r.Context().Done():
					}
				}))
				defer slow.Close()
				bad = slow.Listener.Addr().String()
			} else {
				bad = hungListener(t)
			}
			breakers := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{
				WindowSize: 20, MinimumCalls: 5, SlowCallDuration: 200 * time.Millisecond,
				OpenDuration: time.Minute, // no half-open probe during the test
			}})
			defer breakers.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 16}
			defer tr.CloseIdleConnections()
			policy := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond,
				Hedge:  retry.HedgeConfig{Delay: hedgeDelay, MaxInFlight: 2},
				Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 0.2})})
			defer policy.Close()
			p := &picker{
				addrs:    []string{fast1.Listener.Addr().String(), bad, fast2.Listener.Addr().String()},
				breakers: breakers, base: breakers.RoundTripper(tr), timeout: 250 * time.Millisecond,
			}
			client := &http.Client{Transport: policy.RoundTripper(p)}
			get := func() time.Duration {
				start := time.Now()
				resp, err := client.Get("http://backend.test/")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				return time.Since(start)
			}
			for i := 0; breakers.Get(bad).State() != breaker.Open; i++ {
				if i == 100 {
					t.Fatalf("the %s instance's breaker is %v after 100 requests: hedged losers are not counted", mode, breakers.Get(bad).State())
				}
				get()
			}
			lat := make([]time.Duration, 200)
			for i := range lat {
				lat[i] = get()
			}
			slices.Sort(lat)
			if p99 := lat[len(lat)*99/100-1]; p99 >= hedgeDelay {
				t.Fatalf("p99 %v after the breaker opened, want below the hedge delay %v", p99, hedgeDelay)
			}
		})
	}
}
