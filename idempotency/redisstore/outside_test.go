package redisstore_test

// Black-box tests of the Redis store through the Keeper's Handler, written
// from the documentation alone, over httptest servers on 127.0.0.1.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/idempotency/redisstore"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

type rreply struct {
	status int
	header http.Header
	body   []byte
}

func rpost(t *testing.T, url, key string, body string) rreply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rreply{resp.StatusCode, resp.Header, b}
}

func TestOutsideRedisReplayByteForByte(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		var runs atomic.Int64
		binary := make([]byte, 256)
		for i := range binary {
			binary[i] = byte(i)
		}
		k := idempotency.New(idempotency.Config{Store: redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})})
		srv := httptest.NewServer(k.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b, c")
			w.Header().Set("X-Empty", "")
			if r.URL.Path == "/empty" {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.WriteHeader(http.StatusAccepted)
			w.Write(binary)
		})))
		defer func() { srv.Close(); k.Close() }()
		for _, path := range []string{"/bin", "/empty"} {
			a := rpost(t, srv.URL+path, "k"+path, "x")
			b := rpost(t, srv.URL+path, "k"+path, "x")
			if string(a.body) != string(b.body) || a.status != b.status {
				t.Fatalf("%s: replay %d %q, want %d %q", path, b.status, b.body, a.status, a.body)
			}
			for _, name := range []string{"Content-Type", "X-Multi", "X-Empty", "Content-Length"} {
				if strings.Join(a.header.Values(name), "|") != strings.Join(b.header.Values(name), "|") {
					t.Errorf("%s %s: %q then %q", path, name, a.header.Values(name), b.header.Values(name))
				}
			}
			if b.header.Get(idempotency.ReplayedHeader) != "true" {
				t.Errorf("%s: no %s", path, idempotency.ReplayedHeader)
			}
		}
		if runs.Load() != 2 {
			t.Fatalf("runs %d, want 2", runs.Load())
		}
	})
}

// outage503 checks r is the documented answer when Redis is unreachable:
// 503, Retry-After: 1, a problem document of type ErrStoreUnavailable.
func outage503(t *testing.T, r rreply) {
	t.Helper()
	if r.status != 503 || r.header.Get("Retry-After") != "1" || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("Redis unreachable: %d %v %q", r.status, r.header, r.body)
	}
	var p struct {
		Type   string
		Status int
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Type != idempotency.ProblemTypeBase+"ErrStoreUnavailable" || p.Status != 503 {
		t.Fatalf("problem %q: %v", r.body, err)
	}
}

// Redis fails after the handler ran: the client still gets its response,
// the failure is counted, and the key is not run again while the claim's
// lease lasts.
func TestOutsideRedisDownDuringHandler(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		in, gate := make(chan struct{}), make(chan struct{})
		var runs atomic.Int64
		k := idempotency.New(idempotency.Config{
			Store:         redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix}),
			StoreTimeout:  300 * time.Millisecond,
			Lease:         idempotency.MaxLease,
			MeterProvider: mp,
		})
		srv := httptest.NewServer(k.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				in <- struct{}{}
				<-gate
			}
			io.WriteString(w, "done")
		})))
		defer func() { srv.Close(); k.Close() }()
		first := make(chan rreply)
		go func() { first <- rpost(t, srv.URL, "k", "x") }()
		<-in
		h.Down()
		close(gate)
		if r := <-first; r.status != 200 || string(r.body) != "done" {
			t.Fatalf("the response of a request whose record could not be stored: %d %q", r.status, r.body)
		}
		var rm metricdata.ResourceMetrics
		reader.Collect(context.Background(), &rm)
		var storeErrors int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "bulwark.idempotency.store.errors" {
					for _, dp := range s.DataPoints {
						storeErrors += dp.Value
					}
				}
			}
		}
		if storeErrors < 1 {
			t.Errorf("store_errors %d, want the failed Complete counted", storeErrors)
		}
		h.Up()
		var r rreply
		afterOutage(func() int { r = rpost(t, srv.URL, "k", "x"); return r.status })
		if r.status != 409 || runs.Load() != 1 {
			t.Fatalf("while the lease lasts: %d %q, runs %d; want 409", r.status, r.body, runs.Load())
		}
	})
}

func TestOutsideRedisConfig(t *testing.T) {
	for _, p := range []string{"a{b", "a}b", "{}", strings.Repeat("p", 257)} {
		err := redisstore.Config{Prefix: p}.Validate()
		var ce *bulwark.ConfigError
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("Prefix %q: %v", p, err)
		}
	}
	h := redistest.NewMiniredis(t)
	s := redisstore.New(h.Client, redisstore.Config{})
	if got := s.Key("abc"); got != redisstore.DefaultPrefix+"{abc}" {
		t.Errorf("Key = %q", got)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "nil") {
				t.Errorf("New(nil): %v", r)
			}
		}()
		redisstore.New(nil, redisstore.Config{})
	}()
	func() {
		defer func() {
			if r, _ := recover().(error); !errors.Is(r, bulwark.ErrInvalidConfig) {
				t.Errorf("New with a bad Prefix: %v", r)
			}
		}()
		redisstore.New(h.Client, redisstore.Config{Prefix: "{x}"})
	}()
}

// A record that UnmarshalRecord cannot read back is never written to Redis:
// it would make its key answer 503 until Retention ran out.
func TestOutsideRedisUnreadableRecordNotStored(t *testing.T) {
	h := redistest.NewMiniredis(t)
	k := idempotency.New(idempotency.Config{Store: redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})})
	defer k.Close()
	hdr := http.Header{}
	for i := range 1025 {
		hdr.Set(fmt.Sprint("X-", i), "v")
	}
	runs := 0
	fn := func(context.Context) (*idempotency.Record, error) {
		runs++
		return &idempotency.Record{Status: 200, Header: hdr}, nil
	}
	req := idempotency.Request{Key: "k"}
	k.Do(context.Background(), req, fn)
	if _, _, err := k.Do(context.Background(), req, fn); err != nil || runs != 2 {
		t.Fatalf("after a record with 1025 headers: %v, runs %d; want the key released", err, runs)
	}
}
