package chaos

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestConformance(t *testing.T) {
	// Enabled, with a small latency on every request (so the fault path
	// runs), and a Drop aimed at a drill the suite never sends.
	faults := []Fault{
		{Drill: "never", Action: Drop},
		{AllTraffic: true, Latency: Latency{Delay: time.Microsecond}},
	}
	t.Run("RoundTripper", func(t *testing.T) {
		conformance.RoundTripper(t, conformance.Client{Wrap: func(next http.RoundTripper) http.RoundTripper {
			return New(Config{Enabled: true, Faults: faults}).RoundTripper(next)
		}})
	})
	t.Run("Handler", func(t *testing.T) {
		conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
			return New(Config{Enabled: true, Faults: faults}).Handler(next)
		}})
	})
}

// backend is a real server that counts the requests it fully served.
func backend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "done")
		served.Add(1)
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

func get(t *testing.T, c *http.Client, url, drill string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("payload"))
	if drill != "" {
		req.Header.Set(DefaultHeader, drill)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func TestRoundTripperActions(t *testing.T) {
	srv, served := backend(t)
	for _, tc := range []struct {
		action     Action
		wantServed int64
	}{{None, 1}, {Error, 0}, {Abort, 0}, {Drop, 1}} {
		served.Store(0)
		i := New(Config{Enabled: true, Faults: []Fault{{Name: "f", Action: tc.action, HTTPStatus: 502, Latency: Latency{Delay: time.Microsecond}}}})
		c := &http.Client{Transport: i.RoundTripper(srv.Client().Transport)}
		resp, body, err := get(t, c, srv.URL, "d")
		switch tc.action {
		case None:
			if err != nil || body != "done" {
				t.Errorf("None: %v %q", err, body)
			}
		case Error:
			if err != nil || resp.StatusCode != 502 || resp.Header.Get(FaultHeader) != "f" || !strings.Contains(body, "chaos: injected fault f") {
				t.Errorf("Error: %v %v %q", err, resp, body)
			}
		case Abort, Drop:
			var fe *FaultError
			if !errors.As(err, &fe) || fe.Action != tc.action || !errors.Is(err, ErrInjected) {
				t.Errorf("%v: err = %v", tc.action, err)
			}
		}
		if served.Load() != tc.wantServed {
			t.Errorf("%v: server served %d requests, want %d", tc.action, served.Load(), tc.wantServed)
		}
		if n := i.Injected()["f"]; n != 1 {
			t.Errorf("%v: Injected = %d, want 1", tc.action, n)
		}
		i.Close()
	}
}

func TestHandlerActions(t *testing.T) {
	for _, tc := range []struct {
		action Action
		http2  bool
		served int64
	}{{None, false, 1}, {Error, false, 0}, {Abort, false, 0}, {Drop, false, 1}, {Abort, true, 0}, {Drop, true, 1}} {
		var served atomic.Int64
		i := New(Config{Enabled: true, Faults: []Fault{{Name: "f", Action: tc.action, HTTPStatus: 500, Latency: Latency{Delay: time.Microsecond}}}})
		srv := httptest.NewUnstartedServer(i.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Work", "1")
			io.WriteString(w, "done")
			w.(http.Flusher).Flush()
			served.Add(1)
		})))
		if tc.http2 {
			srv.EnableHTTP2 = true
			srv.StartTLS()
		} else {
			srv.Start()
		}
		resp, body, err := get(t, srv.Client(), srv.URL, "d")
		switch tc.action {
		case None:
			if err != nil || body != "done" {
				t.Errorf("None: %v %q", err, body)
			}
		case Error:
			if err != nil || resp.StatusCode != 500 || resp.Header.Get(FaultHeader) != "f" {
				t.Errorf("Error: %v %v", err, resp)
			}
		case Abort, Drop:
			if err == nil {
				t.Errorf("%v (http2 %v): the client got %d %q, want a connection error", tc.action, tc.http2, resp.StatusCode, body)
			}
		}
		if served.Load() != tc.served {
			t.Errorf("%v (http2 %v): handler served %d, want %d", tc.action, tc.http2, served.Load(), tc.served)
		}
		srv.Close()
		i.Close()
	}
}

// TestTargeting: a fault hits only the traffic it targets.
func TestTargeting(t *testing.T) {
	srv, _ := backend(t)
	for _, tc := range []struct {
		name   string
		fault  Fault
		method string
		path   string
		drill  string
		hit    bool
	}{
		{"no drill header", Fault{}, "GET", "/", "", false},
		{"any drill", Fault{}, "GET", "/", "d7", true},
		{"named drill", Fault{Drill: "d7"}, "GET", "/", "d7", true},
		{"other drill", Fault{Drill: "d7"}, "GET", "/", "d8", false},
		{"all traffic", Fault{AllTraffic: true}, "GET", "/", "", true},
		{"path prefix", Fault{PathPrefix: "/api/"}, "GET", "/api/x", "d", true},
		{"other path", Fault{PathPrefix: "/api/"}, "GET", "/web", "d", false},
		{"method", Fault{Methods: []string{"POST"}}, "POST", "/", "d", true},
		{"other method", Fault{Methods: []string{"POST"}}, "GET", "/", "d", false},
	} {
		tc.fault.Action = Error
		tc.fault.HTTPStatus = 418 + 1 // 419: unmistakable
		for _, side := range []string{"client", "server"} {
			i := New(Config{Enabled: true, Faults: []Fault{tc.fault}})
			c := srv.Client()
			url := srv.URL
			if side == "client" {
				c = &http.Client{Transport: i.RoundTripper(srv.Client().Transport)}
			} else {
				s := httptest.NewServer(i.Handler(srv.Config.Handler))
				defer s.Close()
				url = s.URL
			}
			req, _ := http.NewRequest(tc.method, url+tc.path, nil)
			if tc.drill != "" {
				req.Header.Set("bulwark-chaos", tc.drill) // canonicalised: any case works
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == 419; got != tc.hit {
				t.Errorf("%s (%s): hit = %v, want %v", tc.name, side, got, tc.hit)
			}
			i.Close()
		}
	}
}

// TestProbability: over real requests, a fault with probability p hits
// close to p of the targeted ones (5 standard deviations on a seeded
// source), and none of the others.
func TestProbability(t *testing.T) {
	srv, served := backend(t)
	const n, p = 2000, 0.25
	i := New(Config{Enabled: true, Seed: 1, Faults: []Fault{{Name: "f", Probability: p, Action: Error, HTTPStatus: 503}}})
	defer i.Close()
	c := &http.Client{Transport: i.RoundTripper(srv.Client().Transport)}
	hits := 0
	for k := 0; k < 2*n; k++ {
		drill := ""
		if k%2 == 0 {
			drill = "d"
		}
		resp, _, err := get(t, c, srv.URL, drill)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 503 {
			if drill == "" {
				t.Fatal("untargeted request hit")
			}
			hits++
		}
	}
	sd := math.Sqrt(n * p * (1 - p))
	if math.Abs(float64(hits)-n*p) > 5*sd {
		t.Errorf("%d hits of %d targeted requests, want %v ± %.0f", hits, n, n*p, 5*sd)
	}
	if int64(hits) != i.Injected()["f"] || served.Load() != int64(2*n-hits) {
		t.Errorf("Injected = %d, served = %d, hits = %d", i.Injected()["f"], served.Load(), hits)
	}
}

// TestFirstFaultWins: a request gets at most one fault, the first that
// targets it and whose coin lands.
func TestFirstFaultWins(t *testing.T) {
	srv, _ := backend(t)
	i := New(Config{Enabled: true, Faults: []Fault{
		{Name: "a", PathPrefix: "/a", Action: Error, HTTPStatus: 501},
		{Name: "b", Action: Error, HTTPStatus: 502},
	}})
	defer i.Close()
	c := &http.Client{Transport: i.RoundTripper(srv.Client().Transport)}
	for path, want := range map[string]int{"/a": 501, "/b": 502} {
		resp, _, err := get(t, c, srv.URL+path, "d")
		if err != nil || resp.StatusCode != want {
			t.Errorf("%s: %v %v, want %d", path, resp, err, want)
		}
	}
	if got := i.Injected(); got["a"] != 1 || got["b"] != 1 {
		t.Errorf("Injected = %v", got)
	}
}

func TestDisabledAllocatesNothing(t *testing.T) {
	i := New(Config{Faults: []Fault{{AllTraffic: true, Action: Abort}}})
	defer i.Close()
	h := i.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Errorf("disabled Handler: %v allocs per request", n)
	}
	resp := &http.Response{}
	rt := i.RoundTripper(transportFunc(func(*http.Request) (*http.Response, error) { return resp, nil }))
	if n := testing.AllocsPerRun(100, func() { rt.RoundTrip(r) }); n != 0 {
		t.Errorf("disabled RoundTripper: %v allocs per request", n)
	}
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(t.Context())
	srv, _ := backend(t)
	i := New(Config{Name: "drill", Enabled: true, MeterProvider: mp, Faults: []Fault{{Name: "boom", Action: Abort}}})
	c := &http.Client{Transport: i.RoundTripper(srv.Client().Transport)}
	for k := 0; k < 3; k++ {
		get(t, c, srv.URL, "d")
	}
	conformance.Instruments(t, reader)
	var rm metricdata.ResourceMetrics
	reader.Collect(t.Context(), &rm)
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "bulwark.chaos.faults" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				f, _ := dp.Attributes.Value(attrFault)
				a, _ := dp.Attributes.Value(attrAction)
				if f.AsString() == "boom" && a.AsString() == "abort" && dp.Value == 3 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("bulwark.chaos.faults did not report 3 aborts of boom: %+v", rm)
	}
	i.Close()
	i.Close() // idempotent
}
