package stack_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// serve starts a real server with the stack configured by cfg in front of
// app, and stops both when the test ends.
func serve(t *testing.T, cfg stack.ServerConfig, app http.Handler) *httptest.Server {
	t.Helper()
	s := stack.NewServer(cfg)
	srv := httptest.NewServer(s.Handler(app))
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

type plain struct{}

func (plain) ServeHTTP(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

func TestServerZeroConfigIsNoLayer(t *testing.T) {
	s := stack.NewServer(stack.ServerConfig{})
	defer s.Close()
	var app http.Handler = &plain{}
	if h := s.Handler(app); h != app {
		t.Fatalf("zero ServerConfig: Handler returned %T, want the handler itself", h)
	}
}

func TestServerNilHandlerPanics(t *testing.T) {
	s := stack.NewServer(stack.ServerConfig{})
	defer s.Close()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "nil next") {
			t.Fatalf("recovered %v, want a panic naming the nil next", r)
		}
	}()
	s.Handler(nil)
}

func TestServerRateLimit(t *testing.T) {
	var ran atomic.Int32
	srv := serve(t, stack.ServerConfig{Rate: &limit.RateConfig{Every: time.Hour, Burst: 1}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
	}))
	req, _ := http.NewRequest("GET", srv.URL, nil)
	if resp, _ := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("first request: %d, want 200", resp.StatusCode)
	}
	resp, _ := do(t, req)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second request: %d, Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if ran.Load() != 1 {
		t.Fatalf("handler ran %d times, want once", ran.Load())
	}
}

func TestServerBulkhead(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv := serve(t, stack.ServerConfig{Bulkhead: &limit.BulkheadConfig{MaxConcurrent: 1}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(entered)
			<-release
		}
	}))
	done := make(chan int)
	go func() {
		resp, err := http.Get(srv.URL + "/hold")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered
	req, _ := http.NewRequest("GET", srv.URL+"/other", nil)
	resp, _ := do(t, req)
	close(release)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("request past the cap: %d, Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code := <-done; code != 200 {
		t.Errorf("held request: %d, want 200", code)
	}
}

func TestServerTimeout(t *testing.T) {
	srv := serve(t, stack.ServerConfig{Timeout: &timeout.Config{Timeout: 20 * time.Millisecond}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	req, _ := http.NewRequest("GET", srv.URL, nil)
	if resp, _ := do(t, req); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("hung handler: %d, want 504 at the deadline", resp.StatusCode)
	}
}

func TestServerSession(t *testing.T) {
	srv := serve(t, stack.ServerConfig{Session: &session.Config{Cookie: session.Cookie{Insecure: true}}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := session.Get[int](r.Context(), "visits")
		if err := session.Put(r.Context(), "visits", n+1); err != nil {
			t.Error(err)
		}
		io.WriteString(w, strconv.Itoa(n+1))
	}))
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, body := do(t, req)
	cookies := resp.Cookies()
	if body != "1" || len(cookies) != 1 {
		t.Fatalf("first visit: %q with %d cookies, want 1 with a session cookie", body, len(cookies))
	}
	req.AddCookie(cookies[0])
	if _, body := do(t, req); body != "2" {
		t.Fatalf("second visit with the cookie: %q, want 2", body)
	}
}

func TestServerIdempotency(t *testing.T) {
	var ran atomic.Int32
	srv := serve(t, stack.ServerConfig{Idempotency: &idempotency.Config{}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "charge "+strconv.Itoa(int(ran.Add(1))))
	}))
	for i := range 2 {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("amount=10"))
		req.Header.Set("Idempotency-Key", "k-1")
		resp, body := do(t, req)
		if body != "charge 1" {
			t.Fatalf("request %d: %q, want \"charge 1\"", i+1, body)
		}
		if replayed := resp.Header.Get(idempotency.ReplayedHeader) == "true"; replayed != (i == 1) {
			t.Fatalf("request %d: replayed %v", i+1, replayed)
		}
	}
}

// TestServerLayerOrder checks the order of the layers, outermost first: a
// request refused by the rate limit never reaches the bulkhead (which
// would otherwise be full), and the session is there when the idempotent
// handler runs.
func TestServerLayerOrder(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var sessions atomic.Int32
	srv := serve(t, stack.ServerConfig{
		Rate:        &limit.RateConfig{Every: time.Hour, Burst: 2},
		Bulkhead:    &limit.BulkheadConfig{MaxConcurrent: 1},
		Timeout:     &timeout.Config{Timeout: time.Minute},
		Session:     &session.Config{Cookie: session.Cookie{Insecure: true}},
		Idempotency: &idempotency.Config{},
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if session.Err(r.Context()) == nil {
			sessions.Add(1)
		}
		if r.URL.Path == "/hold" {
			close(entered)
			<-release
		}
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("POST", srv.URL+"/hold", strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", "k")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	req, _ := http.NewRequest("GET", srv.URL, nil)
	if resp, _ := do(t, req); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second request, bulkhead full: %d, want 503", resp.StatusCode)
	}
	if resp, _ := do(t, req); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("third request, past the rate: %d, want 429 (the rate limit is outside the bulkhead)", resp.StatusCode)
	}
	close(release)
	<-done
	if sessions.Load() != 1 {
		t.Errorf("the handler saw a session %d times, want once", sessions.Load())
	}
}

// TestServerHealthIsOutermost: the probes are answered before the rate
// limit, so a server past its rate still reports itself ready, and a
// failing readiness check makes /readyz answer 503 while the handler
// still serves.
func TestServerHealthIsOutermost(t *testing.T) {
	var dbDown atomic.Bool
	srv := serve(t, stack.ServerConfig{
		Health: &health.Config{Checks: []health.Check{{Name: "db", TTL: time.Nanosecond, Func: func(context.Context) error {
			if dbDown.Load() {
				return errors.New("db down")
			}
			return nil
		}}}},
		Shed: &degrade.ShedderConfig{},
		Rate: &limit.RateConfig{Every: time.Hour, Burst: 1},
	}, plain{})
	get := func(path string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	if code := get("/"); code != 200 {
		t.Fatalf("first request: %d, want 200", code)
	}
	if code := get("/"); code != http.StatusTooManyRequests {
		t.Fatalf("second request: %d, want 429 past the rate", code)
	}
	for _, p := range []string{"/livez", "/readyz"} {
		if code := get(p); code != 200 {
			t.Errorf("%s past the rate: %d, want 200 (the probes sit outside the limit)", p, code)
		}
	}
	dbDown.Store(true)
	if code := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with its check failing: %d, want 503", code)
	}
}

func TestServerHealthAccessor(t *testing.T) {
	s := stack.NewServer(stack.ServerConfig{})
	defer s.Close()
	if s.Health() != nil {
		t.Error("Health() without ServerConfig.Health is not nil")
	}
	s2 := stack.NewServer(stack.ServerConfig{Health: &health.Config{}})
	defer s2.Close()
	if err := s2.Health().Add(health.Check{Name: "late", Func: func(context.Context) error { return errors.New("no") }}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s2.Handler(plain{}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/readyz", nil)
	if resp, _ := do(t, req); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a failing check added through Health(): %d, want 503", resp.StatusCode)
	}
}

func TestServerConformance(t *testing.T) {
	conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
		s := stack.NewServer(stack.ServerConfig{
			Health:      &health.Config{},
			Shed:        &degrade.ShedderConfig{},
			Rate:        &limit.RateConfig{Rate: 1e6},
			Bulkhead:    &limit.BulkheadConfig{},
			Timeout:     &timeout.Config{Timeout: time.Minute},
			Session:     &session.Config{Cookie: session.Cookie{Insecure: true}},
			Idempotency: &idempotency.Config{},
		})
		t.Cleanup(func() { s.Close() })
		return s.Handler(next)
	}})
}

// TestNameAndMeterProviderReachEveryLayer checks that the stack's Name and
// MeterProvider fill the layers' Configs, and runs the instrument checks
// over everything the two stacks report.
func TestNameAndMeterProviderReachEveryLayer(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	srv := serve(t, stack.ServerConfig{
		Name:          "edge",
		MeterProvider: mp,
		Shed:          &degrade.ShedderConfig{},
		Rate:          &limit.RateConfig{Rate: 1000},
		Bulkhead:      &limit.BulkheadConfig{},
		Timeout:       &timeout.Config{},
		Session:       &session.Config{Cookie: session.Cookie{Insecure: true}},
		Idempotency:   &idempotency.Config{Name: "own"},
	}, plain{})
	c := newClient(t, stack.ClientConfig{Name: "edge", MeterProvider: mp})
	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	names := map[string]map[string]bool{} // scope -> bulwark.name values seen
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range attributeSets(m.Data) {
				if v, ok := set.Value("bulwark.name"); ok {
					if names[sm.Scope.Name] == nil {
						names[sm.Scope.Name] = map[string]bool{}
					}
					names[sm.Scope.Name][v.AsString()] = true
				}
			}
		}
	}
	const mod = "github.com/bulwark-go/bulwark/"
	for _, pkg := range []string{"retry", "breaker", "timeout", "limit", "session", "degrade"} {
		if !names[mod+pkg]["edge"] {
			t.Errorf("scope %s: bulwark.name values %v, want \"edge\" from the stack's Name", pkg, names[mod+pkg])
		}
	}
	if got := names[mod+"idempotency"]; !got["own"] || got["edge"] {
		t.Errorf("idempotency: bulwark.name values %v, want only its own Config's \"own\"", got)
	}
	conformance.Instruments(t, reader)
}

func attributeSets(data metricdata.Aggregation) []attribute.Set {
	var out []attribute.Set
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	}
	return out
}

func TestServerConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   stack.ServerConfig
		field string
	}{
		{"zero", stack.ServerConfig{}, ""},
		{"every layer with its defaults", stack.ServerConfig{Health: &health.Config{}, Shed: &degrade.ShedderConfig{}, Rate: &limit.RateConfig{}, Bulkhead: &limit.BulkheadConfig{},
			Timeout: &timeout.Config{}, Session: &session.Config{}, Idempotency: &idempotency.Config{}}, ""},
		{"health", stack.ServerConfig{Health: &health.Config{Checks: []health.Check{{Name: ""}}}}, "Health.Checks[0].Name"},
		{"shed", stack.ServerConfig{Shed: &degrade.ShedderConfig{Headroom: -1}}, "Shed.Headroom"},
		{"rate", stack.ServerConfig{Rate: &limit.RateConfig{Burst: -1}}, "Rate.Burst"},
		{"bulkhead", stack.ServerConfig{Bulkhead: &limit.BulkheadConfig{MaxConcurrent: -1}}, "Bulkhead.MaxConcurrent"},
		{"timeout", stack.ServerConfig{Timeout: &timeout.Config{Timeout: -1}}, "Timeout.Timeout"},
		{"session", stack.ServerConfig{Session: &session.Config{SizeLimit: -1}}, "Session.SizeLimit"},
		{"idempotency", stack.ServerConfig{Idempotency: &idempotency.Config{Lease: -1}}, "Idempotency.Lease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				s := stack.NewServer(tc.cfg)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				return
			}
			var ce *bulwark.ConfigError
			if !errors.As(err, &ce) || ce.Package != "stack" || ce.Field != tc.field || !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want a stack ConfigError for %s", err, tc.field)
			}
			defer func() {
				if r, _ := recover().(error); !errors.Is(r, bulwark.ErrInvalidConfig) || r.Error() != err.Error() {
					t.Fatalf("NewServer panicked with %v, want Validate's error", r)
				}
			}()
			stack.NewServer(tc.cfg)
		})
	}
}
