package chaos_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/chaos"
)

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestOutsideOffByDefault(t *testing.T) {
	var ran atomic.Int64
	inj := chaos.New(chaos.Config{Faults: []chaos.Fault{{Action: chaos.Error, AllTraffic: true}}})
	defer inj.Close()
	srv := httptest.NewServer(inj.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1) })))
	defer srv.Close()
	resp, err := get(t, srv.Client(), srv.URL, nil)
	if err != nil || resp.StatusCode != 200 || ran.Load() != 1 {
		t.Fatalf("disabled injector: %v %v", resp, err)
	}
	if inj.Enabled() {
		t.Fatal("enabled by default")
	}
	inj.Enable()
	resp, err = get(t, srv.Client(), srv.URL, nil)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get(chaos.FaultHeader) != "error" {
		t.Fatalf("enabled: %v %v", resp, err)
	}
	inj.Disable()
	resp, _ = get(t, srv.Client(), srv.URL, nil)
	if resp.StatusCode != 200 {
		t.Fatal("disable did not switch off")
	}
	if got := inj.Injected()["error"]; got != 1 {
		t.Fatalf("Injected = %v", inj.Injected())
	}
}

func TestOutsideTargeting(t *testing.T) {
	inj := chaos.New(chaos.Config{Enabled: true, Seed: 42, Faults: []chaos.Fault{
		{Name: "orders", Action: chaos.Error, HTTPStatus: 502, PathPrefix: "/orders", Methods: []string{"POST"}, Drill: "d1"},
	}})
	defer inj.Close()
	srv := httptest.NewServer(inj.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()
	c := srv.Client()
	do := func(method, path string, drill string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if drill != "" {
			req.Header.Set("Bulwark-Chaos", drill)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		m, p, d string
		want    int
	}{
		{"POST", "/orders/1", "d1", 502},
		{"POST", "/orders/1", "", 200},
		{"POST", "/orders/1", "d2", 200},
		{"GET", "/orders/1", "d1", 200},
		{"POST", "/users", "d1", 200},
	}
	for _, c := range cases {
		if got := do(c.m, c.p, c.d); got != c.want {
			t.Errorf("%s %s drill=%q: %d, want %d", c.m, c.p, c.d, got, c.want)
		}
	}
}

func TestOutsideProbability(t *testing.T) {
	for _, p := range []float64{0.1, 0.5} {
		inj := chaos.New(chaos.Config{Enabled: true, Seed: 7, Faults: []chaos.Fault{{Action: chaos.Abort, Probability: p, AllTraffic: true}}})
		const n = 4000
		hits := 0
		for range n {
			if err := inj.Do(context.Background(), "/x", func(context.Context) error { return nil }); errors.Is(err, chaos.ErrInjected) {
				hits++
			}
		}
		mean := p * n
		sd := math.Sqrt(n * p * (1 - p))
		if math.Abs(float64(hits)-mean) > 5*sd {
			t.Errorf("p=%v: %d hits of %d", p, hits, n)
		}
		inj.Close()
	}
}

func TestOutsideSeedRepeatable(t *testing.T) {
	run := func() []bool {
		inj := chaos.New(chaos.Config{Enabled: true, Seed: 99, Faults: []chaos.Fault{{Action: chaos.Abort, Probability: 0.3, AllTraffic: true}}})
		defer inj.Close()
		var out []bool
		for range 200 {
			out = append(out, inj.Do(context.Background(), "/", func(context.Context) error { return nil }) != nil)
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seeded drill not repeatable at %d", i)
		}
	}
}

func TestOutsideLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: 3 * time.Second}, AllTraffic: true}}})
		defer inj.Close()
		start := time.Now()
		called := false
		err := inj.Do(context.Background(), "/", func(context.Context) error { called = true; return nil })
		if err != nil || !called || time.Since(start) != 3*time.Second {
			t.Fatalf("latency: err=%v called=%v took=%v", err, called, time.Since(start))
		}
		// A caller that gives up is not held.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		err = inj.Do(ctx, "/", func(context.Context) error { t.Error("fn ran"); return nil })
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("ctx: %v %v", err, time.Since(start))
		}
		if inj.Injected()["latency"] != 2 {
			t.Fatalf("Injected = %v", inj.Injected())
		}
	})
}

func TestOutsideRoundTripperActions(t *testing.T) {
	var ran atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1); io.WriteString(w, "ok") }))
	defer srv.Close()
	for _, tc := range []struct {
		a       chaos.Action
		wantErr bool
		status  int
		ran     int64
	}{
		{chaos.None, false, 200, 1},
		{chaos.Error, false, 418, 0},
		{chaos.Abort, true, 0, 0},
		{chaos.Drop, true, 0, 1},
	} {
		ran.Store(0)
		inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Action: tc.a, HTTPStatus: 418, Latency: chaos.Latency{Delay: time.Millisecond}}}})
		c := &http.Client{Transport: inj.RoundTripper(srv.Client().Transport)}
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("body"))
		req.Header.Set(chaos.DefaultHeader, "yes")
		resp, err := c.Do(req)
		if tc.wantErr {
			if !errors.Is(err, chaos.ErrInjected) {
				t.Errorf("%v: err %v", tc.a, err)
			}
			var fe *chaos.FaultError
			if !errors.As(err, &fe) || fe.Action != tc.a {
				t.Errorf("%v: FaultError %v", tc.a, err)
			}
		} else {
			if err != nil || resp.StatusCode != tc.status {
				t.Errorf("%v: %v %v", tc.a, resp, err)
			} else {
				resp.Body.Close()
			}
		}
		if ran.Load() != tc.ran {
			t.Errorf("%v: server ran %d", tc.a, ran.Load())
		}
		inj.Close()
	}
}

func TestOutsideHandlerActions(t *testing.T) {
	for _, tc := range []struct {
		a       chaos.Action
		wantErr bool
		ran     int64
	}{
		{chaos.Abort, true, 0},
		{chaos.Drop, true, 1},
	} {
		var ran atomic.Int64
		inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Action: tc.a}}})
		srv := httptest.NewServer(inj.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ran.Add(1)
			io.WriteString(w, "done")
		})))
		tr := srv.Client().Transport.(*http.Transport)
		tr.DisableKeepAlives = true
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("x")) // POST: not retried by net/http
		req.Header.Set(chaos.DefaultHeader, "1")
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%v: got %d, want a transport error", tc.a, resp.StatusCode)
		}
		if ran.Load() != tc.ran {
			t.Errorf("%v: handler ran %d", tc.a, ran.Load())
		}
		srv.Close()
		inj.Close()
	}
}

func TestOutsideConfigValidate(t *testing.T) {
	bad := []chaos.Config{
		{Faults: []chaos.Fault{{}}},
		{Faults: []chaos.Fault{{Action: chaos.Error, Probability: math.NaN()}}},
		{Faults: []chaos.Fault{{Action: chaos.Error, Probability: 1.5}}},
		{Faults: []chaos.Fault{{Action: chaos.Error, Probability: -0.5}}},
		{Faults: []chaos.Fault{{Action: chaos.Error, HTTPStatus: 200}}},
		{Faults: []chaos.Fault{{Action: chaos.Error, GRPCCode: 17}}},
		{Faults: []chaos.Fault{{Action: chaos.Error, GRPCCode: -1}}},
		{Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: -1}}}},
		{Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: 2 * time.Hour}}}},
		{Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: time.Second, Dist: chaos.Pareto, Shape: math.Inf(1)}}}},
		{Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: time.Second, Max: -1}}}},
		{Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: time.Second, Dist: 9}}}},
		{Faults: []chaos.Fault{{Action: 9}}},
		{Faults: make([]chaos.Fault, chaos.MaxFaults+1)},
	}
	for i, c := range bad {
		err := c.Validate()
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%d: Validate = %v", i, err)
		}
	}
	if err := (chaos.Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	inj := chaos.New(chaos.Config{})
	if inj.Close() != nil || inj.Close() != nil {
		t.Fatal("Close not idempotent")
	}
	if err := inj.SetFaults([]chaos.Fault{{}}); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("SetFaults bad: %v", err)
	}
	if len(inj.Faults()) != 0 {
		t.Fatal("SetFaults changed the set on error")
	}
}

func TestOutsideDoPanics(t *testing.T) {
	inj := chaos.New(chaos.Config{})
	for _, f := range []func(){
		func() { inj.Do(nil, "/", func(context.Context) error { return nil }) }, //nolint
		func() { inj.Do(context.Background(), "/", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

// A drill header that is not a valid header field name could never be
// matched: the injector would silently never target drill traffic.
func TestConfigRejectsBadDrillHeaderName(t *testing.T) {
	for _, h := range []string{"bad header", "Bulwark:Chaos", "x\n", "é"} {
		if err := (chaos.Config{Header: h}).Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("Header %q: Validate = %v", h, err)
		}
	}
	if err := (chaos.Config{Header: "X-Drill"}).Validate(); err != nil {
		t.Fatal(err)
	}
}
