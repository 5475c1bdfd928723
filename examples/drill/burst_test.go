package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/degrade"
)

// TestBurstSchedule checks the overload burst's arrivals: rate × (d −
// ramp/2) of them, in order, all within d, the rate reached only after the
// ramp, the mix exactly 60% sheddable, 20% default, 20% critical, the
// same for the same seed (both runs get one schedule), and never more
// than maxArrivals.
func TestBurstSchedule(t *testing.T) {
	const rate, d = 1000, 2 * time.Second
	s := burstSchedule(burstSeed, rate, d)
	if want := int(rate * (d - burstRamp/2).Seconds()); len(s) != want {
		t.Fatalf("%d arrivals, want %d", len(s), want)
	}
	if !slices.IsSortedFunc(s, func(a, b arrival) int { return int(a.at - b.at) }) {
		t.Error("arrivals out of order")
	}
	if s[0].at < 0 || s[len(s)-1].at > d {
		t.Errorf("arrivals from %v to %v, want within [0, %v]", s[0].at, s[len(s)-1].at, d)
	}
	// The ramp: its first half holds a quarter of its arrivals; after it,
	// the rate is rate a second (within the noise of a Poisson count).
	var early, late int
	for _, a := range s {
		switch {
		case a.at < burstRamp/2:
			early++
		case a.at >= d-time.Second:
			late++
		}
	}
	if inRamp := rate * burstRamp.Seconds() / 2; early < int(inRamp/4*0.6) || early > int(inRamp/4*1.4) {
		t.Errorf("%d arrivals in the ramp's first half, want about %.0f", early, inRamp/4)
	}
	if late < rate*9/10 || late > rate*11/10 {
		t.Errorf("%d arrivals in the last second, want about %d", late, rate)
	}
	var crit [3]int
	for _, a := range s {
		crit[a.crit]++
		want := map[degrade.Criticality][]kind{degrade.Sheddable: {recsGet}, degrade.Default: {cartGet, cartPost}, degrade.Critical: {orderPost}}[a.crit]
		if !slices.Contains(want, a.kind) {
			t.Errorf("a %s arrival asks for %s", a.crit, kindNames[a.kind])
		}
	}
	if n := len(s); crit[degrade.Sheddable] != n*6/10 || crit[degrade.Default] != n*2/10 || crit[degrade.Critical] != n*2/10 {
		t.Errorf("mix %v of %d, want 60%% sheddable, 20%% default, 20%% critical", crit, n)
	}
	if again := burstSchedule(burstSeed, rate, d); !slices.Equal(again, s) {
		t.Error("the same seed gave another schedule")
	}
	if other := burstSchedule(burstSeed+1, rate, d); slices.Equal(other, s) {
		t.Error("another seed gave the same schedule")
	}
	if n := len(burstSchedule(burstSeed, 1_000_000, time.Hour)); n != maxArrivals {
		t.Errorf("a huge burst has %d arrivals, want the bound %d", n, maxArrivals)
	}
}

// TestOpenLoop checks that the burst is open-loop and bounded: against a
// server that answers nothing until the caller gives up, the arrivals
// keep coming on their schedule (the loop does not wait for answers), the
// pool's workers each take one, every other arrival is counted as not
// sent (never queued in the caller), and each request sent ends at its
// deadline.
func TestOpenLoop(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		<-r.Context().Done() // hold the worker until its caller gives up
	}))
	defer srv.Close()
	tr := transport()
	defer tr.CloseIdleConnections()
	c := &client{name: "test", base: srv.URL, http: &http.Client{Transport: tr}}
	const pool = 4
	cfg := config{burstPool: pool, deadline: time.Second}
	// 40 arrivals over 100ms: all due long before the first deadline.
	var sched []arrival
	for i := range 40 {
		sched = append(sched, arrival{at: time.Duration(i) * 2500 * time.Microsecond, kind: catalogGet, crit: degrade.Sheddable})
	}
	rs := openLoop(c, cfg, sched, "test/")
	if len(rs) != len(sched) {
		t.Fatalf("%d results for %d arrivals", len(rs), len(sched))
	}
	var sent, notSent int
	for i, r := range rs {
		switch r.cause {
		case causeNotSent:
			notSent++
			if r.start < sched[i].at {
				t.Errorf("arrival %d counted before its time: %v < %v", i, r.start, sched[i].at)
			}
		case causeDeadline:
			sent++
		default:
			t.Errorf("arrival %d: cause %s, status %d", i, r.cause, r.status)
		}
	}
	if sent != pool || notSent != len(sched)-pool || got.Load() != pool {
		t.Errorf("%d sent, %d not sent, %d reached the server; want %d, %d, %d", sent, notSent, got.Load(), pool, len(sched)-pool, pool)
	}
}

// TestCauseOf checks how a failed request is put down to its cause.
func TestCauseOf(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	shed := []byte(degrade.ErrShed.Error() + "\n")
	for _, tc := range []struct {
		ctx    context.Context
		status int
		head   []byte
		err    error
		want   cause
	}{
		{live, 0, nil, fmt.Errorf("wrapped: %w", degrade.ErrThrottled), causeThrottled},
		{done, 0, nil, context.Canceled, causeDeadline},
		{live, 0, nil, timeoutErr{}, causeDeadline},
		{live, 0, nil, errors.New("connection refused"), causeOther},
		{live, http.StatusTooManyRequests, nil, nil, causeLimited},
		{live, http.StatusServiceUnavailable, shed, nil, causeShed},
		{live, http.StatusServiceUnavailable, []byte("retry: rejected without being sent"), nil, causeUnavailable},
		{live, http.StatusGatewayTimeout, nil, nil, causeGatewayTimeout},
		{live, http.StatusBadGateway, nil, nil, causeOther},
	} {
		if got := causeOf(tc.ctx, tc.status, tc.head, tc.err); got != tc.want {
			t.Errorf("causeOf(%d, %q, %v) = %s, want %s", tc.status, tc.head, tc.err, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "Client.Timeout exceeded" }
func (timeoutErr) Timeout() bool { return true }
