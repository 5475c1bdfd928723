package retry

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// Regression tests for issue 7 (retry items); each failed before its fix.

// bodyCounter counts the response bodies a transport opened and how many
// of them were closed.
type bodyCounter struct {
	next           http.RoundTripper
	opened, closed atomic.Int64
}

func (c *bodyCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.Body != nil {
		c.opened.Add(1)
		resp.Body = &countedBody{ReadCloser: resp.Body, closed: &c.closed}
	}
	return resp, err
}

type countedBody struct {
	io.ReadCloser
	closed *atomic.Int64
	once   sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.closed.Add(1) })
	return b.ReadCloser.Close()
}

// attemptHeader tells the server which attempt a request is.
type attemptHeader struct{ next http.RoundTripper }

func (a attemptHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Attempt", strconv.Itoa(Attempt(r.Context())))
	return a.next.RoundTrip(r)
}

// Item 1: with any Hedge set (even one that never fires), a call answered
// 500 then 200 closed the 500's body never.
func TestHedgedFailedResponseBodyClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Attempt") == "1" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, "body")
	}))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	for _, hedge := range []HedgeConfig{{Delay: time.Second}, {Delay: time.Nanosecond, MaxInFlight: 3}, {}} {
		bc := &bodyCounter{next: tr}
		p := New(Config{NewBackOff: zeroBackOff, Budget: UnlimitedBudget(), Hedge: hedge})
		client := &http.Client{Transport: p.RoundTripper(attemptHeader{bc})}
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 20 {
					resp, err := client.Get(srv.URL)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("status %d", resp.StatusCode)
					}
				}
			})
		}
		wg.Wait()
		p.Close()
		if o, c := bc.opened.Load(), bc.closed.Load(); o != c || o < 320 {
			t.Fatalf("hedge %+v: %d bodies opened, %d closed", hedge, o, c)
		}
	}
}

// Item 3: MaxAttempts math.MaxInt with hedging means "until MaxDuration";
// it panicked in makeslice.
func TestHedgedMaxAttemptsMaxInt(t *testing.T) {
	p := New(Config{MaxAttempts: math.MaxInt, NewBackOff: zeroBackOff, Budget: UnlimitedBudget(),
		Hedge: HedgeConfig{Delay: time.Hour}})
	defer p.Close()
	n := 0
	err := p.Do(context.Background(), func(context.Context) error {
		if n++; n < 50 {
			return errBoom
		}
		return nil
	})
	if err != nil || n != 50 {
		t.Fatalf("err %v after %d attempts", err, n)
	}
}

// Item 3: per-call memory must not grow with MaxAttempts (1<<16 cost about
// 2.6 MB per call, even for a call that succeeded at once).
func TestHedgedMemoryIndependentOfMaxAttempts(t *testing.T) {
	perCall := func(maxAttempts int) uint64 {
		p := New(Config{MaxAttempts: maxAttempts, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Hour}})
		defer p.Close()
		ok := func(context.Context) error { return nil }
		p.Do(context.Background(), ok) // warm up
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const calls = 50
		for range calls {
			p.Do(context.Background(), ok)
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / calls
	}
	small, huge := perCall(3), perCall(1<<16)
	if huge > small+1024 {
		t.Fatalf("a hedged call allocates %d B with MaxAttempts 1<<16, %d B with 3", huge, small)
	}
}

// Item 6: a BackOff built as a literal has no start time until Reset;
// backoff.Retry resets it first, and so must the policy.
func TestNewBackOffLiteralIsReset(t *testing.T) {
	p := New(Config{MaxAttempts: 4, Budget: UnlimitedBudget(), NewBackOff: func() backoff.BackOff {
		return &backoff.ExponentialBackOff{
			InitialInterval: time.Microsecond, RandomizationFactor: 0, Multiplier: 2,
			MaxInterval: time.Millisecond, MaxElapsedTime: time.Minute, Stop: backoff.Stop,
			Clock: backoff.SystemClock,
		}
	}})
	defer p.Close()
	n := 0
	err := p.Do(context.Background(), func(context.Context) error { n++; return errBoom })
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 4 || n != 4 {
		t.Fatalf("err %v after %d attempts, want 4 (the literal stopped at once before the fix)", err, n)
	}
}

// Item 12: a hedge's losers are cancelled with the cause
// bulwark.ErrSuperseded, which internal/outcome (and so a breaker below)
// judges a failure; a caller's own cancellation stays neutral, whatever
// its cause.
func TestHedgeLosersSupersededCallerCancelNeutral(t *testing.T) {
	p := New(Config{Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Millisecond}})
	defer p.Close()
	var loser atomic.Value
	err := p.Do(context.Background(), func(ctx context.Context) error {
		if Attempt(ctx) == 1 {
			<-ctx.Done() // the slow first attempt, until the hedge wins
			loser.Store(outcome.Error(ctx, ctx.Err()))
			if !errors.Is(context.Cause(ctx), bulwark.ErrSuperseded) {
				t.Errorf("loser's cause %v, want ErrSuperseded", context.Cause(ctx))
			}
			return ctx.Err()
		}
		return nil
	})
	if err != nil || loser.Load() != bulwark.Failure {
		t.Fatalf("err %v; the loser was judged %v, want failure", err, loser.Load())
	}

	userGone := errors.New("user went away")
	ctx, cancel := context.WithCancelCause(context.Background())
	started := make(chan struct{}, 2)
	var judged []bulwark.Outcome
	var mu sync.Mutex
	go func() {
		<-started
		<-started // both attempts in flight
		cancel(userGone)
	}()
	err = p.Do(ctx, func(actx context.Context) error {
		started <- struct{}{}
		<-actx.Done()
		mu.Lock()
		judged = append(judged, outcome.Error(actx, context.Cause(actx)))
		mu.Unlock()
		if !errors.Is(context.Cause(actx), userGone) {
			t.Errorf("attempt %d's cause %v, want the caller's", Attempt(actx), context.Cause(actx))
		}
		return context.Cause(actx)
	})
	if !errors.Is(err, userGone) || len(judged) != 2 || judged[0] != bulwark.Neutral || judged[1] != bulwark.Neutral {
		t.Fatalf("err %v, attempts judged %v, want two neutral", err, judged)
	}
}

// A panic in a hedged attempt (run in a goroutine of its own) reaches the
// caller, once every other attempt has returned.
func TestHedgedPanicReachesCaller(t *testing.T) {
	p := New(Config{Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Millisecond}})
	defer p.Close()
	sentinel := errors.New("attempt panicked")
	var other atomic.Bool
	got := func() (v any) {
		defer func() { v = recover() }()
		p.Do(context.Background(), func(ctx context.Context) error {
			if Attempt(ctx) == 1 {
				<-ctx.Done() // until the hedge panics and the call settles
				other.Store(true)
				return ctx.Err()
			}
			panic(sentinel)
		})
		return nil
	}()
	if got != sentinel || !other.Load() {
		t.Fatalf("recovered %v (other attempt returned: %v), want the attempt's panic after both returned", got, other.Load())
	}
}
