package chaos_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/chaos"
)

func TestOutsideDoActions(t *testing.T) {
	for _, tc := range []struct {
		a      chaos.Action
		called bool
	}{{chaos.Error, false}, {chaos.Abort, false}, {chaos.Drop, true}} {
		inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Action: tc.a, AllTraffic: true}}})
		called := false
		err := inj.Do(context.Background(), "/op", func(context.Context) error { called = true; return nil })
		var fe *chaos.FaultError
		if !errors.As(err, &fe) || fe.Action != tc.a || called != tc.called || fe.Fault != tc.a.String() {
			t.Errorf("%v: err %v called %v", tc.a, err, called)
		}
		if err.Error() != "chaos: injected fault "+tc.a.String()+" ("+tc.a.String()+")" {
			t.Errorf("message %q", err.Error())
		}
		inj.Close()
	}
	// Faults aimed at drill traffic or at HTTP methods never hit Do.
	inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Action: chaos.Abort}, {Action: chaos.Abort, AllTraffic: true, Methods: []string{"GET"}}}})
	defer inj.Close()
	if err := inj.Do(context.Background(), "/op", func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestOutsideLatencyCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, l := range []chaos.Latency{
			{Dist: chaos.Pareto, Delay: time.Second, Shape: 0.1, Max: 3 * time.Second},
			{Dist: chaos.Uniform, Delay: time.Second, Spread: time.Hour, Max: 3 * time.Second},
			{Dist: chaos.Normal, Delay: time.Second, Spread: time.Hour, Max: 3 * time.Second},
		} {
			inj := chaos.New(chaos.Config{Enabled: true, Seed: 3, Faults: []chaos.Fault{{Latency: l, AllTraffic: true}}})
			for range 200 {
				start := time.Now()
				inj.Do(context.Background(), "/", func(context.Context) error { return nil })
				d := time.Since(start)
				if d > 3*time.Second || d < 0 {
					t.Fatalf("%v: delay %v over Max", l.Dist, d)
				}
				if l.Dist != chaos.Normal && d < time.Second {
					t.Fatalf("%v: delay %v under Delay", l.Dist, d)
				}
			}
			inj.Close()
		}
	})
}

func TestOutsideSetFaultsKeepsCounts(t *testing.T) {
	inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Name: "f", Action: chaos.Abort, AllTraffic: true}}})
	defer inj.Close()
	inj.Do(context.Background(), "/", func(context.Context) error { return nil })
	if err := inj.SetFaults([]chaos.Fault{{Name: "f", Action: chaos.Abort, AllTraffic: true, Probability: 1}}); err != nil {
		t.Fatal(err)
	}
	inj.Do(context.Background(), "/", func(context.Context) error { return nil })
	if inj.Injected()["f"] != 2 {
		t.Fatalf("%v", inj.Injected())
	}
	fs := inj.Faults()
	if len(fs) != 1 || fs[0].HTTPStatus != 503 || fs[0].GRPCCode != 14 || fs[0].Probability != 1 {
		t.Fatalf("defaults not filled: %+v", fs)
	}
	fs[0].Name = "mutated"
	if inj.Faults()[0].Name != "f" {
		t.Fatal("Faults is not a copy")
	}
	inj.SetFaults(nil)
	if err := inj.Do(context.Background(), "/", func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestOutsideMetric(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	inj := chaos.New(chaos.Config{Name: "drill", Enabled: true, MeterProvider: mp, Faults: []chaos.Fault{{Name: "x", Action: chaos.Drop, AllTraffic: true}}})
	defer inj.Close()
	for range 3 {
		inj.Do(context.Background(), "/", func(context.Context) error { return nil })
	}
	var rm metricdata.ResourceMetrics
	reader.Collect(context.Background(), &rm)
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "bulwark.chaos.faults" || m.Unit != "{fault}" {
				t.Errorf("instrument %s %s", m.Name, m.Unit)
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				n, _ := dp.Attributes.Value("bulwark.name")
				f, _ := dp.Attributes.Value("bulwark.chaos.fault")
				a, _ := dp.Attributes.Value("bulwark.chaos.action")
				if n.AsString() == "drill" && f.AsString() == "x" && a.AsString() == "drop" && dp.Value == 3 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("no data point: %+v", rm)
	}
}

func TestOutsideHandlerLatencyClientGone(t *testing.T) {
	var ran atomic.Int64
	inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: time.Hour}}}})
	defer inj.Close()
	srv := httptest.NewServer(inj.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1) })))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	req.Header.Set(chaos.DefaultHeader, "1")
	_, err := srv.Client().Do(req)
	if err == nil {
		t.Fatal("no error")
	}
	srv.Close() // waits for the handler: it must not be held for an hour
	if ran.Load() != 0 {
		t.Fatal("handler ran")
	}
}

func TestOutsideRoundTripperClosesBody(t *testing.T) {
	inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Action: chaos.Error}}})
	defer inj.Close()
	var closed atomic.Bool
	body := &closer{Reader: strings.NewReader("x"), closed: &closed}
	req, _ := http.NewRequest("POST", "http://127.0.0.1:1/", body)
	req.Header.Set(chaos.DefaultHeader, "1")
	resp, err := inj.RoundTripper(nil).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !closed.Load() || resp.StatusCode != 503 || len(b) == 0 || resp.Header.Get("Content-Type") == "" || resp.Request != req {
		t.Fatalf("closed %v resp %+v body %q", closed.Load(), resp, b)
	}
}

type closer struct {
	io.Reader
	closed *atomic.Bool
}

func (c *closer) Close() error { c.closed.Store(true); return nil }
