// Package conformance is the test suite every bulwark middleware runs: one
// set of checks for the contracts net/http and the house conventions set,
// so that eleven packages do not each test (or forget) them their own way.
//
// A package's tests call [RoundTripper] for each client-side layer,
// [Handler] for each server-side layer and [Instruments] for its
// telemetry. Add new checks here, not in a package, so every layer gets
// them.
package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Counts is what a layer has recorded so far, for the checks that a panic
// is recorded as a failure and a caller's cancellation as neither success
// nor failure. Layers that record nothing leave [Client.Counts] and
// [Server.Counts] nil, and those checks only assert that the panic goes
// on.
type Counts struct {
	Successes, Failures int64
}

// Client describes a client-side layer under test.
type Client struct {
	// Wrap builds the layer around next. It is called once per check, so
	// state does not leak from one check to the next.
	Wrap func(next http.RoundTripper) http.RoundTripper
	// Counts, if set, returns what the layer built by the latest Wrap has
	// recorded.
	Counts func() Counts
}

// Server describes a server-side layer under test.
type Server struct {
	// Wrap builds the layer around next, once per check.
	Wrap func(next http.Handler) http.Handler
	// Counts, if set, returns what the layer built by the latest Wrap has
	// recorded.
	Counts func() Counts
}

// RoundTripper runs the client-side checks:
//
//   - a nil next means http.DefaultTransport;
//   - the caller's request is never modified;
//   - a 101 response's body stays an io.ReadWriteCloser;
//   - every response body the layer opened is closed once the caller
//     closes the one it got;
//   - a panic in next is recorded as a failure and goes on;
//   - a call cancelled by its caller, with a cause, is not a failure.
func RoundTripper(t *testing.T, c Client) {
	t.Helper()
	t.Run("NilNextIsDefaultTransport", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		defer srv.Close()
		client := &http.Client{Transport: c.Wrap(nil)}
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatalf("GET through Wrap(nil): %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("GET through Wrap(nil) = %d %q, want 200 \"ok\"", resp.StatusCode, body)
		}
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})

	t.Run("UpgradedBodyWritable", func(t *testing.T) {
		// net/http makes a 101 Switching Protocols response's body an
		// io.ReadWriteCloser, the upgraded connection (WebSocket, h2c); a
		// layer that wraps bodies must keep Write (httpx.KeepWrite).
		srv := httptest.NewServer(UpgradeEcho(t))
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "echo")
		resp, err := c.Wrap(tr).RoundTrip(req)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		defer resp.Body.Close()
		rw, ok := resp.Body.(io.ReadWriteCloser)
		if !ok {
			t.Fatalf("a 101 response's body is a %T, not an io.ReadWriteCloser: the layer hid the upgraded connection's Write", resp.Body)
		}
		io.WriteString(rw, "hello\n")
		if got, _ := bufio.NewReader(rw).ReadString('\n'); got != "hello\n" {
			t.Fatalf("echo over the upgraded connection = %q", got)
		}
	})

	t.Run("RequestNotModified", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Reply", "1")
			io.WriteString(w, "ok")
		}))
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
			req, _ := http.NewRequest(method, srv.URL+"/path?q=1", strings.NewReader("payload"))
			req.Header.Set("X-Caller", "a")
			req.Header.Set("Idempotency-Key", "k1")
			before := snapshot(req)
			resp, err := c.Wrap(tr).RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if after := snapshot(req); !reflect.DeepEqual(before, after) {
				t.Errorf("%s: the layer modified the caller's request:\nbefore %+v\nafter  %+v", method, before, after)
			}
		}
	})

	t.Run("DiscardedBodiesClosed", func(t *testing.T) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch n.Add(1) % 3 {
			case 1:
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusServiceUnavailable)
			case 2:
				w.WriteHeader(http.StatusInternalServerError)
			}
			io.WriteString(w, "body")
		}))
		defer srv.Close()
		ct := &countingTransport{next: &http.Transport{}}
		defer ct.next.(*http.Transport).CloseIdleConnections()
		rt := c.Wrap(ct)
		for i := 0; i < 12; i++ {
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			resp, err := rt.RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		if o, cl := ct.opened.Load(), ct.closed.Load(); o != cl {
			t.Fatalf("the layer's next opened %d response bodies and %d were closed", o, cl)
		}
	})

	t.Run("PanicRecordedAndRepanicked", func(t *testing.T) {
		sentinel := fmt.Errorf("conformance: panic in next")
		rt := c.Wrap(roundTripFunc(func(*http.Request) (*http.Response, error) { panic(sentinel) }))
		before := counts(c.Counts)
		got := func() (v any) {
			defer func() { v = recover() }()
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
			rt.RoundTrip(req)
			return nil
		}()
		if err, _ := got.(error); !errors.Is(err, sentinel) {
			t.Fatalf("RoundTrip recovered %v, want next's panic value to go on", got)
		}
		if c.Counts != nil {
			if after := counts(c.Counts); after.Failures <= before.Failures {
				t.Fatalf("a panic in next was not recorded as a failure: counts %+v -> %+v", before, after)
			}
		}
	})

	t.Run("CallerCancellationIsNeutral", func(t *testing.T) {
		if c.Counts == nil {
			t.Skip("layer records no outcomes")
		}
		release := make(chan struct{})
		arrived := make(chan struct{}, 64)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		rt := c.Wrap(tr)
		before := counts(c.Counts)
		for _, cause := range []error{nil, errors.New("conformance: user went away")} {
			ctx, cancel := context.WithCancelCause(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			go func() {
				// Cancel once the request is in flight (or, for a layer
				// that never sends it, after a bound).
				select {
				case <-arrived:
				case <-time.After(5 * time.Second):
				}
				cancel(cause)
			}()
			if resp, err := rt.RoundTrip(req); err == nil {
				resp.Body.Close()
				t.Fatalf("cause %v: RoundTrip succeeded on a cancelled request", cause)
			}
		}
		if after := counts(c.Counts); after.Failures != before.Failures {
			t.Fatalf("a caller's cancellation was recorded as a failure: counts %+v -> %+v", before, after)
		}
	})
}

// Handler runs the server-side checks over a real server:
//
//   - the handler sees an http.Flusher, and a flush reaches the client
//     while the handler is still running;
//   - http.ResponseController's Flush, SetWriteDeadline and Hijack work
//     through the layer;
//   - a panic in the handler is recorded as a failure and goes on;
//   - a request whose client went away is not a failure.
func Handler(t *testing.T, s Server) {
	t.Helper()
	t.Run("FlusherPassesThrough", func(t *testing.T) {
		reached := make(chan struct{})
		srv := httptest.NewServer(s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f, ok := w.(http.Flusher)
			if !ok {
				http.Error(w, "no http.Flusher through the layer", 500)
				return
			}
			io.WriteString(w, "first\n")
			f.Flush()
			select { // the client must see "first" before the handler ends
			case <-reached:
			case <-time.After(5 * time.Second):
				return
			}
			io.WriteString(w, "second\n")
		})))
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		line, _ := br.ReadString('\n')
		if line != "first\n" {
			rest, _ := io.ReadAll(br)
			t.Fatalf("first line = %q%s, want the flushed \"first\"", line, rest)
		}
		close(reached)
		line, _ = br.ReadString('\n')
		if line != "second\n" {
			t.Fatalf("second line = %q (the flush did not reach the client before the handler ended)", line)
		}
	})

	t.Run("ResponseControllerPassesThrough", func(t *testing.T) {
		srv := httptest.NewServer(s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				http.Error(w, "SetWriteDeadline: "+err.Error(), 500)
				return
			}
			if err := rc.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
				http.Error(w, "SetReadDeadline: "+err.Error(), 500)
				return
			}
			if r.URL.Path == "/hijack" {
				conn, brw, err := rc.Hijack()
				if err != nil {
					http.Error(w, "Hijack: "+err.Error(), 500)
					return
				}
				defer conn.Close()
				brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
				brw.Flush()
				return
			}
			io.WriteString(w, "flushed")
			if err := rc.Flush(); err != nil {
				panic("unreachable: headers already sent, " + err.Error())
			}
		})))
		defer srv.Close()
		for path, want := range map[string]string{"/": "flushed", "/hijack": "hijacked"} {
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, body, want)
			}
		}
	})

	t.Run("PanicRecordedAndRepanicked", func(t *testing.T) {
		sentinel := fmt.Errorf("conformance: panic in handler")
		h := s.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(sentinel) }))
		before := counts(s.Counts)
		got := func() (v any) {
			defer func() { v = recover() }()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			return nil
		}()
		if err, _ := got.(error); !errors.Is(err, sentinel) {
			t.Fatalf("ServeHTTP recovered %v, want the handler's panic value to go on", got)
		}
		if s.Counts != nil {
			if after := counts(s.Counts); after.Failures <= before.Failures {
				t.Fatalf("a panicking handler was not recorded as a failure: counts %+v -> %+v", before, after)
			}
		}
	})

	t.Run("ClientGoneIsNeutral", func(t *testing.T) {
		if s.Counts == nil {
			t.Skip("layer records no outcomes")
		}
		h := s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		before := counts(s.Counts)
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errors.New("conformance: client went away"))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		if after := counts(s.Counts); after.Failures != before.Failures || after.Successes != before.Successes {
			t.Fatalf("a request whose client went away was counted: counts %+v -> %+v", before, after)
		}
	})
}

var instrumentName = regexp.MustCompile(`^bulwark\.([a-z]+)\.[a-z][a-z_.]*[a-z]$`)

// Instruments collects reader and checks every instrument of a bulwark
// scope: the scope is the package's import path, the name is
// "bulwark.<pkg>.<noun>" for that same package, the unit is set, a gauge
// of a state or a count is not "1" (which Prometheus exporters turn into
// a _ratio suffix), and every histogram has explicit bucket boundaries
// (the SDK's defaults, 0 to 10000, put every sub-second latency in one
// bucket). It fails the test if no bulwark instrument was collected.
func Instruments(t *testing.T, reader *metric.ManualReader) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	seen := 0
	for _, sm := range rm.ScopeMetrics {
		pkg, ok := strings.CutPrefix(sm.Scope.Name, "github.com/bulwark-go/bulwark/")
		if !ok {
			continue
		}
		for _, m := range sm.Metrics {
			seen++
			mm := instrumentName.FindStringSubmatch(m.Name)
			if mm == nil || mm[1] != strings.ReplaceAll(pkg, "/", "") && mm[1] != lastElem(pkg) {
				t.Errorf("instrument %q in scope %q: want bulwark.%s.<noun>", m.Name, sm.Scope.Name, lastElem(pkg))
			}
			if m.Unit == "" {
				t.Errorf("instrument %q has no unit", m.Name)
			}
			if m.Unit == "1" {
				t.Errorf("instrument %q has unit \"1\"; use a UCUM annotation such as {state} or {call}", m.Name)
			}
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
				for _, dp := range h.DataPoints {
					if reflect.DeepEqual(dp.Bounds, defaultBounds) {
						t.Errorf("histogram %q uses the SDK's default bucket boundaries", m.Name)
					}
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no bulwark instrument was collected")
	}
}

var defaultBounds = []float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000}

func lastElem(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

type reqSnapshot struct {
	Method, URL, Host string
	Header            http.Header
	ContentLength     int64
	Body              io.ReadCloser
	HasGetBody        bool
	Ctx               context.Context
}

func snapshot(r *http.Request) reqSnapshot {
	return reqSnapshot{r.Method, r.URL.String(), r.Host, r.Header.Clone(), r.ContentLength, r.Body, r.GetBody != nil, r.Context()}
}

func counts(f func() Counts) Counts {
	if f == nil {
		return Counts{}
	}
	return f()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type countingTransport struct {
	next           http.RoundTripper
	opened, closed atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.Body != nil {
		c.opened.Add(1)
		resp.Body = &countingBody{ReadCloser: resp.Body, closed: &c.closed}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	closed *atomic.Int64
	once   atomic.Bool
}

func (b *countingBody) Close() error {
	if b.once.CompareAndSwap(false, true) {
		b.closed.Add(1)
	}
	return b.ReadCloser.Close()
}

// UpgradeEcho is a handler that answers every request with 101 Switching
// Protocols (Upgrade: echo), then echoes one line over the upgraded
// connection: a server for the checks that a layer hands a 101
// response's body (the upgraded connection, an io.ReadWriteCloser) up
// writable.
func UpgradeEcho(t testing.TB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString(line)
		brw.Flush()
	})
}
