package degrade_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/degrade"
)

// With no fallback to serve, Handler let only the first 64 KiB of a failed
// response's body through: the client got a silently truncated body (or,
// with a Content-Length, a broken connection).
func TestHandlerWithoutFallbackKeepsWholeFailureBody(t *testing.T) {
	f := degrade.New(degrade.Config{})
	big := strings.Repeat("e", 200<<10)
	srv := httptest.NewServer(f.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Why", "db")
		if r.URL.Query().Has("cl") {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		}
		w.WriteHeader(500)
		io.WriteString(w, big)
	})))
	defer srv.Close()
	for _, q := range []string{"", "?cl"} {
		resp, err := srv.Client().Get(srv.URL + q)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 500 || resp.Header.Get("X-Why") != "db" || string(b) != big || resp.Header.Get(degrade.FallbackHeader) != "" {
			t.Fatalf("%q: %d %v len %d err %v", q, resp.StatusCode, resp.Header, len(b), err)
		}
	}
}

func TestOutsideHandlerSwitchOff(t *testing.T) {
	sw := degrade.NewSwitches(degrade.SwitchesConfig{Defaults: map[string]bool{"f": false}})
	f := degrade.New(degrade.Config{Switch: sw.Switch("f")})
	called := false
	srv := httptest.NewServer(f.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if called || resp.StatusCode != 503 || !strings.Contains(string(b), degrade.ErrSwitchedOff.Error()) {
		t.Fatalf("%v %d %q", called, resp.StatusCode, b)
	}
}

func TestOutsideHandlerSynthesised(t *testing.T) {
	f := degrade.New(degrade.Config{HTTP: func(req *http.Request, reason degrade.Reason, err error) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("cached page"))}
	}})
	srv := httptest.NewServer(f.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) })))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "cached page" || resp.Header.Get(degrade.FallbackHeader) != "status" {
		t.Fatalf("%d %q %v", resp.StatusCode, b, resp.Header)
	}
}

func TestOutsideCallSwitchOff(t *testing.T) {
	sw := degrade.NewSwitches(degrade.SwitchesConfig{})
	sw.Set(context.Background(), "f", false)
	var evs []degrade.Event
	f := degrade.New(degrade.Config{Switch: sw.Switch("f"), OnFallback: func(_ context.Context, ev degrade.Event) { evs = append(evs, ev) }})
	called := false
	v, err := degrade.Call(context.Background(), f, "k", func(context.Context) (int, error) { called = true; return 1, nil }, degrade.Value(2))
	if called || v != 2 || err != nil || len(evs) != 1 || evs[0].Reason != degrade.ReasonSwitch {
		t.Fatalf("%v %v %v %+v", called, v, err, evs)
	}
	_, err = degrade.Call(context.Background(), f, "k", func(context.Context) (int, error) { return 1, nil }, nil)
	if !errors.Is(err, degrade.ErrSwitchedOff) {
		t.Fatalf("no fallback: %v", err)
	}
	err = f.Do(context.Background(), func(context.Context) error { return nil }, nil)
	if !errors.Is(err, degrade.ErrSwitchedOff) {
		t.Fatalf("Do no fallback: %v", err)
	}
}

func TestOutsideReasonOf(t *testing.T) {
	for err, want := range map[error]degrade.Reason{
		nil:                      degrade.ReasonStatus,
		errors.New("x"):          degrade.ReasonError,
		context.DeadlineExceeded: degrade.ReasonTimeout,
		degrade.ErrShed:          degrade.ReasonRejected,
		degrade.ErrThrottled:     degrade.ReasonRejected,
		degrade.ErrSwitchedOff:   degrade.ReasonSwitch,
	} {
		if got := degrade.ReasonOf(err); got != want {
			t.Errorf("ReasonOf(%v) = %s, want %s", err, got, want)
		}
	}
}

func TestOutsideWriteRejection(t *testing.T) {
	rec := httptest.NewRecorder()
	if !degrade.WriteRejection(rec, &degrade.ShedError{Criticality: degrade.Sheddable, Wait: 1500 * time.Millisecond}) {
		t.Fatal("false")
	}
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" || !strings.Contains(rec.Body.String(), degrade.ErrShed.Error()) {
		t.Fatalf("%d %v %q", rec.Code, rec.Header(), rec.Body)
	}
	rec = httptest.NewRecorder()
	if degrade.WriteRejection(rec, errors.New("other")) || rec.Body.Len() != 0 {
		t.Fatal("wrote for another error")
	}
	rec = httptest.NewRecorder()
	if !degrade.WriteRejection(rec, degrade.ErrSwitchedOff) || rec.Code != 503 {
		t.Fatal("switched off")
	}
}

func TestOutsideMinInFlightNeverShed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(degrade.ShedderConfig{MinInFlight: 3})
		defer s.Close()
		// Build history then overload.
		for range 20 {
			tk, _ := s.Allow(degrade.Default)
			time.Sleep(time.Millisecond)
			s.Done(tk)
		}
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Do(context.Background(), degrade.Critical, func(context.Context) error { time.Sleep(200 * time.Millisecond); return nil })
			}()
		}
		wg.Wait()
		if !s.Stats().Overloaded {
			t.Skip("not overloaded")
		}
		// 2 in flight < MinInFlight 3: admitted whatever the criticality.
		t1, err1 := s.Allow(degrade.Sheddable)
		t2, err2 := s.Allow(degrade.Sheddable)
		if err1 != nil || err2 != nil {
			t.Fatalf("shed below MinInFlight: %v %v %+v", err1, err2, s.Stats())
		}
		s.Done(t1)
		s.Done(t2)
	})
}

func TestOutsideThrottleWait(t *testing.T) {
	th := degrade.NewThrottler(degrade.ThrottlerConfig{})
	defer th.Close()
	for range 1000 {
		if err := th.Allow(); err != nil {
			var te *degrade.ThrottleError
			if !errors.As(err, &te) || te.Wait != 250*time.Millisecond || te.RetryAfter() != te.Wait || te.Probability <= 0 {
				t.Fatalf("%+v", err)
			}
			return
		}
		th.Done(bulwark.Failure)
	}
	t.Fatal("never throttled")
}
