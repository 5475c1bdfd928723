package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
)

// The tests below guard the previous-hosts rule: a retry, or a hedge, of
// a request goes to an endpoint that none of the request's earlier
// attempts went to, while one is left (avoid.go).

// visits records, per request id (header X-Req), the servers its attempts
// reached, in order.
type visits struct {
	mu sync.Mutex
	m  map[string][]int
}

func (v *visits) add(id string, server int) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string][]int{}
	}
	v.m[id] = append(v.m[id], server)
	return len(v.m[id])
}

func (v *visits) of(id string) []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]int(nil), v.m[id]...)
}

// drop hijacks the connection and closes it without an answer: the
// client's round trip fails with EOF or a reset, after the server did the
// work, as the drill's chaos.Drop does.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// avoidServers starts n loopback servers; handle decides what server i
// does with a request (after its visit is recorded). It returns their
// endpoints.
func avoidServers(t *testing.T, n int, v *visits, handle func(i int, w http.ResponseWriter, r *http.Request)) []lb.Endpoint {
	t.Helper()
	eps := make([]lb.Endpoint, n)
	for i := range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v.add(r.Header.Get("X-Req"), i)
			handle(i, w, r)
		}))
		t.Cleanup(srv.Close)
		eps[i] = lb.Endpoint{Addr: srv.Listener.Addr().String()}
	}
	return eps
}

// noRetryTransport never reuses a connection, so net/http's transport
// never sends a request again on its own after a dropped connection: each
// visit is one attempt of lb's.
func noRetryTransport(t *testing.T) *http.Transport {
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

var avoidPolicies = []struct {
	name string
	p    lb.Policy
}{
	{"P2C", lb.P2C(lb.P2CConfig{})},
	{"LeastRequest", lb.LeastRequest()},
	{"RoundRobin", lb.RoundRobin()},
	{"WeightedRoundRobin", lb.WeightedRoundRobin()},
	{"Random", lb.Random()},
	{"RingHash", lb.RingHash(lb.HashConfig{})},
}

// noEjection keeps the failing endpoint in rotation, so that only the
// rule under test keeps retries away from it.
var noEjection = lb.OutlierConfig{ConsecutiveFailures: -1, FailureRate: -1}

func get(t *testing.T, rt http.RoundTripper, ctx context.Context, id, key string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://service/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Req", id)
	if key != "" {
		req.Header.Set("X-Key", key)
	}
	return rt.RoundTrip(req)
}

// TestRetryAvoidsTheEndpointThatDroppedTheResponse is the drill's
// "responses dropped" phase, sequential: server 1 does the work and drops
// the connection. Every request must succeed, and none may reach server 1
// twice, under every policy (with RingHash, keys that land on server 1
// fall over to the next endpoint on the ring).
func TestRetryAvoidsTheEndpointThatDroppedTheResponse(t *testing.T) {
	for _, pc := range avoidPolicies {
		t.Run(pc.name, func(t *testing.T) {
			var v visits
			eps := avoidServers(t, 3, &v, func(i int, w http.ResponseWriter, r *http.Request) {
				if i == 1 {
					drop(w)
					return
				}
				io.WriteString(w, "ok")
			})
			b := lb.NewSeeded(lb.Config{Endpoints: eps, Policy: pc.p, Outlier: noEjection, HashKey: lb.HeaderKey("X-Key")}, 7)
			defer b.Close()
			p := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Microsecond, Budget: retry.UnlimitedBudget()})
			defer p.Close()
			rt := p.RoundTripper(b.RoundTripper(noRetryTransport(t)))
			firstOnDropper := 0
			for n := range 60 {
				id := strconv.Itoa(n)
				resp, err := get(t, rt, context.Background(), id, "user-"+id)
				if err != nil {
					t.Fatalf("request %s (servers %v): %v", id, v.of(id), err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				seen := v.of(id)
				if seen[0] == 1 {
					firstOnDropper++
				}
				ones := 0
				for _, s := range seen {
					if s == 1 {
						ones++
					}
				}
				if ones > 1 || len(seen) > 2 {
					t.Fatalf("request %s went to servers %v: a retry went back to the server that dropped it", id, seen)
				}
			}
			if firstOnDropper == 0 {
				t.Fatal("no request's first attempt went to the dropping server: the test proves nothing")
			}
		})
	}
}

// TestRetryUnderP2CDoesNotSpendItsAttemptsOnTheFailedEndpoint reproduces
// the drill's loss under P2C: the healthy endpoints had a failure of their
// own a moment ago (a lost hedge, a timeout in the latency spike) and have
// calls in flight, so a fast-failing endpoint, with nothing in flight,
// costs less than they do and wins every comparison it is drawn into.
// Without the previous-hosts rule, a request that met it first spent its
// three attempts on it (retry: attempts exhausted after 3 attempt(s):
// EOF). Either fix alone passes it: the previous-hosts rule, and the
// penalty growing with each failure in a row (see
// TestP2CFailuresInARowCostMore).
func TestRetryUnderP2CDoesNotSpendItsAttemptsOnTheFailedEndpoint(t *testing.T) {
	var v visits
	eps := avoidServers(t, 3, &v, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 1 {
			drop(w)
			return
		}
		io.WriteString(w, "ok")
	})
	b := lb.NewSeeded(lb.Config{Endpoints: eps, Outlier: noEjection}, 3)
	defer b.Close()
	// Servers 0 and 2: one failure each (cost: Penalty), then one call
	// held in flight each (cost doubled). Server 1 is fresh (cost 0).
	f0 := pickUntil(t, b, eps[0].Addr)
	f2 := pickUntil(t, b, eps[2].Addr)
	b.Done(f0, errors.New("lost a hedge"))
	b.Done(f2, errors.New("timed out"))
	h0 := pickUntil(t, b, eps[0].Addr)
	h2 := pickUntil(t, b, eps[2].Addr)
	defer b.Done(h0, nil)
	defer b.Done(h2, nil)
	p := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Microsecond, Budget: retry.UnlimitedBudget()})
	defer p.Close()
	rt := p.RoundTripper(b.RoundTripper(noRetryTransport(t)))
	hit := false
	for n := range 20 {
		id := strconv.Itoa(n)
		resp, err := get(t, rt, context.Background(), id, "")
		if err != nil {
			t.Fatalf("request %s (servers %v): %v", id, v.of(id), err)
		}
		resp.Body.Close()
		seen := v.of(id)
		if seen[0] == 1 {
			hit = true
			if len(seen) != 2 || seen[1] == 1 {
				t.Fatalf("request %s went to servers %v, want the dropping server once, then another", id, seen)
			}
		}
	}
	if !hit {
		t.Fatal("no request went to the dropping server first")
	}
}

// pickUntil picks until it gets addr (returning the other tickets as
// neutral) and returns that ticket.
func pickUntil(t *testing.T, b *lb.Balancer, addr string) lb.Ticket {
	t.Helper()
	for range 1000 {
		tk, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		if tk.Addr() == addr {
			return tk
		}
		b.Record(tk, bulwark.Neutral)
	}
	t.Fatalf("never picked %s", addr)
	return lb.Ticket{}
}

// TestHedgesGoToDifferentEndpoints: with hedging, each attempt of a call
// goes to an endpoint that no other attempt of the call is at, every
// policy. The servers hold every request until its third attempt has
// arrived, so the three attempts run at once.
func TestHedgesGoToDifferentEndpoints(t *testing.T) {
	for _, pc := range avoidPolicies {
		t.Run(pc.name, func(t *testing.T) {
			var v visits
			var mu sync.Mutex
			release := map[string]chan struct{}{}
			gate := func(id string) chan struct{} {
				mu.Lock()
				defer mu.Unlock()
				if release[id] == nil {
					release[id] = make(chan struct{})
				}
				return release[id]
			}
			eps := avoidServers(t, 3, &v, func(i int, w http.ResponseWriter, r *http.Request) {
				id := r.Header.Get("X-Req")
				ch := gate(id)
				if len(v.of(id)) == 3 {
					close(ch)
				}
				select {
				case <-ch:
					io.WriteString(w, "ok")
				case <-r.Context().Done():
				}
			})
			b := lb.NewSeeded(lb.Config{Endpoints: eps, Policy: pc.p, Outlier: noEjection, HashKey: lb.HeaderKey("X-Key")}, 11)
			defer b.Close()
			p := retry.New(retry.Config{MaxAttempts: 3, Budget: retry.UnlimitedBudget(),
				Hedge: retry.HedgeConfig{Delay: time.Millisecond, MaxInFlight: 3}})
			defer p.Close()
			rt := p.RoundTripper(b.RoundTripper(noRetryTransport(t)))
			for n := range 10 {
				id := strconv.Itoa(n)
				resp, err := get(t, rt, context.Background(), id, "same-key")
				if err != nil {
					t.Fatalf("request %s (servers %v): %v", id, v.of(id), err)
				}
				resp.Body.Close()
				seen := v.of(id)
				if len(seen) != 3 || seen[0] == seen[1] || seen[0] == seen[2] || seen[1] == seen[2] {
					t.Fatalf("request %s: attempts at servers %v, want three different ones", id, seen)
				}
			}
		})
	}
}

// TestRetryFallsBackToTriedEndpointsWhenAllWereTried: two endpoints, both
// failing, three attempts: the third goes to one of the two again instead
// of failing, and the first two went to different endpoints.
func TestRetryFallsBackToTriedEndpointsWhenAllWereTried(t *testing.T) {
	for _, pc := range avoidPolicies {
		t.Run(pc.name, func(t *testing.T) {
			var v visits
			eps := avoidServers(t, 2, &v, func(i int, w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			b := lb.NewSeeded(lb.Config{Endpoints: eps, Policy: pc.p, Outlier: noEjection, HashKey: lb.HeaderKey("X-Key")}, 5)
			defer b.Close()
			p := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Microsecond, Budget: retry.UnlimitedBudget()})
			defer p.Close()
			rt := p.RoundTripper(b.RoundTripper(noRetryTransport(t)))
			for n := range 5 {
				id := strconv.Itoa(n)
				resp, err := get(t, rt, context.Background(), id, "k")
				if err != nil {
					t.Fatalf("request %s: %v, want the last 503", id, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("status %d", resp.StatusCode)
				}
				seen := v.of(id)
				if len(seen) != 3 || seen[0] == seen[1] {
					t.Fatalf("request %s: attempts at servers %v, want 3, the first two different", id, seen)
				}
			}
		})
	}
}

// TestRetryAvoidanceDoesNotOutliveTheRequest: the record of a request's
// endpoints is the request's own. With RingHash, a key whose endpoint
// fails is retried on the next endpoint of the ring; the next request
// with that key, even under the same context, goes to the key's endpoint
// first again.
func TestRetryAvoidanceDoesNotOutliveTheRequest(t *testing.T) {
	var v visits
	var bad sync.Map // server -> failing
	eps := avoidServers(t, 3, &v, func(i int, w http.ResponseWriter, r *http.Request) {
		if _, ok := bad.Load(i); ok {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	})
	b := lb.NewSeeded(lb.Config{Endpoints: eps, Policy: lb.RingHash(lb.HashConfig{}), Outlier: noEjection, HashKey: lb.HeaderKey("X-Key")}, 5)
	defer b.Close()
	p := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Microsecond, Budget: retry.UnlimitedBudget()})
	defer p.Close()
	rt := p.RoundTripper(b.RoundTripper(noRetryTransport(t)))
	ctx := context.Background()
	resp, err := get(t, rt, ctx, "probe", "sticky")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	home := v.of("probe")[0]
	bad.Store(home, true)
	for n := range 3 {
		id := fmt.Sprint("r", n)
		resp, err := get(t, rt, ctx, id, "sticky")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seen := v.of(id)
		if resp.StatusCode != http.StatusOK || len(seen) != 2 || seen[0] != home || seen[1] == home {
			t.Fatalf("request %s: status %d, servers %v; want the key's server %d first, then another", id, resp.StatusCode, seen, home)
		}
		if n > 0 && seen[1] != v.of("r0")[1] {
			t.Fatalf("request %s fell over to server %d, the one before to %d: want the ring's next point every time", id, seen[1], v.of("r0")[1])
		}
	}
}

// TestDoRetriedAvoidsTheFailedEndpoint: Balancer.Do under Policy.Do gets
// the rule too, and the caller gets fn's error itself.
func TestDoRetriedAvoidsTheFailedEndpoint(t *testing.T) {
	eps := []lb.Endpoint{{Addr: "a:1"}, {Addr: "b:1"}, {Addr: "c:1"}}
	for _, pc := range avoidPolicies {
		t.Run(pc.name, func(t *testing.T) {
			b := lb.NewSeeded(lb.Config{Endpoints: eps, Policy: pc.p, Outlier: noEjection}, 9)
			defer b.Close()
			p := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Microsecond, Budget: retry.UnlimitedBudget()})
			defer p.Close()
			boom := errors.New("boom")
			for range 30 {
				var seen []string
				err := p.Do(context.Background(), func(ctx context.Context) error {
					return b.Do(ctx, func(_ context.Context, ep lb.Endpoint) error {
						seen = append(seen, ep.Addr)
						return boom
					})
				})
				if len(seen) != 3 || seen[0] == seen[1] || seen[1] == seen[2] || seen[0] == seen[2] {
					t.Fatalf("attempts at %v, want three different endpoints", seen)
				}
				var ex *retry.ExhaustedError
				if !errors.As(err, &ex) || ex.Last != boom {
					t.Fatalf("err = %#v, want an ExhaustedError whose Last is fn's error itself", err)
				}
			}
		})
	}
}

// TestP2CFailuresInARowCostMore: an endpoint that failed three times in a
// row, with nothing in flight, costs more than one that failed once and
// has a call in flight; with a flat penalty it cost half as much, and P2C
// kept choosing it.
func TestP2CFailuresInARowCostMore(t *testing.T) {
	eps := []lb.Endpoint{{Addr: "x:1"}, {Addr: "y:1"}}
	b := lb.NewSeeded(lb.Config{Endpoints: eps, Outlier: noEjection}, 1)
	defer b.Close()
	// Three calls in flight on each (P2C spreads them: an endpoint
	// without an estimate costs more with each call in flight).
	held := map[string][]lb.Ticket{}
	for range 50 {
		tk, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		if len(held[tk.Addr()]) == 3 {
			b.Record(tk, bulwark.Neutral)
			continue
		}
		held[tk.Addr()] = append(held[tk.Addr()], tk)
	}
	if len(held["x:1"]) != 3 || len(held["y:1"]) != 3 {
		t.Fatalf("held %d on x and %d on y, want 3 each", len(held["x:1"]), len(held["y:1"]))
	}
	for _, tk := range held["x:1"] {
		b.Done(tk, errors.New("connection reset"))
	}
	b.Done(held["y:1"][0], errors.New("lost a hedge"))
	b.Record(held["y:1"][1], bulwark.Neutral)
	defer b.Done(held["y:1"][2], nil)
	for range 100 {
		tk, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		b.Record(tk, bulwark.Neutral)
		if tk.Addr() != "y:1" {
			t.Fatalf("picked %s, which failed three times in a row, over y (one failure, one call in flight)", tk.Addr())
		}
	}
}

// TestFirstAttemptPaysNothingForAvoidance: a request whose first attempt
// succeeds costs what it cost before the previous-hosts rule: through
// retry and lb, the one allocation of lb's attempt; through Do, none.
func TestFirstAttemptPaysNothingForAvoidance(t *testing.T) {
	b := lb.New(lb.Config{Endpoints: endpoints(3)})
	defer b.Close()
	p := retry.New(retry.Config{})
	defer p.Close()
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}
	rt := p.RoundTripper(b.RoundTripper(staticTransport{resp}))
	req, _ := http.NewRequest(http.MethodGet, "http://svc/p", nil)
	if n := testing.AllocsPerRun(100, func() {
		r, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
	}); n != 1 {
		t.Errorf("retry over lb: %v allocations per call, want 1", n)
	}
	ctx := context.Background()
	fn := func(context.Context, lb.Endpoint) error { return nil }
	if n := testing.AllocsPerRun(100, func() {
		if err := b.Do(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Do: %v allocations per call, want 0", n)
	}
}

// TestFailedAttemptErrorIsTheTransportsOutsideRetry: lb alone hands a
// failed attempt's error back wrapped with its record; it reads as the
// transport's error (same text, errors.Is and errors.As see through it,
// url.Error.Timeout still answers), and retry's caller gets the error
// unwrapped.
func TestFailedAttemptErrorIsTheTransportsOutsideRetry(t *testing.T) {
	b := lb.New(lb.Config{Endpoints: endpoints(2), Outlier: noEjection})
	defer b.Close()
	cause := timeoutErr{}
	rt := b.RoundTripper(rtFunc(func(*http.Request) (*http.Response, error) { return nil, cause }))
	req, _ := http.NewRequest(http.MethodGet, "http://svc/p", nil)
	_, err := rt.RoundTrip(req)
	if err == nil || err.Error() != cause.Error() || !errors.Is(err, cause) {
		t.Fatalf("lb alone: %v, want the transport's error", err)
	}
	var te timeoutErr
	if !errors.As(err, &te) {
		t.Fatal("errors.As does not find the transport's error")
	}
	c := &http.Client{Transport: rt}
	_, err = c.Get("http://svc/p")
	var ue interface{ Timeout() bool }
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("http.Client: %v does not report a timeout", err)
	}
	p := retry.New(retry.Config{MaxAttempts: 2, BaseDelay: time.Microsecond, Budget: retry.UnlimitedBudget()})
	defer p.Close()
	_, err = p.RoundTripper(rt).RoundTrip(req)
	var ex *retry.ExhaustedError
	if !errors.As(err, &ex) || ex.Last != cause {
		t.Fatalf("through retry: %#v, want an ExhaustedError whose Last is the transport's error itself", err)
	}
	one := retry.New(retry.Config{MaxAttempts: 1})
	defer one.Close()
	if _, err = one.RoundTripper(rt).RoundTrip(req); err != cause {
		t.Fatalf("through retry with one attempt: %#v, want the transport's error itself", err)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }
