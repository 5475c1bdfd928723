package session_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/internal/storetest"
)

// TestHandlerConformance runs the conformance suite through a layer whose
// handler has changed the session, so that every check runs with a commit
// hooked before the first write.
func TestHandlerConformance(t *testing.T) {
	m := session.New(session.Config{})
	defer m.Close()
	conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
		return m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := session.Put(r.Context(), "seen", true); err != nil {
				panic(err)
			}
			next.ServeHTTP(w, r)
		}))
	}})
}

// TestCookieBeforeFirstFlush: the commit and Set-Cookie happen before the
// first Flush, so a streaming handler's client gets its cookie.
func TestCookieBeforeFirstFlush(t *testing.T) {
	m := session.New(session.Config{})
	defer m.Close()
	release := make(chan struct{})
	_, c := storetest.NewServer(t, m, func(w http.ResponseWriter, r *http.Request) {
		session.Put(r.Context(), "a", "1")
		w.(http.Flusher).Flush()
		<-release // the client must already have the headers
		io.WriteString(w, "done")
	})
	req, _ := http.NewRequest(http.MethodGet, c.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.Cookies()) != 1 {
		t.Fatalf("headers flushed without the session cookie: %v", resp.Header)
	}
	close(release)
	io.ReadAll(resp.Body)
}

func TestInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	mem := session.NewMemoryStore(session.MemoryConfig{MaxSessions: 1})
	defer mem.Close()
	m := session.New(session.Config{Store: mem, MeterProvider: mp, Name: "web"})
	defer m.Close()
	_, c := storetest.NewServer(t, m, storetest.App)
	c.Must("/put?k=a&v=1")
	c.Must("/get?k=a")
	d := c.Clone()
	d.Token = ""
	d.Get("/put?k=a&v=1") // store full: a save error
	conformance.Instruments(t, reader)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mm := range sm.Metrics {
			for _, dp := range mm.Data.(metricdata.Sum[int64]).DataPoints {
				if op, ok := dp.Attributes.Value("bulwark.session.op"); ok {
					got[mm.Name+"/"+op.AsString()] += dp.Value
				} else {
					got[mm.Name] += dp.Value
				}
			}
		}
	}
	if got["bulwark.session.loads"] != 1 || got["bulwark.session.saves"] != 1 || got["bulwark.session.store.errors/save"] != 1 {
		t.Fatalf("metrics = %v, want 1 load, 1 save, 1 save error", got)
	}
	m.Close()
	var after metricdata.ResourceMetrics
	reader.Collect(context.Background(), &after)
	if len(after.ScopeMetrics) != 0 && len(after.ScopeMetrics[0].Metrics) != 0 {
		t.Fatal("metrics still reported after Close")
	}
}
