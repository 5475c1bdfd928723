package timeout

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestRoundTripperConformance(t *testing.T) {
	conformance.RoundTripper(t, conformance.Client{Wrap: func(next http.RoundTripper) http.RoundTripper {
		return mk(t, Config{Timeout: 10 * time.Second}).RoundTripper(next)
	}})
}

func TestHandlerConformance(t *testing.T) {
	conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
		return mk(t, Config{Timeout: 10 * time.Second}).Handler(next)
	}})
}

// client returns an http.Client through to's RoundTripper over its own
// transport, closed when the test ends.
func client(t *testing.T, to *Timeout) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: to.RoundTripper(tr)}
}

func TestRoundTripperTimesOutBeforeHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the client gives up
	}))
	defer srv.Close()
	to := mk(t, Config{Timeout: 20 * time.Millisecond})
	_, err := client(t, to).Get(srv.URL)
	wantTimeout(t, err, 20*time.Millisecond)
	if ue := (interface{ Timeout() bool })(nil); !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("err %v: Timeout() is not true", err)
	}
	if n := to.timeouts.Load(); n != 1 {
		t.Fatalf("timeouts = %d, want 1", n)
	}
}

func TestRoundTripperBodyCloseEndsTheAttempt(t *testing.T) {
	gone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(gone)
	}))
	defer srv.Close()
	to := mk(t, Config{Timeout: time.Hour})
	resp, err := client(t, to).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the attempt's context ends here, long before its hour
	<-gone
	if n := to.timeouts.Load(); n != 0 {
		t.Fatalf("timeouts = %d after a close, want 0", n)
	}
}

func TestRoundTripperCallerCancellationIsTheCallers(t *testing.T) {
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	defer srv.Close()
	to := mk(t, Config{Timeout: time.Hour})
	userLeft := errors.New("user left")
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { <-arrived; cancel(userLeft) }()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err := client(t, to).Do(req)
	if err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want the caller's cancellation, not ErrTimeout", err)
	}
	if !errors.Is(err, userLeft) && !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the caller's cause", err)
	}
	if n := to.timeouts.Load(); n != 0 {
		t.Fatalf("timeouts = %d, want 0", n)
	}
}

func TestRoundTripperPropagatesTheBudget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(r.Header.Values("Request-Timeout-Ms"), ","))
	}))
	defer srv.Close()
	get := func(to *Timeout, ctx context.Context) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		req.Header.Set("Request-Timeout-Ms", "999999") // the caller's own value is replaced
		resp, err := client(t, to).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if req.Header.Get("Request-Timeout-Ms") != "999999" {
			t.Fatal("the caller's request was modified")
		}
		return string(b)
	}
	budget := func(s string) time.Duration {
		d, ok := parseBudget(s)
		if !ok {
			t.Fatalf("sent a malformed budget %q", s)
		}
		return d
	}
	// Own limit the smaller.
	if d := budget(get(mk(t, Config{Timeout: 3 * time.Second}), context.Background())); d <= 0 || d > 3*time.Second {
		t.Fatalf("budget %v, want in (0, 3s]", d)
	}
	// The caller's deadline the smaller.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if d := budget(get(mk(t, Config{Timeout: time.Hour}), ctx)); d <= 0 || d > 2*time.Second {
		t.Fatalf("budget %v, want in (0, 2s]", d)
	}
	// Off.
	if got := get(mk(t, Config{Header: NoHeader}), context.Background()); got != "999999" {
		t.Fatalf("with NoHeader the server saw %q, want the caller's header untouched", got)
	}
}

func TestBudgetFormatIsExact(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:            "0",
		999 * time.Microsecond:  "0",
		time.Millisecond:        "1",
		1999 * time.Microsecond: "1",
		10 * time.Second:        "10000",
		1 << 62:                 "86400000",
	} {
		if got := formatBudget(d); got != want {
			t.Errorf("formatBudget(%v) = %q, want %q", d, got, want)
		}
	}
	for s, want := range map[string]time.Duration{"0": 0, "00": 0, "250": 250 * time.Millisecond, "86400000": MaxTimeout, "9999999999": MaxTimeout} {
		if d, ok := parseBudget(s); !ok || d != want {
			t.Errorf("parseBudget(%q) = %v, %v; want %v", s, d, ok, want)
		}
	}
	for _, s := range []string{"", "-1", "+1", "1.5", "10ms", " 5", "5 ", "1e3", "0x10", "12345678901", "٣"} {
		if d, ok := parseBudget(s); ok {
			t.Errorf("parseBudget(%q) = %v, accepted a malformed value", s, d)
		}
	}
}

func FuzzParseBudget(f *testing.F) {
	for _, s := range []string{"0", "250", "9999999999", "12345678901", "-1", "1.5", " 5", "10ms", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseBudget(s)
		if !ok {
			return
		}
		if len(s) < 1 || len(s) > maxBudgetDigits || strings.TrimLeft(s, "0123456789") != "" {
			t.Fatalf("accepted %q", s)
		}
		if d < 0 || d%time.Millisecond != 0 {
			t.Fatalf("parseBudget(%q) = %v", s, d)
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		if formatBudget(d) != strconv.FormatInt(min(n, int64(MaxTimeout/time.Millisecond)), 10) {
			t.Fatalf("round trip of %q gave %q", s, formatBudget(d))
		}
	})
}

// handlerDeadline serves one request with header value hv (none if empty)
// through to's Handler inside a synctest bubble and returns how long the
// handler's context had, and the status.
func handlerDeadline(t *testing.T, cfg Config, hv []string) (left time.Duration, code int, ran bool) {
	synctest.Test(t, func(t *testing.T) {
		to := mk(t, cfg)
		h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ran = true
			dl, _ := r.Context().Deadline()
			left = time.Until(dl)
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, v := range hv {
			req.Header.Add("Request-Timeout-Ms", v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code = rec.Code
	})
	return left, code, ran
}

func TestHandlerAppliesThePropagatedBudget(t *testing.T) {
	cfg := Config{Timeout: time.Second}
	if left, code, _ := handlerDeadline(t, cfg, []string{"250"}); left != 250*time.Millisecond || code != 200 {
		t.Fatalf("budget 250: handler had %v (code %d), want 250ms", left, code)
	}
	if left, _, _ := handlerDeadline(t, cfg, []string{"5000"}); left != time.Second {
		t.Fatalf("budget 5000: handler had %v, want its own 1s (a budget never extends it)", left)
	}
	for _, bad := range [][]string{{"-1"}, {"1.5"}, {"250ms"}, {" 250"}, {"12345678901"}, {""}, {"100", "200"}} {
		if left, _, _ := handlerDeadline(t, cfg, bad); left != time.Second {
			t.Fatalf("malformed budget %q: handler had %v, want its own 1s", bad, left)
		}
	}
	if _, _, ran := handlerDeadline(t, Config{Timeout: time.Second, Header: NoHeader}, []string{"1"}); !ran {
		t.Fatal("NoHeader: the handler did not run")
	}
	if left, _, _ := handlerDeadline(t, Config{Timeout: time.Second, Header: NoHeader}, []string{"1"}); left != time.Second {
		t.Fatalf("NoHeader: handler had %v, want 1s (the header ignored)", left)
	}
	if _, code, ran := handlerDeadline(t, cfg, []string{"0"}); ran || code != http.StatusGatewayTimeout {
		t.Fatalf("budget 0: ran %v, code %d; want 504 without running the handler", ran, code)
	}
}

func TestHandlerReturningEmptyAfterDeadlineGets504(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := mk(t, Config{Timeout: 100 * time.Millisecond})
		h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(200 * time.Millisecond) // ignores its context, writes nothing
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusGatewayTimeout || rec.Header().Get("Connection") != "close" {
			t.Fatalf("got %d %v, want 504 with Connection: close", rec.Code, rec.Header())
		}
	})
}

func TestHandlerHeadersWithoutBodyAreSent(t *testing.T) {
	to := mk(t, Config{})
	h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Only", "1")
		if w.Header().Get("X-Outer") != "o" {
			t.Error("the handler does not see headers set by outer middleware")
		}
	}))
	rec := httptest.NewRecorder()
	rec.Header().Set("X-Outer", "o")
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 200 || rec.Header().Get("X-Only") != "1" || rec.Header().Get("X-Outer") != "o" {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
}

func TestHandlerClientGoneIsNotAnswered(t *testing.T) {
	to := mk(t, Config{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	if rec.Code != 200 || rec.Body.Len() != 0 || to.timeouts.Load() != 0 {
		t.Fatalf("client gone: code %d body %q timeouts %d; want nothing written, nothing counted",
			rec.Code, rec.Body, to.timeouts.Load())
	}
}

// TestHandlerHeaderWritesRaceTheTimer: the handler writes its headers
// while the timer answers 504. Under -race this guards that the two never
// share a header map.
func TestHandlerHeaderWritesRaceTheTimer(t *testing.T) {
	to := mk(t, Config{Timeout: 5 * time.Millisecond})
	srv := httptest.NewServer(to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; r.Context().Err() == nil || i < 1000; i++ {
			w.Header().Set("X-Busy", strconv.Itoa(i))
			w.Header().Add("X-Many", "v")
			if i%64 == 0 {
				w.Header().Del("X-Many")
			}
		}
		w.WriteHeader(http.StatusOK)
	})))
	defer srv.Close()
	for range 5 {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("X-Busy") != "" {
			t.Fatalf("got %d %v, want the 504 without the handler's headers", resp.StatusCode, resp.Header)
		}
	}
}

func TestHandlerAbandonConformance(t *testing.T) {
	conformance.Handler(t, conformance.Server{Wrap: func(next http.Handler) http.Handler {
		return mk(t, Config{Timeout: 10 * time.Second, Abandon: true}).Handler(next)
	}})
}

// served wraps h and closes the returned channel when ServeHTTP returns.
func served(h http.Handler) (http.Handler, chan struct{}) {
	ch := make(chan struct{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(ch)
		h.ServeHTTP(w, r)
	}), ch
}

// TestHandlerAbandonReturnsAtTheDeadline: with Abandon, ServeHTTP returns
// at the deadline while the handler, which ignores its context, still
// runs; over HTTP/2 the client reads the whole 504 before the handler
// ends.
func TestHandlerAbandonReturnsAtTheDeadline(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		to := mk(t, Config{Timeout: 20 * time.Millisecond, Abandon: true})
		release, lateErr := make(chan struct{}), make(chan error, 1)
		h, returned := served(to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			_, err := io.WriteString(w, "too late")
			lateErr <- err
		})))
		srv := httptest.NewUnstartedServer(h)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body) // to EOF, while the handler still runs
		resp.Body.Close()
		<-returned
		if resp.StatusCode != http.StatusGatewayTimeout || err != nil || !strings.HasPrefix(string(body), "timeout: timed out") {
			t.Fatalf("h2=%v: got %d %q, %v; want the whole 504", h2, resp.StatusCode, body, err)
		}
		if n := to.abandoned.Load(); n != 1 {
			t.Fatalf("abandoned gauge %d while the handler runs, want 1", n)
		}
		close(release)
		if e := <-lateErr; !errors.Is(e, http.ErrHandlerTimeout) {
			t.Fatalf("the abandoned handler's write = %v, want http.ErrHandlerTimeout", e)
		}
		srv.Close() // (the gauge's return to 0 is TestAbandonReturnsAtTheDeadline's, under synctest)
	}
}

// FuzzHandlerBudget: whatever the budget header holds, the handler runs
// (or is answered 504 for a budget of 0) with no more than its own limit,
// and nothing panics.
func FuzzHandlerBudget(f *testing.F) {
	for _, s := range []string{"0", "1", "250", "86400001", "9999999999", "-5", "1e3", " 7", "", "\x00"} {
		f.Add(s)
	}
	to := New(Config{Timeout: time.Second})
	defer to.Close()
	f.Fuzz(func(t *testing.T, v string) {
		var left time.Duration
		ran := false
		h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ran = true
			dl, _ := r.Context().Deadline()
			left = time.Until(dl)
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["Request-Timeout-Ms"] = []string{v}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		d, ok := parseBudget(v)
		switch {
		case ok && d == 0:
			if ran || rec.Code != http.StatusGatewayTimeout {
				t.Fatalf("budget %q: ran %v, code %d; want 504 without running", v, ran, rec.Code)
			}
		case !ran || left > time.Second || (ok && left > d):
			t.Fatalf("budget %q: ran %v with %v left", v, ran, left)
		}
	})
}

// TestHandlerRequestContext: the context next runs with, as a context of
// context's own would behave. It ends at the limit (or a propagated
// budget) with DeadlineExceeded and a *TimeoutError of that limit as its
// cause; under a caller whose deadline comes first it has the caller's
// deadline and ends with the caller's cause; its Done channel is closed
// then even if made after the start; and what next derived from it has
// ended by the time Handler returns.
func TestHandlerRequestContext(t *testing.T) {
	type seen struct {
		deadline time.Duration
		err      error
		cause    error
		child    context.Context
	}
	var cancels []context.CancelFunc
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
	})
	serve := func(t *testing.T, cfg Config, parent context.Context, budget string) (seen, int) {
		var s seen
		to := mk(t, cfg)
		h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			dl, _ := ctx.Deadline()
			s.deadline = time.Until(dl)
			var cancelChild context.CancelFunc
			s.child, cancelChild = context.WithCancel(ctx)
			defer func() {
				// Called only after Handler has returned, below: until
				// then the child is the Handler's to end.
				cancels = append(cancels, cancelChild)
			}()
			<-ctx.Done()
			s.err, s.cause = ctx.Err(), context.Cause(ctx)
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(parent)
		if budget != "" {
			req.Header.Set(DefaultHeader, budget)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if s.child.Err() != context.Canceled && s.child.Err() != context.DeadlineExceeded {
			t.Fatalf("a context next derived is still live after Handler returned: %v", s.child.Err())
		}
		return s, rec.Code
	}
	for _, c := range []struct {
		name   string
		budget string
		limit  time.Duration
	}{
		{"own limit", "", time.Second},
		{"propagated budget", "250", 250 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, code := serve(t, Config{Timeout: time.Second}, context.Background(), c.budget)
				var te *TimeoutError
				if s.deadline != c.limit || s.err != context.DeadlineExceeded || !errors.As(s.cause, &te) || te.Limit != c.limit || code != http.StatusGatewayTimeout {
					t.Fatalf("deadline in %v, Err %v, Cause %v, status %d; want %v, DeadlineExceeded, a *TimeoutError of %v, 504",
						s.deadline, s.err, s.cause, code, c.limit, c.limit)
				}
			})
		})
	}
	t.Run("the caller's deadline comes first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			callerCause := errors.New("the caller's budget")
			parent, cancel := context.WithTimeoutCause(context.Background(), 100*time.Millisecond, callerCause)
			defer cancel()
			s, code := serve(t, Config{Timeout: time.Second}, parent, "")
			if s.deadline != 100*time.Millisecond || s.err != context.DeadlineExceeded || s.cause != callerCause || code != http.StatusGatewayTimeout {
				t.Fatalf("deadline in %v, Err %v, Cause %v, status %d; want the caller's: 100ms, DeadlineExceeded, its cause, 504",
					s.deadline, s.err, s.cause, code)
			}
		})
	})
	t.Run("the caller goes away", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			gone := errors.New("client gone")
			parent, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(10*time.Millisecond, func() { cancel(gone) })
			s, _ := serve(t, Config{Timeout: time.Second}, parent, "")
			if s.err != context.Canceled || s.cause != gone {
				t.Fatalf("Err %v, Cause %v; want Canceled and the caller's cause", s.err, s.cause)
			}
		})
	})
}

// TestHandlerContextSeesItsParentAtOnce: a request context whose parent
// was cancelled reads as cancelled at once, as a child of context's own
// does, before the registration that ends it has run.
func TestHandlerContextSeesItsParentAtOnce(t *testing.T) {
	to := mk(t, Config{Timeout: time.Hour})
	var err error
	h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		inner := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cancel()
			err = r.Context().Err()
		}))
		inner.ServeHTTP(w, r.WithContext(ctx))
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if err != context.Canceled {
		t.Fatalf("Err right after the parent's cancel = %v, want Canceled", err)
	}
}
