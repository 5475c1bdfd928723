package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
)

func oEndpoints(n int, zone string) []lb.Endpoint {
	eps := make([]lb.Endpoint, n)
	for i := range eps {
		eps[i] = lb.Endpoint{Addr: fmt.Sprintf("%s10.0.0.%d:80", zone, i+1), Zone: zone}
	}
	return eps
}

func oState(b *lb.Balancer, addr string) lb.EndpointState {
	for _, e := range b.Endpoints() {
		if e.Endpoint.Addr == addr {
			return e
		}
	}
	return lb.EndpointState{State: 255}
}

func oCount(t *testing.T, b *lb.Balancer, n int, key func(i int) string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		var tk lb.Ticket
		var err error
		if key != nil {
			tk, err = b.PickKey(key(i))
		} else {
			tk, err = b.Pick()
		}
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		got[tk.Addr()]++
		b.Done(tk, nil)
	}
	return got
}

// oFailOnce picks until the pick lands on addr (the others succeed) and
// reports that call as a failure.
func oFailOnce(t *testing.T, b *lb.Balancer, addr string) {
	t.Helper()
	for range 1000 {
		tk, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		if tk.Addr() == addr {
			b.Done(tk, errors.New("boom"))
			return
		}
		b.Done(tk, nil)
	}
	t.Fatalf("never picked %s", addr)
}

// chi2 returns the chi-square statistic of counts against expected shares.
func chi2(got map[string]int, want map[string]float64, n int) float64 {
	var s float64
	for a, p := range want {
		e := p * float64(n)
		d := float64(got[a]) - e
		s += d * d / e
	}
	return s
}

func TestOutsideDistributionPerPolicy(t *testing.T) {
	eps := oEndpoints(5, "")
	want := map[string]float64{}
	for _, e := range eps {
		want[e.Addr] = 0.2
	}
	// chi-square with 4 degrees of freedom: P(X > 33) < 1e-6.
	for name, p := range map[string]lb.Policy{
		"RoundRobin": lb.RoundRobin(), "WeightedRoundRobin": lb.WeightedRoundRobin(),
		"Random": lb.Random(), "LeastRequest": lb.LeastRequest(), "P2C": lb.P2C(lb.P2CConfig{}),
		"RingHash": lb.RingHash(lb.HashConfig{}),
	} {
		// Inside a bubble every call takes no time, so P2C sees equal
		// latencies; a keyless RingHash pick lands at a random point,
		// so its shares follow the ring's arcs (about 1/sqrt(256) apart).
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := lb.New(lb.Config{Endpoints: eps, Policy: p})
				defer b.Close()
				const n = 20000
				got := oCount(t, b, n, nil)
				if name == "RingHash" {
					for a := range want {
						if s := float64(got[a]) / n; s < 0.15 || s > 0.25 {
							t.Fatalf("share of %s %.3f: %v", a, s, got)
						}
					}
					return
				}
				if x := chi2(got, want, n); x > 33 {
					t.Fatalf("chi2 = %.1f for %v", x, got)
				}
			})
		})
	}
}

func TestOutsideWeightedShares(t *testing.T) {
	eps := []lb.Endpoint{{Addr: "a:1", Weight: 5}, {Addr: "b:1", Weight: 1}, {Addr: "c:1", Weight: 1}}
	want := map[string]float64{"a:1": 5.0 / 7, "b:1": 1.0 / 7, "c:1": 1.0 / 7}
	for name, p := range map[string]lb.Policy{
		"WeightedRoundRobin": lb.WeightedRoundRobin(), "Random": lb.Random(), "RingHash": lb.RingHash(lb.HashConfig{}),
	} {
		t.Run(name, func(t *testing.T) {
			b := lb.New(lb.Config{Endpoints: eps, Policy: p})
			defer b.Close()
			const n = 28000
			var got map[string]int
			if name == "RingHash" {
				got = oCount(t, b, n, func(i int) string { return fmt.Sprint("key-", i) })
			} else {
				got = oCount(t, b, n, nil)
			}
			// RingHash shares deviate by the ring's granularity, not only by sampling.
			limit := 25.0
			if name == "RingHash" {
				for a, p := range want {
					if s := float64(got[a]) / n; math.Abs(s-p) > 0.05 {
						t.Fatalf("%s share %.3f, want %.3f", a, s, p)
					}
				}
				return
			}
			if x := chi2(got, want, n); x > limit {
				t.Fatalf("chi2 = %.1f for %v", x, got)
			}
		})
	}
	t.Run("smooth order", func(t *testing.T) {
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.WeightedRoundRobin()})
		defer b.Close()
		var seq strings.Builder
		for range 14 {
			tk, _ := b.Pick()
			seq.WriteString(tk.Addr()[:1])
			b.Done(tk, nil)
		}
		if !strings.Contains(strings.Repeat("aabacaa", 4), seq.String()) {
			t.Fatalf("order %q is not a rotation of a a b a c a a", seq.String())
		}
	})
}

func TestOutsideRingHashStabilityAndBoundedLoad(t *testing.T) {
	const n = 10
	eps := oEndpoints(n, "")
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RingHash(lb.HashConfig{})})
	defer b.Close()
	const keys = 20000
	before := make([]string, keys)
	for i := range keys {
		tk, err := b.PickKey(fmt.Sprint("user-", i))
		if err != nil {
			t.Fatal(err)
		}
		before[i] = tk.Addr()
		b.Done(tk, nil)
	}
	if err := b.Update(append(eps, lb.Endpoint{Addr: "new:80"})); err != nil {
		t.Fatal(err)
	}
	moved, toNew := 0, 0
	for i := range keys {
		tk, _ := b.PickKey(fmt.Sprint("user-", i))
		if tk.Addr() != before[i] {
			moved++
			if tk.Addr() == "new:80" {
				toNew++
			}
		}
		b.Done(tk, nil)
	}
	frac := float64(moved) / keys
	if frac < 0.5/(n+1) || frac > 2.0/(n+1) {
		t.Fatalf("%.3f of keys moved, want about %.3f", frac, 1.0/(n+1))
	}
	if toNew != moved {
		t.Fatalf("%d keys moved between old endpoints", moved-toNew)
	}

	// Bounded load: one hot key held in flight never loads an endpoint
	// past 1.25 × average + 1.
	var held []lb.Ticket
	for range 100 {
		tk, err := b.PickKey("hot")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tk)
	}
	for _, e := range b.Endpoints() {
		if e.InFlight > int64(math.Ceil(1.25*100/11.0))+1 {
			t.Fatalf("%s carries %d of 100 in flight", e.Endpoint.Addr, e.InFlight)
		}
	}
	for _, tk := range held {
		b.Done(tk, nil)
	}
}

func TestOutsideZonePreferenceAndSpill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local := oEndpoints(10, "a")
		remote := oEndpoints(10, "b")
		b := lb.New(lb.Config{Endpoints: append(append([]lb.Endpoint{}, local...), remote...), Zone: "a",
			Policy:  lb.RoundRobin(),
			Outlier: lb.OutlierConfig{MaxEjectedFraction: 1, ConsecutiveFailures: 1}})
		defer b.Close()
		share := func() float64 {
			got := oCount(t, b, 20000, nil)
			l := 0
			for _, e := range local {
				l += got[e.Addr]
			}
			return float64(l) / 20000
		}
		if s := share(); s != 1 {
			t.Fatalf("local share %.3f with all healthy, want 1", s)
		}
		eject := func(addr string) { oFailOnce(t, b, addr) }
		eject(local[0].Addr)
		eject(local[1].Addr)
		if s := share(); s != 1 {
			t.Fatalf("local share %.3f with 80%% healthy, want 1", s)
		}
		for i := 2; i < 5; i++ {
			eject(local[i].Addr)
		}
		// h = 0.5: local keeps 0.5/0.8 = 62.5%.
		if s := share(); math.Abs(s-0.625) > 0.02 {
			t.Fatalf("local share %.3f with 50%% healthy, want 0.625", s)
		}
	})
}

func TestOutsideEjectionReturnAndGrowth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []lb.StateChangeEvent
		eps := oEndpoints(10, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin(),
			OnStateChange: func(_ context.Context, ev lb.StateChangeEvent) {
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
			}})
		defer b.Close()
		bad := eps[3].Addr
		failN := func(n int) {
			for done := 0; done < n; {
				tk, err := b.Pick()
				if err != nil {
					t.Fatal(err)
				}
				if tk.Addr() == bad {
					b.Done(tk, errors.New("boom"))
					done++
				} else {
					b.Done(tk, nil)
				}
				if oState(b, bad).State == lb.Ejected {
					return
				}
			}
		}
		failN(4)
		if st := oState(b, bad).State; st != lb.Healthy {
			t.Fatalf("after 4 failures: %v", st)
		}
		failN(1)
		if st := oState(b, bad).State; st != lb.Ejected {
			t.Fatalf("after 5 failures: %v", st)
		}
		t0 := time.Now()
		got := oCount(t, b, 900, nil)
		if got[bad] != 0 {
			t.Fatalf("ejected endpoint picked %d times", got[bad])
		}
		for oState(b, bad).State == lb.Ejected {
			time.Sleep(time.Second)
			if time.Since(t0) > time.Hour {
				t.Fatal("never returned")
			}
		}
		first := time.Since(t0)
		if first < 30*time.Second || first > 41*time.Second {
			t.Fatalf("first ejection lasted %v, want 30 s + at most one 10 s sweep", first)
		}
		failN(5)
		t0 = time.Now()
		for oState(b, bad).State == lb.Ejected {
			time.Sleep(time.Second)
		}
		second := time.Since(t0)
		if second < 60*time.Second || second > 71*time.Second {
			t.Fatalf("second ejection lasted %v, want 60 s", second)
		}
		if e := oState(b, bad).Ejections; e != 2 {
			t.Fatalf("Ejections = %d, want 2", e)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(events) != 4 || events[0].To != lb.Ejected || events[0].Reason != "consecutive failures" ||
			events[1].To != lb.Healthy || events[1].Reason != "ejection ended" || events[0].Endpoint.Addr != bad {
			t.Fatalf("events %+v", events)
		}
	})
}

func TestOutsideEjectionCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct{ n, want int }{{10, 1}, {20, 2}, {3, 1}} {
			eps := oEndpoints(tc.n, "")
			b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin(), PanicThreshold: -1})
			for range 50 * tc.n {
				tk, err := b.Pick()
				if err != nil {
					t.Fatal(err)
				}
				b.Done(tk, errors.New("all fail"))
			}
			ej := 0
			for _, e := range b.Endpoints() {
				if e.State == lb.Ejected {
					ej++
				}
			}
			if ej != tc.want {
				t.Errorf("%d endpoints: %d ejected, want %d", tc.n, ej, tc.want)
			}
			b.Close()
		}
	})
}

func TestOutsideFailureRateEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(2, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin(),
			Outlier: lb.OutlierConfig{ConsecutiveFailures: -1, MaxEjectedFraction: 0.5}})
		defer b.Close()
		// eps[0]: 90% failures over 100 calls (runs of failures do not eject: disabled).
		k := 0
		for range 200 {
			tk, _ := b.Pick()
			var err error
			if tk.Addr() == eps[0].Addr {
				k++
				if k%10 != 0 {
					err = errors.New("x")
				}
			}
			b.Done(tk, err)
		}
		if st := oState(b, eps[0].Addr).State; st != lb.Healthy {
			t.Fatalf("ejected before the interval's end: %v", st)
		}
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if st := oState(b, eps[0].Addr).State; st != lb.Ejected {
			t.Fatalf("90%% failures over 100 calls: %v, want ejected", st)
		}
		if st := oState(b, eps[1].Addr).State; st != lb.Healthy {
			t.Fatalf("healthy endpoint: %v", st)
		}
	})
}

func TestOutsidePanicThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(4, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin(),
			Outlier: lb.OutlierConfig{ConsecutiveFailures: 1, MaxEjectedFraction: 1}})
		defer b.Close()
		fail := func(addr string) { oFailOnce(t, b, addr) }
		fail(eps[0].Addr)
		fail(eps[1].Addr)
		if b.Panicking() {
			t.Fatal("panicking with 50% available")
		}
		got := oCount(t, b, 1000, nil)
		if got[eps[0].Addr]+got[eps[1].Addr] != 0 {
			t.Fatalf("ejected picked: %v", got)
		}
		fail(eps[2].Addr)
		if !b.Panicking() {
			t.Fatal("not panicking with 25% available")
		}
		got = oCount(t, b, 1000, nil)
		for _, e := range eps {
			if got[e.Addr] < 200 {
				t.Fatalf("panic mode does not spread over all: %v", got)
			}
		}
	})
}

func TestOutsideSlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(2, "")
		b := lb.New(lb.Config{Endpoints: eps[:1], Policy: lb.RoundRobin(), SlowStart: 100 * time.Second})
		defer b.Close()
		if err := b.Update(eps); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		share := func() float64 {
			got := oCount(t, b, 20000, nil)
			return float64(got[eps[1].Addr]) / 20000
		}
		// RoundRobin with the new one at weight w: share w/(1+w).
		s0 := share()
		if s0 > 0.15 {
			t.Fatalf("new endpoint share %.3f at start, want about 0.1/1.1", s0)
		}
		time.Sleep(50 * time.Second)
		synctest.Wait()
		s1 := share()
		if s1 < s0+0.1 || s1 > 0.45 {
			t.Fatalf("share %.3f half-way (start %.3f)", s1, s0)
		}
		time.Sleep(51 * time.Second)
		synctest.Wait()
		if s2 := share(); math.Abs(s2-0.5) > 0.02 {
			t.Fatalf("share %.3f after the window, want 0.5", s2)
		}
	})
}

func TestOutsideDoneAndDoClassification(t *testing.T) {
	eps := oEndpoints(1, "")
	b := lb.New(lb.Config{Endpoints: eps, Outlier: lb.OutlierConfig{ConsecutiveFailures: -1}})
	defer b.Close()
	counts := func() (int64, int64) { s := oState(b, eps[0].Addr); return s.Successes, s.Failures }
	check := func(what string, ws, wf int64) {
		t.Helper()
		if s, f := counts(); s != ws || f != wf {
			t.Fatalf("%s: successes %d failures %d, want %d %d", what, s, f, ws, wf)
		}
	}
	tk, _ := b.Pick()
	b.Done(tk, nil)
	check("nil", 1, 0)
	tk, _ = b.Pick()
	b.Done(tk, context.Canceled)
	check("Canceled", 1, 0)
	tk, _ = b.Pick()
	b.Done(tk, fmt.Errorf("wrapped: %w", context.Canceled))
	check("wrapped Canceled", 1, 0)
	tk, _ = b.Pick()
	b.Done(tk, context.DeadlineExceeded)
	check("DeadlineExceeded", 1, 1)
	b.Done(lb.Ticket{}, errors.New("ignored"))
	check("zero ticket", 1, 1)

	ctx, cancel := context.WithCancelCause(context.Background())
	err := b.Do(ctx, func(ctx context.Context, ep lb.Endpoint) error {
		cancel(errors.New("caller went away"))
		return context.Cause(ctx)
	})
	if err == nil {
		t.Fatal("Do lost fn's error")
	}
	check("caller cancel with cause", 1, 1)

	ctx, cancel = context.WithCancelCause(context.Background())
	_ = b.Do(ctx, func(ctx context.Context, ep lb.Endpoint) error {
		cancel(bulwark.ErrSuperseded)
		return ctx.Err()
	})
	check("superseded", 1, 2)

	v, err := lb.Call(context.Background(), b, func(ctx context.Context, ep lb.Endpoint) (string, error) {
		return ep.Addr, nil
	})
	if err != nil || v != eps[0].Addr {
		t.Fatalf("Call = %q, %v", v, err)
	}
	check("Call", 2, 2)

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		_ = b.Do(context.Background(), func(context.Context, lb.Endpoint) error { panic("boom") })
	}()
	check("panic", 2, 3)
	if st := oState(b, eps[0].Addr); st.InFlight != 0 {
		t.Fatalf("in flight %d after all calls", st.InFlight)
	}

	for name, f := range map[string]func(){
		"Do nil ctx": func() { _ = b.Do(nil, func(context.Context, lb.Endpoint) error { return nil }) }, //nolint:staticcheck
		"Do nil fn":  func() { _ = b.Do(context.Background(), nil) },
		"Call nil b": func() {
			_, _ = lb.Call[int](context.Background(), nil, func(context.Context, lb.Endpoint) (int, error) { return 0, nil })
		},
		"Call nil fn":  func() { _, _ = lb.Call[int](context.Background(), b, nil) },
		"Call nil ctx": func() { _, _ = lb.Call(nil, b, func(context.Context, lb.Endpoint) (int, error) { return 0, nil }) }, //nolint:staticcheck
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), "lb:") {
					t.Errorf("%s: recovered %v", name, r)
				}
			}()
			f()
		}()
	}
	if st := oState(b, eps[0].Addr); st.InFlight != 0 || st.Successes != 2 {
		t.Fatalf("nil-argument panics had side effects: %+v", st)
	}
}

func TestOutsideClassifyOverride(t *testing.T) {
	eps := oEndpoints(1, "")
	var gotCtx context.Context
	b := lb.New(lb.Config{Endpoints: eps, Classify: func(ctx context.Context, err error) bulwark.Outcome {
		gotCtx = ctx
		if err != nil && err.Error() == "fine" {
			return bulwark.Success
		}
		return bulwark.Failure
	}})
	defer b.Close()
	tk, _ := b.Pick()
	b.Done(tk, errors.New("fine"))
	if s := oState(b, eps[0].Addr); s.Successes != 1 || gotCtx == nil {
		t.Fatalf("Classify not used by Done: %+v ctx %v", s, gotCtx)
	}
	tk, _ = b.Pick()
	b.Record(tk, bulwark.Failure)
	if s := oState(b, eps[0].Addr); s.Failures != 1 {
		t.Fatalf("Record: %+v", s)
	}
}

func TestOutsideUpdate(t *testing.T) {
	b := lb.New(lb.Config{})
	defer b.Close()
	if _, err := b.Pick(); !errors.Is(err, lb.ErrNoEndpoints) {
		t.Fatalf("empty balancer Pick: %v", err)
	}
	good := oEndpoints(3, "")
	if err := b.Update(good); err != nil {
		t.Fatal(err)
	}
	for name, eps := range map[string][]lb.Endpoint{
		"dup":         {{Addr: "a:1"}, {Addr: "a:1"}},
		"empty addr":  {{Addr: ""}},
		"neg weight":  {{Addr: "a:1", Weight: -1}},
		"huge weight": {{Addr: "a:1", Weight: lb.MaxWeight + 1}},
		"too many":    oEndpoints(lb.MaxEndpoints+1, ""),
	} {
		if err := b.Update(eps); err == nil {
			t.Errorf("Update(%s) = nil", name)
		}
		if n := len(b.Endpoints()); n != 3 {
			t.Fatalf("Update(%s) changed the set to %d", name, n)
		}
	}
	// Update to empty: Pick fails with ErrNoEndpoints.
	if err := b.Update(nil); err != nil {
		t.Fatalf("Update(nil) = %v", err)
	}
	if _, err := b.Pick(); !errors.Is(err, lb.ErrNoEndpoints) {
		t.Fatalf("Pick after Update(nil): %v", err)
	}
	// caller's slice is not retained
	eps := oEndpoints(2, "")
	if err := b.Update(eps); err != nil {
		t.Fatal(err)
	}
	eps[0].Addr = "mutated:1"
	if oState(b, "mutated:1").State != 255 {
		t.Fatal("Update keeps the caller's slice")
	}
}

func TestOutsideConfigValidate(t *testing.T) {
	nan := math.NaN()
	bad := map[string]lb.Config{
		"ZoneSpill NaN":          {ZoneSpill: nan},
		"ZoneSpill >1":           {ZoneSpill: 1.5},
		"ZoneSpill <0":           {ZoneSpill: -0.5},
		"PanicThreshold NaN":     {PanicThreshold: nan},
		"PanicThreshold >1":      {PanicThreshold: 2},
		"PanicThreshold -Inf":    {PanicThreshold: math.Inf(-1)},
		"FailureRate -Inf":       {Outlier: lb.OutlierConfig{FailureRate: math.Inf(-1)}},
		"Jitter -Inf":            {Health: lb.HealthConfig{Jitter: math.Inf(-1)}},
		"BalanceFactor -Inf":     {Policy: lb.RingHash(lb.HashConfig{BalanceFactor: math.Inf(-1)})},
		"SlowStart <0":           {SlowStart: -time.Second},
		"SlowStart huge":         {SlowStart: 100 * 24 * time.Hour},
		"ResolveInterval <0":     {ResolveInterval: -1},
		"ResolveTimeout <0":      {ResolveTimeout: -1},
		"MaxAttempts <0":         {MaxAttempts: -1},
		"MaxAttempts huge":       {MaxAttempts: 1 << 40},
		"Host invalid":           {Host: 9},
		"FailureRate NaN":        {Outlier: lb.OutlierConfig{FailureRate: nan}},
		"FailureRate >1":         {Outlier: lb.OutlierConfig{FailureRate: 1.01}},
		"Consecutive huge":       {Outlier: lb.OutlierConfig{ConsecutiveFailures: math.MaxInt}},
		"MinimumCalls <0":        {Outlier: lb.OutlierConfig{MinimumCalls: -1}},
		"Interval <0":            {Outlier: lb.OutlierConfig{Interval: -1}},
		"BaseEjection <0":        {Outlier: lb.OutlierConfig{BaseEjectionTime: -1}},
		"MaxEjection huge":       {Outlier: lb.OutlierConfig{MaxEjectionTime: math.MaxInt64}},
		"MaxEjectedFraction NaN": {Outlier: lb.OutlierConfig{MaxEjectedFraction: nan}},
		"MaxEjectedFraction >1":  {Outlier: lb.OutlierConfig{MaxEjectedFraction: 1.1}},
		"MaxEjectedFraction <0":  {Outlier: lb.OutlierConfig{MaxEjectedFraction: -0.1}},
		"Health Interval <0":     {Health: lb.HealthConfig{Interval: -1}},
		"Health Timeout <0":      {Health: lb.HealthConfig{Timeout: -1}},
		"Healthy <0":             {Health: lb.HealthConfig{HealthyThreshold: -1}},
		"Unhealthy huge":         {Health: lb.HealthConfig{UnhealthyThreshold: math.MaxInt}},
		"Jitter NaN":             {Health: lb.HealthConfig{Jitter: nan}},
		"Jitter >1":              {Health: lb.HealthConfig{Jitter: 2}},
		"Jitter +Inf":            {Health: lb.HealthConfig{Jitter: math.Inf(1)}},
		"RingSize <0":            {Policy: lb.RingHash(lb.HashConfig{RingSize: -1})},
		"RingSize huge":          {Policy: lb.RingHash(lb.HashConfig{RingSize: lb.MaxRingSize + 1})},
		"BalanceFactor NaN":      {Policy: lb.RingHash(lb.HashConfig{BalanceFactor: nan})},
		"BalanceFactor 0.5":      {Policy: lb.RingHash(lb.HashConfig{BalanceFactor: 0.5})},
		"BalanceFactor +Inf":     {Policy: lb.RingHash(lb.HashConfig{BalanceFactor: math.Inf(1)})},
		"Decay <0":               {Policy: lb.P2C(lb.P2CConfig{Decay: -1})},
		"Penalty huge":           {Policy: lb.P2C(lb.P2CConfig{Penalty: 1000 * time.Hour})},
		"Endpoints dup":          {Endpoints: []lb.Endpoint{{Addr: "a:1"}, {Addr: "a:1"}}},
		"Endpoints empty addr":   {Endpoints: []lb.Endpoint{{}}},
		"Endpoints weight":       {Endpoints: []lb.Endpoint{{Addr: "a:1", Weight: -3}}},
	}
	for name, c := range bad {
		err := c.Validate()
		var ce *bulwark.ConfigError
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%s: Validate = %v", name, err)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: New did not panic", name)
				}
			}()
			b := lb.New(c)
			b.Close()
		}()
	}
	good := map[string]lb.Config{
		"zero":             {},
		"negative offs":    {PanicThreshold: -1, Outlier: lb.OutlierConfig{ConsecutiveFailures: -1, FailureRate: -1}, Health: lb.HealthConfig{Jitter: -1}},
		"balance disabled": {Policy: lb.RingHash(lb.HashConfig{BalanceFactor: -1})},
		"limits":           {MaxAttempts: lb.MaxAttemptsLimit, SlowStart: lb.MaxDuration},
	}
	for name, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOutsideCloseIdempotent(t *testing.T) {
	b := lb.New(lb.Config{Endpoints: oEndpoints(2, ""), Health: lb.HealthConfig{
		Checker: lb.CheckerFunc(func(context.Context, lb.Endpoint) error { return nil })}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	tk, err := b.Pick()
	if err != nil {
		t.Fatal(err)
	}
	b.Done(tk, nil)
}

func TestOutsideBreakers(t *testing.T) {
	set := breaker.NewSet(breaker.SetConfig{})
	defer set.Close()
	eps := oEndpoints(3, "")
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin(), Breakers: set})
	defer b.Close()
	set.Get(eps[0].Addr).ForceOpen()
	got := oCount(t, b, 300, nil)
	if got[eps[0].Addr] != 0 || got[eps[1].Addr] != 150 {
		t.Fatalf("open breaker not skipped: %v", got)
	}
	set.Get(eps[1].Addr).ForceOpen()
	set.Get(eps[2].Addr).ForceOpen()
	_, err := b.Pick()
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("all open: %v", err)
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) {
		t.Fatalf("rejection %v has no RetryAfter", err)
	}
	// Done reaches the breaker.
	set.Get(eps[1].Addr).Reset()
	before := 0
	tk, err := b.Pick()
	if err != nil || tk.Addr() != eps[1].Addr {
		t.Fatalf("pick %v %v", tk.Addr(), err)
	}
	_ = before
	b.Done(tk, errors.New("x"))
	if st := set.Get(eps[1].Addr).Counts(); st.Failures == 0 {
		t.Fatalf("breaker did not see the failure: %+v", st)
	}
}

// ---- HTTP ----

type oServer struct {
	srv      *httptest.Server
	n        atomic.Int64
	status   atomic.Int64
	lastHost atomic.Value
	lastBody atomic.Value
}

func oStart(t *testing.T) *oServer {
	s := &oServer{}
	s.status.Store(200)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		s.lastHost.Store(r.Host)
		body, _ := io.ReadAll(r.Body)
		s.lastBody.Store(string(body))
		w.WriteHeader(int(s.status.Load()))
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *oServer) addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestOutsideRoundTripperRetryAboveNoRequestLost(t *testing.T) {
	srvs := []*oServer{oStart(t), oStart(t), oStart(t)}
	srvs[1].status.Store(503)
	var eps []lb.Endpoint
	for _, s := range srvs {
		eps = append(eps, lb.Endpoint{Addr: s.addr()})
	}
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin()})
	defer b.Close()
	pol := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Microsecond, Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 1})})
	defer pol.Close()
	c := &http.Client{Transport: pol.RoundTripper(b.RoundTripper(nil))}
	defer c.CloseIdleConnections()
	for i := range 300 {
		resp, err := c.Get("http://svc/x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d lost: %d", i, resp.StatusCode)
		}
	}
	if st := oState(b, eps[1].Addr).State; st != lb.Ejected {
		t.Fatalf("failing server %v", st)
	}
}

func TestOutsideRoundTripperHostPolicyAndNoMutation(t *testing.T) {
	s := oStart(t)
	for _, tc := range []struct {
		policy   lb.HostPolicy
		reqHost  string
		wantHost string
	}{
		{lb.HostLogical, "", "svc"},
		{lb.HostLogical, "virtual.example", "virtual.example"},
		{lb.HostEndpoint, "", s.addr()},
		{lb.HostEndpoint, "virtual.example", s.addr()},
	} {
		b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: s.addr()}}, Host: tc.policy})
		rt := b.RoundTripper(nil)
		req, _ := http.NewRequest("GET", "http://svc/p?q=1", nil)
		req.Host = tc.reqHost
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if h := s.lastHost.Load(); h != tc.wantHost {
			t.Errorf("policy %v req.Host %q: server saw Host %q, want %q", tc.policy, tc.reqHost, h, tc.wantHost)
		}
		if req.URL.Host != "svc" || req.Host != tc.reqHost {
			t.Errorf("request mutated: %v %q", req.URL, req.Host)
		}
		if resp.Request == req {
			// fine either way, but the URL seen must not be the caller's modified
		}
		b.Close()
	}
}

type countingBody struct {
	r      io.Reader
	closed atomic.Int32
}

func (c *countingBody) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *countingBody) Close() error               { c.closed.Add(1); return nil }

func TestOutsideRoundTripperSafeToRepeat(t *testing.T) {
	s := oStart(t)
	dead := deadAddr(t)
	mk := func() *lb.Balancer {
		// Round robin from a random start: the dead endpoint is tried
		// first for about half the requests.
		return lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: dead}, {Addr: s.addr()}}, Policy: lb.RoundRobin(),
			Outlier: lb.OutlierConfig{ConsecutiveFailures: -1, FailureRate: -1}, PanicThreshold: -1})
	}
	t.Run("GET repeated", func(t *testing.T) {
		b := mk()
		defer b.Close()
		c := &http.Client{Transport: b.RoundTripper(nil)}
		for i := range 20 {
			resp, err := c.Get("http://svc/")
			if err != nil {
				t.Fatalf("GET %d: %v", i, err)
			}
			resp.Body.Close()
		}
	})
	t.Run("POST with key and body rewound", func(t *testing.T) {
		b := mk()
		defer b.Close()
		rt := b.RoundTripper(nil)
		for i := range 20 {
			req, _ := http.NewRequest("POST", "http://svc/", strings.NewReader("payload"))
			req.Header.Set("Idempotency-Key", fmt.Sprint("k", i))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatalf("POST %d: %v", i, err)
			}
			resp.Body.Close()
			if got := s.lastBody.Load(); got != "payload" {
				t.Fatalf("server got body %q", got)
			}
		}
	})
	t.Run("POST without key never repeated", func(t *testing.T) {
		b := mk()
		defer b.Close()
		rt := b.RoundTripper(nil)
		fails := 0
		for range 20 {
			body := &countingBody{r: strings.NewReader("payload")}
			req, _ := http.NewRequest("POST", "http://svc/", body)
			before := s.n.Load()
			resp, err := rt.RoundTrip(req)
			if err != nil {
				fails++
				if s.n.Load() != before {
					t.Fatal("failed POST reached the server")
				}
				if body.closed.Load() == 0 {
					t.Fatal("body not closed after a failed POST")
				}
				continue
			}
			resp.Body.Close()
		}
		if fails == 0 {
			t.Fatal("POST without Idempotency-Key was repeated after a dial error")
		}
	})
	t.Run("PUT without GetBody not repeated", func(t *testing.T) {
		b := mk()
		defer b.Close()
		rt := b.RoundTripper(nil)
		fails := 0
		for range 20 {
			body := &countingBody{r: strings.NewReader("payload")}
			req, _ := http.NewRequest("PUT", "http://svc/", body)
			if req.GetBody != nil {
				t.Fatal("GetBody set for a custom reader")
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				fails++
				continue
			}
			resp.Body.Close()
			if got := s.lastBody.Load(); got != "payload" {
				t.Fatalf("server got body %q", got)
			}
		}
		if fails == 0 {
			t.Fatal("PUT with a one-shot body was repeated")
		}
	})
	t.Run("rejected request body closed", func(t *testing.T) {
		set := breaker.NewSet(breaker.SetConfig{})
		defer set.Close()
		b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: s.addr()}}, Breakers: set})
		defer b.Close()
		set.Get(s.addr()).ForceOpen()
		body := &countingBody{r: strings.NewReader("payload")}
		req, _ := http.NewRequest("POST", "http://svc/", body)
		_, err := b.RoundTripper(nil).RoundTrip(req)
		if !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("err %v", err)
		}
		if body.closed.Load() == 0 {
			t.Fatal("body not closed")
		}
	})
	t.Run("no endpoints closes body", func(t *testing.T) {
		b := lb.New(lb.Config{})
		defer b.Close()
		body := &countingBody{r: strings.NewReader("payload")}
		req, _ := http.NewRequest("POST", "http://svc/", body)
		_, err := b.RoundTripper(nil).RoundTrip(req)
		if !errors.Is(err, lb.ErrNoEndpoints) {
			t.Fatalf("err %v", err)
		}
		if body.closed.Load() == 0 {
			t.Fatal("body not closed")
		}
	})
}

func TestOutsideHTTPHealthChecks(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	var checks atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
		if r.URL.Path != "/healthz" || r.Method != "GET" {
			w.WriteHeader(404)
			return
		}
		if !healthy.Load() {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	dead := deadAddr(t)
	synctest.Test(t, func(t *testing.T) {
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		var mu sync.Mutex
		var events []lb.StateChangeEvent
		b := lb.New(lb.Config{
			Endpoints: []lb.Endpoint{{Addr: addr}, {Addr: dead}}, PanicThreshold: -1,
			Health: lb.HealthConfig{Checker: lb.HTTPChecker{Path: "/healthz", Client: &http.Client{Transport: tr}},
				Jitter: -1, Interval: 10 * time.Second},
			OnStateChange: func(_ context.Context, ev lb.StateChangeEvent) {
				if ev.Endpoint.Addr == addr {
					mu.Lock()
					events = append(events, ev)
					mu.Unlock()
				}
			},
		})
		defer b.Close()
		_ = b
		step := func() {
			time.Sleep(10 * time.Second)
			// The round's checks block on real network I/O, which is not
			// durable blocking: Wait returns once they are done.
			synctest.Wait()
		}
		step()
		if st := oState(b, addr).State; st != lb.Healthy {
			t.Fatalf("state %v", st)
		}
		healthy.Store(false)
		step()
		step()
		if st := oState(b, addr).State; st != lb.Healthy {
			t.Fatalf("unhealthy after 2 failed checks: %v", st)
		}
		step()
		if st := oState(b, addr).State; st != lb.Unhealthy {
			t.Fatalf("state %v after 3 failed checks", st)
		}
		healthy.Store(true)
		step()
		if st := oState(b, addr).State; st != lb.Unhealthy {
			t.Fatalf("healthy after 1 passed check: %v", st)
		}
		step()
		if st := oState(b, addr).State; st != lb.Healthy {
			t.Fatalf("state %v after 2 passed checks", st)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(events) != 2 || events[0].Reason != "active check failed" || events[1].Reason != "active check passed" {
			t.Fatalf("events %+v", events)
		}
	})
}

func TestOutsideClientIPAndKeys(t *testing.T) {
	for _, tc := range []struct {
		xff, xri, remote, want string
	}{
		{"1.2.3.4, 5.6.7.8", "", "", "1.2.3.4"},
		{" 1.2.3.4 ", "", "", "1.2.3.4"},
		{"garbage", "9.9.9.9", "", "9.9.9.9"},
		{"", "", "[::1]:4000", "::1"},
		{"", "", "10.1.1.1:55", "10.1.1.1"},
		{"", "", "", ""},
		{"2001:db8::1", "", "", "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if tc.xri != "" {
			r.Header.Set("X-Real-IP", tc.xri)
		}
		if got := lb.ClientIPKey(r); got != tc.want {
			t.Errorf("%+v: %q", tc, got)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Add("X-User", "alice")
	r.Header.Add("X-User", "bob")
	r.AddCookie(&http.Cookie{Name: "sid", Value: "s1"})
	if got := lb.HeaderKey("x-user")(r); got != "alice" {
		t.Errorf("HeaderKey %q", got)
	}
	if got := lb.CookieKey("sid")(r); got != "s1" {
		t.Errorf("CookieKey %q", got)
	}
	if got := lb.CookieKey("none")(r); got != "" {
		t.Errorf("CookieKey none %q", got)
	}
}

func TestOutsideDNSAndRefresh(t *testing.T) {
	eps, err := lb.DNS{Host: "localhost", Port: 8080}.Resolve(context.Background())
	if err != nil {
		t.Skipf("no localhost resolution: %v", err)
	}
	for _, e := range eps {
		host, port, err := net.SplitHostPort(e.Addr)
		if err != nil || port != "8080" || !net.ParseIP(host).IsLoopback() {
			t.Fatalf("endpoint %+v", e)
		}
	}
	var answer atomic.Value
	answer.Store([]lb.Endpoint{{Addr: "a:1"}})
	var fail atomic.Bool
	b := lb.New(lb.Config{Resolver: lb.ResolverFunc(func(ctx context.Context) ([]lb.Endpoint, error) {
		if fail.Load() {
			return nil, errors.New("dns down")
		}
		return answer.Load().([]lb.Endpoint), nil
	}), Endpoints: []lb.Endpoint{{Addr: "static:1"}}})
	defer b.Close()
	if err := b.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := b.Endpoints(); len(s) != 1 || s[0].Endpoint.Addr != "a:1" {
		t.Fatalf("%+v", s)
	}
	fail.Store(true)
	if err := b.Refresh(context.Background()); err == nil {
		t.Fatal("failed refresh returned nil")
	}
	fail.Store(false)
	answer.Store([]lb.Endpoint{})
	if err := b.Refresh(context.Background()); !errors.Is(err, lb.ErrNoAddresses) {
		t.Fatalf("empty answer: %v", err)
	}
	if s := b.Endpoints(); len(s) != 1 || s[0].Endpoint.Addr != "a:1" {
		t.Fatalf("%+v", s)
	}
	answer.Store([]lb.Endpoint{{Addr: "x:1"}, {Addr: "x:1"}})
	if err := b.Refresh(context.Background()); err == nil {
		t.Fatal("bad answer accepted")
	}
	b2 := lb.New(lb.Config{})
	defer b2.Close()
	if err := b2.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOutsideMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	b := lb.New(lb.Config{Name: "svc", Endpoints: oEndpoints(3, ""), MeterProvider: mp})
	tk, _ := b.Pick()
	b.Done(tk, nil)
	tk, _ = b.Pick()
	b.Done(tk, errors.New("x"))
	conformance.Instruments(t, reader)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/bulwark-go/bulwark/lb" {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			names = append(names, m.Name+" "+m.Unit)
		}
	}
	t.Logf("instruments: %v", names)
	_ = attribute.String
	b.Close()
	rm = metricdata.ResourceMetrics{}
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			t.Logf("after Close: %s %+v", m.Name, m.Data)
		}
	}
}

func TestOutsideSRVEdgeCases(t *testing.T) {
	s := newDNSServer(t)
	s.set(func() {
		s.srv["_http._tcp.dot.test."] = []net.SRV{{Target: ".", Port: 0, Priority: 0, Weight: 0}}
		s.srv["_http._tcp.dup.test."] = []net.SRV{
			{Target: "a.test.", Port: 81, Priority: 10, Weight: 3},
			{Target: "a.test.", Port: 81, Priority: 10, Weight: 2},
		}
		s.a["v4v6.test."] = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.1")}
	})
	eps, err := lb.SRV{Service: "http", Proto: "tcp", Name: "dup.test.", Resolver: s.resolver()}.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b := lb.New(lb.Config{})
	defer b.Close()
	if err := b.Update(eps); err != nil {
		t.Errorf("SRV answer with a repeated target cannot be applied: %v (%+v)", err, eps)
	}
	eps, err = lb.DNS{Host: "v4v6.test.", Port: 80, Resolver: s.resolver()}.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(eps); err != nil {
		t.Errorf("DNS answer with a repeated address cannot be applied: %v (%+v)", err, eps)
	}
}

func TestOutsideUpdateKeepsStateAndRemovedTickets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(4, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.LeastRequest(),
			Outlier: lb.OutlierConfig{ConsecutiveFailures: 1, MaxEjectedFraction: 1}})
		defer b.Close()
		var held []lb.Ticket
		for range 8 {
			tk, _ := b.Pick()
			held = append(held, tk)
		}
		// eject eps[0]
		for {
			tk, _ := b.Pick()
			if tk.Addr() == eps[0].Addr {
				b.Done(tk, errors.New("x"))
				break
			}
			held = append(held, tk)
		}
		if oState(b, eps[0].Addr).State != lb.Ejected {
			t.Fatal("not ejected")
		}
		inflight := oState(b, eps[1].Addr).InFlight
		if err := b.Update(append(eps[:0:0], eps[0], eps[1], eps[2], lb.Endpoint{Addr: "new:1"})); err != nil {
			t.Fatal(err)
		}
		if st := oState(b, eps[0].Addr); st.State != lb.Ejected || st.Ejections != 1 {
			t.Fatalf("ejection lost by Update: %+v", st)
		}
		if st := oState(b, eps[1].Addr); st.InFlight != inflight {
			t.Fatalf("in flight %d after Update, was %d", st.InFlight, inflight)
		}
		// finish calls on the removed endpoint, then bring it back: fresh state.
		for _, tk := range held {
			b.Done(tk, nil)
		}
		if err := b.Update(eps); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Endpoints() {
			if e.InFlight != 0 {
				t.Fatalf("%s in flight %d after every Done", e.Endpoint.Addr, e.InFlight)
			}
		}
	})
}

func TestOutsideHookMayCallBalancer(t *testing.T) {
	eps := oEndpoints(2, "")
	var b *lb.Balancer
	var seen atomic.Int32
	b = lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin(), Outlier: lb.OutlierConfig{ConsecutiveFailures: 1, MaxEjectedFraction: 1},
		OnStateChange: func(ctx context.Context, ev lb.StateChangeEvent) {
			if ctx == nil {
				t.Error("nil ctx")
			}
			_ = b.Endpoints()
			_ = b.Panicking()
			if err := b.Update(eps); err != nil {
				t.Error(err)
			}
			seen.Add(1)
		}})
	defer b.Close()
	tk, _ := b.Pick()
	b.Done(tk, errors.New("x"))
	if seen.Load() != 1 {
		t.Fatalf("hook ran %d times", seen.Load())
	}
}

func TestOutsideRoundTripperInFlightUntilBodyClosed(t *testing.T) {
	s := oStart(t)
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: s.addr()}}, Policy: lb.LeastRequest()})
	defer b.Close()
	c := &http.Client{Transport: b.RoundTripper(nil)}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://svc/")
	if err != nil {
		t.Fatal(err)
	}
	if n := b.Endpoints()[0].InFlight; n != 1 {
		t.Fatalf("in flight %d with body open", n)
	}
	resp.Body.Close()
	resp.Body.Close()
	if st := b.Endpoints()[0]; st.InFlight != 0 || st.Successes != 1 {
		t.Fatalf("after close: %+v", st)
	}
}

func TestOutsideRoundTripperBodyErrorIsFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "short")
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: strings.TrimPrefix(srv.URL, "http://")}}})
	defer b.Close()
	c := &http.Client{Transport: b.RoundTripper(nil)}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://svc/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("no body error")
	}
	if st := b.Endpoints()[0]; st.Failures != 1 || st.Successes != 0 {
		t.Fatalf("truncated body: %+v", st)
	}
}

func TestOutsideRoundTripperMaxAttempts(t *testing.T) {
	s := oStart(t)
	dead1, dead2, dead3 := deadAddr(t), deadAddr(t), deadAddr(t)
	for _, tc := range []struct {
		max      int
		mayFail  bool
		deadOnly bool
	}{{1, true, false}, {2, true, false}, {3, true, false}, {4, true, false}, {0, true, false}} {
		b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: dead1}, {Addr: dead2}, {Addr: dead3}, {Addr: s.addr()}}, Policy: lb.RoundRobin(),
			MaxAttempts: tc.max, Outlier: lb.OutlierConfig{ConsecutiveFailures: -1}, PanicThreshold: -1})
		c := &http.Client{Transport: b.RoundTripper(nil)}
		fails := 0
		for range 40 {
			resp, err := c.Get("http://svc/")
			if err != nil {
				fails++
				continue
			}
			resp.Body.Close()
		}
		// Round robin over d d d s, requests one after another: each
		// attempt takes the next endpoint, so with 1 attempt 3 requests
		// in 4 fail, with 2 or 3 every other one, with 4 none.
		wantFails := map[int]int{0: 20, 1: 30, 2: 20, 3: 20, 4: 0}[tc.max]
		if fails != wantFails {
			t.Errorf("MaxAttempts %d: %d of 40 failed, want %d", tc.max, fails, wantFails)
		}
		c.CloseIdleConnections()
		b.Close()
	}
}

func TestOutsideRoundTripperBreakerBelow(t *testing.T) {
	srvs := []*oServer{oStart(t), oStart(t)}
	set := breaker.NewSet(breaker.SetConfig{})
	defer set.Close()
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: srvs[0].addr()}, {Addr: srvs[1].addr()}}, Policy: lb.RoundRobin()})
	defer b.Close()
	rt := b.RoundTripper(set.RoundTripper(nil))
	c := &http.Client{Transport: rt}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://svc/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if set.Len() == 0 {
		t.Skip("the Set keys by something else than the host")
	}
	set.Get(srvs[0].addr()).ForceOpen()
	for i := range 20 {
		resp, err := c.Get("http://svc/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
}

func TestOutsideP2CSteersAwayFromSlowInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(3, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.P2C(lb.P2CConfig{})})
		defer b.Close()
		got := map[string]int{}
		for range 3000 {
			tk, _ := b.Pick()
			got[tk.Addr()]++
			if tk.Addr() == eps[0].Addr {
				time.Sleep(100 * time.Millisecond)
			} else {
				time.Sleep(time.Millisecond)
			}
			b.Done(tk, nil)
		}
		if got[eps[0].Addr] > 300 {
			t.Fatalf("slow endpoint got %v", got)
		}
	})
}

func TestOutsideHealthCheckTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(2, "")
		var calls atomic.Int32
		b := lb.New(lb.Config{Endpoints: eps, PanicThreshold: -1, Health: lb.HealthConfig{Jitter: -1, UnhealthyThreshold: 1,
			Checker: lb.CheckerFunc(func(ctx context.Context, ep lb.Endpoint) error {
				calls.Add(1)
				if ep.Addr == eps[0].Addr {
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			})}})
		defer b.Close()
		time.Sleep(10*time.Second + 1500*time.Millisecond)
		synctest.Wait()
		if st := oState(b, eps[0].Addr).State; st != lb.Unhealthy {
			t.Fatalf("hanging check: %v", st)
		}
		if st := oState(b, eps[1].Addr).State; st != lb.Healthy {
			t.Fatalf("passing check: %v", st)
		}
	})
}

func TestOutsidePanicThresholdIgnoresZones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local := oEndpoints(2, "a")
		remote := oEndpoints(2, "b")
		b := lb.New(lb.Config{Endpoints: append(append([]lb.Endpoint{}, local...), remote...), Zone: "a", Policy: lb.RoundRobin(),
			Outlier: lb.OutlierConfig{ConsecutiveFailures: 1, MaxEjectedFraction: 1}, PanicThreshold: 0.9})
		defer b.Close()
		oFailOnce(t, b, local[0].Addr)
		if !b.Panicking() {
			t.Fatal("not panicking at 75% < 90%")
		}
		got := oCount(t, b, 4000, nil)
		for _, e := range append(local, remote...) {
			if got[e.Addr] < 800 {
				t.Fatalf("panic mode: %v", got)
			}
		}
	})
}

func TestOutsideWeightedSchedulingScaledDown(t *testing.T) {
	eps := []lb.Endpoint{{Addr: "a:1", Weight: lb.MaxWeight}, {Addr: "b:1", Weight: lb.MaxWeight - 1}, {Addr: "c:1", Weight: 1}}
	for _, p := range []lb.Policy{lb.WeightedRoundRobin(), lb.Random()} {
		b := lb.New(lb.Config{Endpoints: eps, Policy: p})
		got := oCount(t, b, 1<<17, nil)
		if r := float64(got["a:1"]) / float64(got["b:1"]); r < 0.95 || r > 1.05 {
			t.Errorf("a/b = %.3f: %v", r, got)
		}
		b.Close()
	}
}

// Regression: a negative value means "off" for these fields, but -Inf is an
// infinity, which the house rules make an error.
func TestConfigValidateRejectsNegativeInfinity(t *testing.T) {
	inf := math.Inf(-1)
	for name, c := range map[string]lb.Config{
		"PanicThreshold":       {PanicThreshold: inf},
		"Outlier.FailureRate":  {Outlier: lb.OutlierConfig{FailureRate: inf}},
		"Health.Jitter":        {Health: lb.HealthConfig{Jitter: inf}},
		"Policy.BalanceFactor": {Policy: lb.RingHash(lb.HashConfig{BalanceFactor: inf})},
	} {
		err := c.Validate()
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !strings.Contains(fmt.Sprint(err), name) {
			t.Errorf("%s = -Inf: Validate = %v", name, err)
		}
	}
}

// Regression: DNS's doc promises weight 1 (it returned 0), and a Port
// outside 1..65535 was truncated to 16 bits (70000 became 4464).
func TestDNSEndpointsHaveWeightOneAndPortIsChecked(t *testing.T) {
	s := newDNSServer(t)
	s.set(func() { s.a["w.test."] = []netip.Addr{netip.MustParseAddr("192.0.2.7")} })
	eps, err := lb.DNS{Host: "w.test.", Port: 8080, Resolver: s.resolver()}.Resolve(context.Background())
	if err != nil || len(eps) != 1 || eps[0].Weight != 1 || eps[0].Addr != "192.0.2.7:8080" {
		t.Fatalf("endpoints %+v, %v; want 192.0.2.7:8080 weight 1", eps, err)
	}
	for _, port := range []int{0, -1, 70000} {
		eps, err := lb.DNS{Host: "w.test.", Port: port, Resolver: s.resolver()}.Resolve(context.Background())
		if err == nil {
			t.Errorf("Port %d: endpoints %+v, want an error", port, eps)
		}
	}
}

// Regression: an SRV target of "." means the service is decidedly not
// available at this domain (RFC 2782); it became the endpoint ":0".
func TestSRVDotTargetMeansNoEndpoint(t *testing.T) {
	s := newDNSServer(t)
	s.set(func() {
		s.srv["_http._tcp.dot.test."] = []net.SRV{{Target: ".", Port: 0, Priority: 0, Weight: 0}}
	})
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: "keep:1"}},
		Resolver: lb.SRV{Service: "http", Proto: "tcp", Name: "dot.test.", Resolver: s.resolver()}})
	defer b.Close()
	eps, err := lb.SRV{Service: "http", Proto: "tcp", Name: "dot.test.", Resolver: s.resolver()}.Resolve(context.Background())
	if err != nil || len(eps) != 0 {
		t.Fatalf("SRV \".\": %+v, %v; want no endpoint", eps, err)
	}
	if err := b.Refresh(context.Background()); !errors.Is(err, lb.ErrNoAddresses) {
		t.Fatalf("Refresh = %v, want ErrNoAddresses", err)
	}
	if st := b.Endpoints(); len(st) != 1 || st[0].Endpoint.Addr != "keep:1" {
		t.Fatalf("set %+v", st)
	}
}

// Regression: MaxEjectionTime below BaseEjectionTime was silently raised
// to BaseEjectionTime; a contradictory pair is now an error, and the doc
// says what happens when only BaseEjectionTime exceeds the default cap.
func TestMaxEjectionTimeBelowBaseEjectionTimeIsAnError(t *testing.T) {
	c := lb.Config{Outlier: lb.OutlierConfig{BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 10 * time.Second}}
	if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) || !strings.Contains(err.Error(), "MaxEjectionTime") {
		t.Fatalf("Validate = %v", err)
	}
	// Base alone above the default cap: the cap is Base.
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(2, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin(),
			Outlier: lb.OutlierConfig{ConsecutiveFailures: 1, BaseEjectionTime: 400 * time.Second, MaxEjectedFraction: 1}})
		defer b.Close()
		oFailOnce(t, b, eps[0].Addr)
		t0 := time.Now()
		for oState(b, eps[0].Addr).State == lb.Ejected {
			time.Sleep(time.Second)
		}
		if d := time.Since(t0); d < 400*time.Second || d > 411*time.Second {
			t.Fatalf("ejection lasted %v, want 400 s", d)
		}
	})
}

// Regression: an Update that changed an endpoint's Weight or Zone replaced
// its state, against Update's doc (an endpoint that keeps its Addr keeps
// its calls in flight, latency, counts and ramp): the calls in flight and
// the success and failure counts started again from zero.
func TestUpdateChangingWeightOrZoneKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := oEndpoints(3, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: lb.LeastRequest(), SlowStart: time.Minute})
		defer b.Close()
		var held []lb.Ticket
		for range 6 {
			tk, err := b.Pick()
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, tk)
		}
		tk, _ := b.Pick()
		b.Done(tk, errors.New("x"))
		before := b.Endpoints()
		changed := append([]lb.Endpoint(nil), eps...)
		for i := range changed {
			changed[i].Weight = 7
			changed[i].Zone = "z"
			changed[i].Metadata = map[string]string{"v": "2"}
		}
		if err := b.Update(changed); err != nil {
			t.Fatal(err)
		}
		after := b.Endpoints()
		for i := range before {
			if after[i].InFlight != before[i].InFlight || after[i].Successes != before[i].Successes || after[i].Failures != before[i].Failures {
				t.Fatalf("%s: state %+v became %+v", eps[i].Addr, before[i], after[i])
			}
			if after[i].Endpoint.Weight != 7 || after[i].Endpoint.Zone != "z" || after[i].Endpoint.Metadata["v"] != "2" {
				t.Fatalf("endpoint not updated: %+v", after[i].Endpoint)
			}
		}
		for _, tk := range held {
			if tk.Endpoint().Weight != 7 {
				t.Fatalf("ticket endpoint %+v", tk.Endpoint())
			}
			b.Done(tk, nil)
		}
		for _, e := range b.Endpoints() {
			if e.InFlight != 0 {
				t.Fatalf("%s in flight %d after every Done", e.Endpoint.Addr, e.InFlight)
			}
		}
	})
}

// Updates that change weights while calls pick and finish (run with -race).
func TestUpdateWeightsWhileCalling(t *testing.T) {
	eps := oEndpoints(4, "")
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.WeightedRoundRobin()})
	defer b.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tk, err := b.Pick()
				if err != nil {
					t.Error(err)
					return
				}
				_ = tk.Addr()
				_ = tk.Endpoint()
				b.Done(tk, nil)
			}
		})
	}
	for i := range 200 {
		next := append([]lb.Endpoint(nil), eps...)
		for j := range next {
			next[j].Weight = 1 + (i+j)%5
		}
		if err := b.Update(next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// Regression: on a 101 Switching Protocols answer net/http returns a body
// that is an io.ReadWriteCloser (WebSocket and other upgrades write to
// it); the RoundTripper's body wrapper hid the Write method, so upgrades
// through the balancer failed.
func TestRoundTripperKeepsUpgradedBodyWritable(t *testing.T) {
	srv := httptest.NewServer(conformance.UpgradeEcho(t))
	defer srv.Close()
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: strings.TrimPrefix(srv.URL, "http://")}}, Policy: lb.LeastRequest()})
	defer b.Close()
	req, _ := http.NewRequest("GET", "http://svc/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := b.RoundTripper(nil).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		t.Fatalf("upgraded body %T is not an io.ReadWriteCloser", resp.Body)
	}
	if _, err := io.WriteString(rw, "hello\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "hello\n" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if n := b.Endpoints()[0].InFlight; n != 1 {
		t.Fatalf("in flight %d while the upgraded connection is open", n)
	}
	rw.Close()
	if st := b.Endpoints()[0]; st.InFlight != 0 || st.Successes != 1 {
		t.Fatalf("after close: %+v", st)
	}
}

// Regression: HTTPChecker's doc says a 2xx answer passes and any other
// status fails, but it followed redirects (http.DefaultClient's policy),
// so an endpoint answering 302 to a healthy page, on it or on another
// host, passed.
func TestHTTPCheckerDoesNotFollowRedirects(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer healthy.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, healthy.URL+"/healthz", http.StatusFound)
	}))
	defer redirecting.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	ep := lb.Endpoint{Addr: strings.TrimPrefix(redirecting.URL, "http://")}
	for name, c := range map[string]lb.HTTPChecker{
		"default client": {Path: "/healthz"},
		"own client":     {Path: "/healthz", Client: &http.Client{Transport: tr}},
	} {
		if err := c.Check(context.Background(), ep); err == nil {
			t.Errorf("%s: a 302 answer passed the check", name)
		}
	}
	if err := (lb.HTTPChecker{Path: "/healthz", Client: &http.Client{Transport: tr}}).Check(context.Background(),
		lb.Endpoint{Addr: strings.TrimPrefix(healthy.URL, "http://")}); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// The instruments the package doc lists, with their units, and nothing
// else; in_flight is spelled as package limit spells it (it was
// "inflight"), so one dashboard naming rule covers both.
func TestInstrumentNamesMatchTheDoc(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	b := lb.New(lb.Config{Name: "svc", Endpoints: oEndpoints(2, ""), MeterProvider: mp, Policy: lb.LeastRequest()})
	defer b.Close()
	tk, _ := b.Pick()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	b.Done(tk, nil)
	want := map[string]string{
		"bulwark.lb.calls": "{call}", "bulwark.lb.ejections": "{ejection}",
		"bulwark.lb.in_flight": "{call}", "bulwark.lb.endpoints": "{endpoint}",
	}
	got := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Unit
			if m.Name == "bulwark.lb.in_flight" {
				var sum int64
				for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
					sum += dp.Value
					if v, _ := dp.Attributes.Value("bulwark.name"); v.AsString() != "svc" {
						t.Errorf("in_flight without bulwark.name: %v", dp.Attributes)
					}
				}
				if sum != 1 {
					t.Errorf("in_flight sums to %d with one call in flight", sum)
				}
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("instruments %v, want %v", got, want)
	}
}

// Regression: Refresh(nil) panicked inside package context ("cannot
// create context from nil parent") with a Resolver, and returned nil
// without one; a nil ctx is the caller's bug and panics at once, naming
// the method, as CONTRIBUTING.md rules.
func TestRefreshNilCtxPanicsClearly(t *testing.T) {
	for name, cfg := range map[string]lb.Config{
		"with a resolver": {Resolver: lb.ResolverFunc(func(context.Context) ([]lb.Endpoint, error) { return nil, nil })},
		"without":         {},
	} {
		b := lb.New(cfg)
		func() {
			defer func() {
				if r := recover(); !strings.Contains(fmt.Sprint(r), "lb: Balancer.Refresh called with a nil ctx") {
					t.Errorf("%s: recovered %v", name, r)
				}
			}()
			_ = b.Refresh(nil) //nolint:staticcheck // the point of the test
		}()
		b.Close()
	}
}

// Regression: with Config.Breakers, Pick drew at most eight endpoints at
// random, so when the breakers of most endpoints were open it failed
// with breaker.ErrOpen about half the time although an endpoint with a
// closed breaker was there to take the call.
func TestPickFindsTheLastEndpointWithAClosedBreaker(t *testing.T) {
	for name, p := range map[string]lb.Policy{"P2C": lb.P2C(lb.P2CConfig{}), "Random": lb.Random(), "LeastRequest": lb.LeastRequest(),
		"RingHash": lb.RingHash(lb.HashConfig{}), "RoundRobin": lb.RoundRobin()} {
		set := breaker.NewSet(breaker.SetConfig{})
		eps := oEndpoints(20, "")
		b := lb.New(lb.Config{Endpoints: eps, Policy: p, Breakers: set})
		for _, e := range eps[1:] {
			set.Get(e.Addr).ForceOpen()
		}
		fails := 0
		for i := range 1000 {
			tk, err := b.PickKey(fmt.Sprint(i))
			if err != nil {
				fails++
				continue
			}
			if tk.Addr() != eps[0].Addr {
				t.Fatalf("%s: picked %s, whose breaker is open", name, tk.Addr())
			}
			b.Done(tk, nil)
		}
		if fails != 0 {
			t.Errorf("%s: %d of 1000 picks failed with one endpoint's breaker closed", name, fails)
		}
		b.Close()
		set.Close()
	}
}
