package degrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/limit"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestOutsideFallbackEachKind(t *testing.T) {
	br := breaker.New(breaker.Config{})
	br.ForceOpen()
	lim := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	rel, _ := lim.Acquire(context.Background())
	defer rel.Release(bulwark.Success)

	kinds := map[degrade.Reason]func(ctx context.Context) (string, error){
		degrade.ReasonError: func(ctx context.Context) (string, error) { return "", errors.New("boom") },
		degrade.ReasonBreaker: func(ctx context.Context) (string, error) {
			return "", br.Do(ctx, func(context.Context) error { return nil })
		},
		degrade.ReasonRejected: func(ctx context.Context) (string, error) { _, err := lim.Acquire(ctx); return "", err },
		degrade.ReasonTimeout: func(ctx context.Context) (string, error) {
			c, cancel := context.WithTimeout(ctx, time.Nanosecond)
			defer cancel()
			<-c.Done()
			return "", c.Err()
		},
	}
	for want, fn := range kinds {
		var got []degrade.Event
		f := degrade.New(degrade.Config{OnFallback: func(ctx context.Context, ev degrade.Event) { got = append(got, ev) }})
		v, err := degrade.Call(context.Background(), f, "k", fn, degrade.Value("fb"))
		if err != nil || v != "fb" {
			t.Errorf("%s: %q %v", want, v, err)
		}
		if len(got) != 1 || got[0].Reason != want || got[0].Source != degrade.SourceFallback {
			t.Errorf("%s: events %+v", want, got)
		}
		err = f.Do(context.Background(), func(ctx context.Context) error { _, err := fn(ctx); return err }, func(ctx context.Context, err error) error { return nil })
		if err != nil {
			t.Errorf("%s: Do %v", want, err)
		}
		f.Close()
	}
	// A caller's cancellation gets no fallback.
	f := degrade.New(degrade.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := degrade.Call(ctx, f, "k", func(ctx context.Context) (string, error) { return "", ctx.Err() }, degrade.Value("fb"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call got %v", err)
	}
}

func TestOutsideLastGood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var evs []degrade.Event
		f := degrade.New(degrade.Config{MaxAge: time.Minute, MaxKeys: 2, OnFallback: func(_ context.Context, ev degrade.Event) { evs = append(evs, ev) }})
		defer f.Close()
		ok := func(v string) func(context.Context) (string, error) {
			return func(context.Context) (string, error) { return v, nil }
		}
		fail := func(context.Context) (string, error) { return "", errors.New("down") }
		degrade.Call(context.Background(), f, "a", ok("A1"), nil)
		v, err := degrade.Call(context.Background(), f, "a", fail, degrade.Value("static"))
		if v != "A1" || err != nil || evs[len(evs)-1].Source != degrade.SourceLastGood {
			t.Fatalf("last good: %q %v %+v", v, err, evs)
		}
		// Different T for the same key: not served.
		n, err := degrade.Call(context.Background(), f, "a", func(context.Context) (int, error) { return 0, errors.New("x") }, degrade.Value(7))
		if n != 7 || err != nil {
			t.Fatalf("other type: %v %v", n, err)
		}
		time.Sleep(time.Minute + time.Second)
		v, _ = degrade.Call(context.Background(), f, "a", fail, degrade.Value("static"))
		if v != "static" {
			t.Fatalf("expired value served: %q", v)
		}
		// Bounded in number: 3 keys into MaxKeys 2, oldest dropped.
		degrade.Call(context.Background(), f, "k1", ok("1"), nil)
		time.Sleep(time.Millisecond)
		degrade.Call(context.Background(), f, "k2", ok("2"), nil)
		time.Sleep(time.Millisecond)
		degrade.Call(context.Background(), f, "k3", ok("3"), nil)
		got := map[string]string{}
		for _, k := range []string{"k1", "k2", "k3"} {
			got[k], _ = degrade.Call(context.Background(), f, k, fail, degrade.Value("none"))
		}
		if got["k1"] != "none" || got["k2"] != "2" || got["k3"] != "3" {
			t.Fatalf("bounded: %v", got)
		}
		// No fallback: fn's own result.
		_, err = degrade.Call(context.Background(), f, "zz", fail, nil)
		if err == nil || err.Error() != "down" {
			t.Fatalf("no fallback: %v", err)
		}
	})
}

func TestOutsideRoundTripper(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "body-"+strconv.Itoa(int(status.Load())))
	}))
	defer srv.Close()
	sw := degrade.NewSwitches(degrade.SwitchesConfig{})
	f := degrade.New(degrade.Config{MaxAge: time.Hour, Switch: sw.Switch("feat")})
	c := &http.Client{Transport: f.RoundTripper(srv.Client().Transport)}
	get := func() (*http.Response, string, error) {
		resp, err := c.Get(srv.URL + "/x")
		if err != nil {
			return nil, "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b), nil
	}
	resp, b, err := get()
	if err != nil || b != "body-200" || resp.Header.Get(degrade.FallbackHeader) != "" {
		t.Fatal(resp, b, err)
	}
	status.Store(500)
	resp, b, err = get()
	if err != nil || resp.StatusCode != 200 || b != "body-200" || resp.Header.Get(degrade.FallbackHeader) != "status" {
		t.Fatalf("last good: %v %q %v", resp, b, err)
	}
	sw.Set(context.Background(), "feat", false)
	resp, b, err = get()
	if err != nil || b != "body-200" || resp.Header.Get(degrade.FallbackHeader) != "switch" {
		t.Fatalf("switch: %v %q %v", resp, b, err)
	}
	// No fallback at all: transport error goes through as is, switch error.
	f2 := degrade.New(degrade.Config{Switch: sw.Switch("feat")})
	c2 := &http.Client{Transport: f2.RoundTripper(srv.Client().Transport)}
	_, err = c2.Get(srv.URL)
	if !errors.Is(err, degrade.ErrSwitchedOff) {
		t.Fatalf("switched off without fallback: %v", err)
	}
	// Config.HTTP fallback on transport error.
	f3 := degrade.New(degrade.Config{HTTP: func(req *http.Request, reason degrade.Reason, err error) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("synth " + string(reason)))}
	}})
	c3 := &http.Client{Transport: f3.RoundTripper(nil)}
	resp, err = c3.Get("http://127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	bb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(bb) != "synth error" || resp.Header.Get(degrade.FallbackHeader) != "error" {
		t.Fatalf("synth: %q %v", bb, resp.Header)
	}
	for _, x := range []*degrade.Fallback{f, f2, f3} {
		x.Close()
		x.Close()
	}
}

func TestOutsideHandler(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	f := degrade.New(degrade.Config{MaxAge: time.Hour})
	srv := httptest.NewServer(f.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Real", "1")
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "body-"+strconv.Itoa(int(status.Load())))
	})))
	defer srv.Close()
	get := func() (*http.Response, string) {
		resp, err := srv.Client().Get(srv.URL + "/p")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	get()
	status.Store(503)
	resp, b := get()
	if resp.StatusCode != 200 || b != "body-200" || resp.Header.Get(degrade.FallbackHeader) != "status" {
		t.Fatalf("handler last good: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	status.Store(404)
	resp, b = get()
	if resp.StatusCode != 404 || b != "body-404" || resp.Header.Get(degrade.FallbackHeader) != "" {
		t.Fatalf("404: %d %q", resp.StatusCode, b)
	}
}

func TestOutsideSheddingOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(degrade.ShedderConfig{})
		defer s.Close()
		const workers = 8
		work := make(chan struct{}, workers)
		for range workers {
			work <- struct{}{}
		}
		var mu sync.Mutex
		ok := map[degrade.Criticality]int{}
		shed := map[degrade.Criticality]int{}
		var wg sync.WaitGroup
		// Twice the load: 8 workers of 10ms serve 800/s; send 1600/s for 10s.
		for i := range 16000 {
			c := degrade.Default
			switch i % 5 {
			case 0:
				c = degrade.Critical
			case 1, 2:
				c = degrade.Sheddable
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Do(context.Background(), c, func(context.Context) error {
					<-work
					time.Sleep(10 * time.Millisecond)
					work <- struct{}{}
					return nil
				})
				mu.Lock()
				if err == nil {
					ok[c]++
				} else {
					if !errors.Is(err, degrade.ErrShed) {
						t.Error(err)
					}
					shed[c]++
				}
				mu.Unlock()
			}()
			time.Sleep(time.Second / 1600)
		}
		wg.Wait()
		rate := func(c degrade.Criticality) float64 { return float64(ok[c]) / float64(ok[c]+shed[c]) }
		t.Logf("ok %v shed %v", ok, shed)
		if rate(degrade.Critical) < 0.99 {
			t.Errorf("critical success %.3f", rate(degrade.Critical))
		}
		if shed[degrade.Sheddable] == 0 || rate(degrade.Sheddable) > rate(degrade.Default) {
			t.Errorf("sheddable not shed first: %v %v", ok, shed)
		}
	})
}

func TestOutsideShedHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(degrade.ShedderConfig{RejectStatus: 429})
		defer s.Close()
		// Prime: fast requests, then slow ones while many are in flight.
		h := s.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/slow":
				time.Sleep(100 * time.Millisecond)
			case "/fast":
				time.Sleep(time.Millisecond)
			}
		}))
		for range 50 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fast", nil))
		}
		var wg sync.WaitGroup
		wave := func() {
			for range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/slow", nil))
				}()
			}
		}
		wave()
		time.Sleep(150 * time.Millisecond)
		wave()
		synctest.Wait()
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("Bulwark-Criticality", "sheddable")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		wg.Wait()
		st := s.Stats()
		t.Logf("stats %+v code %d ra %q", st, rec.Code, rec.Header().Get("Retry-After"))
		if rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("want 429 with Retry-After, got %d %v", rec.Code, rec.Header())
		}
	})
}

func TestOutsideThrottleFormula(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := degrade.NewThrottler(degrade.ThrottlerConfig{})
		defer th.Close()
		for i := range 100 {
			if th.Allow() == nil {
				if i%4 == 0 {
					th.Done(bulwark.Success)
				} else {
					th.Done(bulwark.Failure)
				}
			}
		}
		req, acc := th.Counts()
		want := math.Max(0, (float64(req)-2*float64(acc))/(float64(req)+1))
		if got := th.Probability(); math.Abs(got-want) > 1e-12 {
			t.Fatalf("P = %v, want %v from req=%d acc=%d", got, want, req, acc)
		}
		if req != 100 {
			t.Fatalf("requests %d, want 100 (rejections count)", req)
		}
		// Empirical rejection rate matches P (seedless, loose bound).
		p := th.Probability()
		rej := 0
		const n = 2000
		for range n {
			if err := th.Allow(); err != nil {
				rej++
				var te *degrade.ThrottleError
				if !errors.As(err, &te) || te.RetryAfter() <= 0 {
					t.Fatal(err)
				}
			} else {
				th.Done(bulwark.Neutral)
			}
		}
		_ = p
		req2, acc2 := th.Counts()
		t.Logf("req %d acc %d rej %d", req2, acc2, rej)
		// Neutral counts nothing: only rejections add to requests.
		if req2 != req+int64(rej) {
			t.Fatalf("requests %d, want %d", req2, req+int64(rej))
		}
		// Window slides: all forgotten after 10s.
		time.Sleep(11 * time.Second)
		if r, a := th.Counts(); r != 0 || a != 0 || th.Probability() != 0 {
			t.Fatalf("after window: %d %d", r, a)
		}
	})
}

func TestOutsideSwitchesAdmin(t *testing.T) {
	var changes []degrade.SwitchEvent
	sw := degrade.NewSwitches(degrade.SwitchesConfig{Defaults: map[string]bool{"b": false}, OnChange: func(_ context.Context, ev degrade.SwitchEvent) { changes = append(changes, ev) }})
	defer sw.Close()
	if !sw.Switch("a").On() || sw.Switch("b").On() {
		t.Fatal("defaults")
	}
	srv := httptest.NewServer(sw.AdminHandler(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer ok" }))
	defer srv.Close()
	do := func(method, auth string, form url.Values) (int, string) {
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, _ := do("GET", "", nil); code != 403 {
		t.Fatalf("unauthorised GET: %d", code)
	}
	if code, _ := do("POST", "Bearer no", url.Values{"name": {"a"}, "on": {"false"}}); code != 403 || !sw.Switch("a").On() {
		t.Fatalf("unauthorised POST flipped: %d", code)
	}
	code, b := do("POST", "Bearer ok", url.Values{"name": {"a"}, "on": {"false"}})
	if code != 200 || sw.Switch("a").On() {
		t.Fatalf("POST: %d %s", code, b)
	}
	var list struct{ Switches map[string]bool }
	json.Unmarshal([]byte(b), &list)
	if list.Switches["a"] != false || list.Switches["b"] != false {
		t.Fatalf("list %s", b)
	}
	for _, bad := range []url.Values{{"on": {"true"}}, {"name": {"a"}, "on": {"maybe"}}, {"name": {strings.Repeat("x", 200)}, "on": {"true"}}} {
		if code, _ := do("POST", "Bearer ok", bad); code != 400 {
			t.Errorf("bad %v: %d", bad, code)
		}
	}
	if code, _ := do("DELETE", "Bearer ok", nil); code != 405 {
		t.Errorf("DELETE %d", code)
	}
	if len(changes) != 1 || changes[0] != (degrade.SwitchEvent{Name: "a", On: false}) {
		t.Fatalf("changes %+v", changes)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("nil authorize did not panic")
			}
		}()
		sw.AdminHandler(nil)
	}()
	// Bounded registry.
	for i := range degrade.MaxSwitches + 10 {
		sw.Switch(fmt.Sprint("s", i))
	}
	if n := len(sw.List()); n > degrade.MaxSwitches {
		t.Fatalf("%d switches", n)
	}
	if err := sw.Set(context.Background(), "brand-new-past-max", false); !errors.Is(err, degrade.ErrTooManySwitches) {
		t.Fatalf("Set past max: %v", err)
	}
}

func TestOutsideValidate(t *testing.T) {
	for i, err := range []error{
		degrade.Config{MaxAge: -1}.Validate(),
		degrade.Config{MaxAge: 8 * 24 * time.Hour}.Validate(),
		degrade.Config{MaxKeys: -1}.Validate(),
		degrade.Config{MaxKeys: math.MaxInt}.Validate(),
		degrade.Config{MaxBody: -1}.Validate(),
		degrade.Config{MaxBody: math.MaxInt}.Validate(),
		degrade.ShedderConfig{Window: time.Millisecond}.Validate(),
		degrade.ShedderConfig{Buckets: -1}.Validate(),
		degrade.ShedderConfig{Buckets: degrade.MaxBuckets + 1}.Validate(),
		degrade.ShedderConfig{LatencyFactor: math.NaN()}.Validate(),
		degrade.ShedderConfig{LatencyFactor: 1}.Validate(),
		degrade.ShedderConfig{Headroom: math.Inf(1)}.Validate(),
		degrade.ShedderConfig{CoolOff: -1}.Validate(),
		degrade.ShedderConfig{CoolOff: time.Hour}.Validate(),
		degrade.ShedderConfig{MinInFlight: -1}.Validate(),
		degrade.ShedderConfig{RejectStatus: 500}.Validate(),
		degrade.ShedderConfig{Routes: make([]degrade.Route, degrade.MaxRoutes+1)}.Validate(),
		degrade.ShedderConfig{Routes: []degrade.Route{{Prefix: "/x", Criticality: 7}}}.Validate(),
		degrade.ThrottlerConfig{K: 1}.Validate(),
		degrade.ThrottlerConfig{K: math.NaN()}.Validate(),
		degrade.ThrottlerConfig{Window: 2 * time.Hour}.Validate(),
		degrade.ThrottlerConfig{Buckets: -3}.Validate(),
	} {
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%d: %v", i, err)
		}
	}
}

// A criticality header that is not a header field name could never be
// read: every request would silently be Default.
func TestShedderConfigRejectsBadHeaderName(t *testing.T) {
	for _, h := range []string{"bad header", "Criticality:", "x\r", "é"} {
		if err := (degrade.ShedderConfig{Header: h}).Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("Header %q: Validate = %v", h, err)
		}
	}
	if err := (degrade.ShedderConfig{Header: "X-Priority"}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// The instruments the package doc's Telemetry section lists are exactly
// the ones registered, with the units and attributes it names.
func TestDocumentedInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	s := degrade.NewShedder(degrade.ShedderConfig{Name: "s", MeterProvider: mp})
	th := degrade.NewThrottler(degrade.ThrottlerConfig{Name: "t", MeterProvider: mp})
	f := degrade.New(degrade.Config{Name: "f", MeterProvider: mp})
	degrade.Call(context.Background(), f, "", func(context.Context) (int, error) { return 0, errors.New("x") }, degrade.Value(1))
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"bulwark.degrade.shed_requests":      "{request}",
		"bulwark.degrade.inflight_requests":  "{request}",
		"bulwark.degrade.capacity":           "{request}",
		"bulwark.degrade.throttled_requests": "{request}",
		"bulwark.degrade.fallbacks":          "{fallback}",
	}
	got := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/bulwark-go/bulwark/degrade" {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			got[m.Name] = m.Unit
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("instruments %v, want %v", got, want)
	}
	for _, c := range []interface{ Close() error }{s, th, f} {
		if c.Close() != nil || c.Close() != nil {
			t.Fatal("Close")
		}
	}
	rm = metricdata.ResourceMetrics{}
	reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			t.Errorf("%s still reported after Close", m.Name)
		}
	}
}
