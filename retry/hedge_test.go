package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowThenFast: attempt 1 blocks until cancelled; later attempts return
// at once with their attempt number.
func TestHedgeWinnerReturnedLosersCancelled(t *testing.T) {
	c := newFake()
	var events []Event
	p := New(Config{clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Second},
		OnRetry: func(_ context.Context, ev Event) { events = append(events, ev) }})
	defer p.Close()
	loserCancelled := make(chan error, 1)
	done := make(chan string, 1)
	go func() {
		v, err := Call(context.Background(), p, func(ctx context.Context) (string, error) {
			if Attempt(ctx) == 1 {
				<-ctx.Done()
				loserCancelled <- ctx.Err()
				return "", ctx.Err()
			}
			return fmt.Sprint("attempt ", Attempt(ctx)), nil
		})
		if err != nil {
			v = err.Error()
		}
		done <- v
	}()
	c.BlockUntil(1) // the hedge timer
	c.Advance(time.Second)
	if v := <-done; v != "attempt 2" {
		t.Fatalf("Call = %q", v)
	}
	// Call returned only after the loser did.
	select {
	case err := <-loserCancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("loser saw %v", err)
		}
	default:
		t.Fatal("Call returned before the losing attempt")
	}
	if len(events) != 1 || !events[0].Hedge || events[0].Attempt != 2 || events[0].Delay != time.Second || events[0].Err != nil {
		t.Fatalf("events %+v", events)
	}
	if p.hedges.Load() != 1 || c.Timers() != 0 {
		t.Fatalf("hedges %d, timers left %d", p.hedges.Load(), c.Timers())
	}
}

func TestHedgeMaxInFlightAndAttempts(t *testing.T) {
	c := newFake()
	p := New(Config{clock: c, MaxAttempts: 4, Budget: UnlimitedBudget(), NewBackOff: zeroBackOff,
		Hedge: HedgeConfig{Delay: time.Second, MaxInFlight: 2}})
	defer p.Close()
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	started := make(chan int, 4)
	done := make(chan error, 1)
	go func() {
		done <- p.Do(context.Background(), func(ctx context.Context) error {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			started <- Attempt(ctx)
			select {
			case <-release:
				return errBoom
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	<-started
	c.BlockUntil(1)
	c.Advance(time.Second)
	<-started // the hedge
	c.BlockUntil(1)
	c.Advance(10 * time.Second) // no third attempt while two are in flight
	select {
	case n := <-started:
		t.Fatalf("attempt %d started beyond MaxInFlight", n)
	default:
	}
	close(release) // both fail; the remaining attempts run, then give up
	err := <-done
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 4 || !errors.Is(err, errBoom) {
		t.Fatalf("err = %v", err)
	}
	if peak.Load() != 2 {
		t.Fatalf("peak in flight %d", peak.Load())
	}
}

func TestHedgesDrawOnBudget(t *testing.T) {
	c := newFake()
	b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: -1, clock: c})
	p := New(Config{clock: c, Budget: b, Hedge: HedgeConfig{Delay: time.Second}})
	defer p.Close()
	// No deposits beyond this call's own: 0.1 tokens, so no hedge.
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Do(context.Background(), func(ctx context.Context) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	c.BlockUntil(1)
	c.Advance(time.Second)
	close(release)
	if err := <-done; err != nil || p.hedges.Load() != 0 {
		t.Fatalf("err %v, hedges %d", err, p.hedges.Load())
	}
}

func TestHedgeCancelledByCaller(t *testing.T) {
	c := newFake()
	p := New(Config{clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Second}})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var returned atomic.Int32
	started := make(chan struct{}, 2)
	done := make(chan error, 1)
	go func() {
		done <- p.Do(ctx, func(ctx context.Context) error {
			defer returned.Add(1)
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-started
	c.BlockUntil(1)
	c.Advance(time.Second)
	// Cancel only once the hedge has really started: cancelling while the
	// hedge timer's tick is still unread is valid too, but then there is
	// only one attempt to wait for (a test that assumed two once hung).
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if n := returned.Load(); n != 2 {
		t.Fatalf("Do returned while %d of 2 attempts were still running", 2-n)
	}
}

func TestHedgePercentileDelay(t *testing.T) {
	c := newFake()
	var hedgeDelays []time.Duration
	p := New(Config{clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Percentile: 0.9},
		OnRetry: func(_ context.Context, ev Event) { hedgeDelays = append(hedgeDelays, ev.Delay) }})
	defer p.Close()
	// 20 calls taking 10ms, 20ms, ... 200ms: p90 is 190ms.
	for i := 1; i <= 20; i++ {
		err := p.Do(context.Background(), func(ctx context.Context) error {
			c.Advance(time.Duration(i) * 10 * time.Millisecond)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(hedgeDelays) != 0 {
		t.Fatalf("hedged before 20 samples: %v", hedgeDelays)
	}
	if d, ok := p.hedge.next(); !ok || d != 190*time.Millisecond {
		t.Fatalf("hedge delay %v %v", d, ok)
	}
	done := make(chan error, 1)
	go func() {
		done <- p.Do(context.Background(), func(ctx context.Context) error {
			if Attempt(ctx) == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
	}()
	c.BlockUntil(1)
	c.Advance(190 * time.Millisecond)
	if err := <-done; err != nil || fmt.Sprint(hedgeDelays) != "[190ms]" {
		t.Fatalf("err %v, hedge delays %v", err, hedgeDelays)
	}
}

// trackedBody records how much of a response body was read and whether it
// was closed.
type trackedBody struct {
	io.ReadCloser
	mu     sync.Mutex
	read   int
	closed bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	b.read += n
	b.mu.Unlock()
	return n, err
}

func (b *trackedBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.ReadCloser.Close()
}

func (b *trackedBody) state() (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read, b.closed
}

// hedgeAttempt is one round trip seen by a recordingTransport.
type hedgeAttempt struct {
	ctx  context.Context
	body *trackedBody
}

// recordingTransport sends through next and records each attempt's
// context and response body. With meet > 0, the first meet round trips
// wait, once their responses have arrived, until all of them have one, so
// that hedged attempts finish together.
type recordingTransport struct {
	next     http.RoundTripper
	meet     int
	met      chan struct{}
	mu       sync.Mutex
	attempts []hedgeAttempt
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(r)
	a := hedgeAttempt{ctx: r.Context()}
	if err == nil {
		a.body = &trackedBody{ReadCloser: resp.Body}
		resp.Body = a.body
	}
	rt.mu.Lock()
	rt.attempts = append(rt.attempts, a)
	n := len(rt.attempts)
	if n == rt.meet {
		close(rt.met)
	}
	rt.mu.Unlock()
	if n <= rt.meet {
		<-rt.met
	}
	return resp, err
}

func (rt *recordingTransport) got() []hedgeAttempt {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]hedgeAttempt(nil), rt.attempts...)
}

// hedgeClient returns a client whose requests go through p over rt,
// which sends to s.
func hedgeClient(p *Policy, s *httptest.Server, rt *recordingTransport) *http.Client {
	rt.next = s.Client().Transport
	rt.met = make(chan struct{})
	return &http.Client{Transport: p.RoundTripper(rt)}
}

func TestHedgedHTTPWinnerBodyOutlivesCallUntilClosed(t *testing.T) {
	c := newFake()
	var n atomic.Int32
	firstArrived, stop := make(chan struct{}), make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			close(firstArrived)
			select { // the slow first attempt; the hedge wins
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		io.WriteString(w, "hedge")
	}))
	defer s.Close()
	defer close(stop)
	p := New(Config{clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Second}})
	defer p.Close()
	rt := &recordingTransport{}
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := hedgeClient(p, s, rt).Get(s.URL)
		done <- result{resp, err}
	}()
	<-firstArrived
	c.BlockUntil(1) // the hedge timer
	c.Advance(time.Second)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	var winner context.Context
	for _, a := range rt.got() {
		if a.body != nil { // the first attempt ends with its context's error
			winner = a.ctx
		}
	}
	if winner == nil {
		t.Fatal("no attempt answered")
	}
	b, err := io.ReadAll(res.resp.Body)
	if err != nil || string(b) != "hedge" {
		t.Fatalf("winner's body %q, err %v", b, err)
	}
	if winner.Err() != nil {
		t.Fatalf("winner's context ended before its body was closed: %v", winner.Err())
	}
	res.resp.Body.Close()
	if winner.Err() == nil {
		t.Fatal("winner's context still live after Body.Close")
	}
}

func TestHedgedHTTPLoserResponseDrainedAndClosed(t *testing.T) {
	c := newFake()
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "attempt %d", n.Add(1))
	}))
	defer s.Close()
	p := New(Config{clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Second}})
	defer p.Close()
	rt := &recordingTransport{meet: 2} // both attempts answer before either is judged
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := hedgeClient(p, s, rt).Get(s.URL)
		done <- result{resp, err}
	}()
	c.BlockUntil(1)
	c.Advance(time.Second)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	got := rt.got()
	if len(got) != 2 {
		t.Fatalf("%d attempts answered", len(got))
	}
	// The call returned only after the loser had been released.
	var winner, loser *trackedBody
	for _, a := range got {
		if _, closed := a.body.state(); closed {
			loser = a.body
		} else {
			winner = a.body
		}
	}
	if winner == nil || loser == nil {
		t.Fatal("want exactly one response closed (the loser's) when the call returns")
	}
	if read, _ := loser.state(); read != len("attempt 1") {
		t.Fatalf("loser's body drained %d bytes", read)
	}
	body := readAll(t, res.resp)
	if body != "attempt 1" && body != "attempt 2" {
		t.Fatalf("winner's body %q", body)
	}
	if _, closed := winner.state(); !closed {
		t.Fatal("winner's body not closed through the returned response")
	}
}

func TestHedgedHTTPExhaustedReturnsReadableLastResponse(t *testing.T) {
	for _, delay := range []time.Duration{time.Hour, time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			c := newFake()
			// A body larger than the transport's read buffer, so that reading
			// it needs the connection.
			r := &recorder{script: []int{503, 503, 503}, payload: 256 << 10}
			s := serve(t, r)
			// Retries after a failure go at once (zero backoff); the hedge
			// timer never fires on the fake clock.
			p := New(Config{clock: c, NewBackOff: zeroBackOff, Budget: UnlimitedBudget(),
				Hedge: HedgeConfig{Delay: delay}})
			defer p.Close()
			rt := &recordingTransport{}
			resp, err := hedgeClient(p, s, rt).Get(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			got := rt.got()
			last := got[len(got)-1].ctx
			if last.Err() != nil {
				t.Fatalf("returned response's context already ended: %v", last.Err())
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 503 || len(b) != r.payload {
				t.Fatalf("status %d, read %d bytes, err %v", resp.StatusCode, len(b), err)
			}
			if bodies, _ := r.got(); len(bodies) != 3 || len(got) != 3 {
				t.Fatalf("%d requests", len(bodies))
			}
			if last.Err() == nil {
				t.Fatal("returned response's context still live after Body.Close")
			}
		})
	}
}
