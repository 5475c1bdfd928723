package grpcx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/retry"
)

// A stream retried over StreamClientBreaker: once the breaker is open, the
// stream ends at once with the rejection (ErrOpen, Unavailable), nothing sent.
func TestRetryStreamOverOpenBreakerFailsFast(t *testing.T) {
	srv := &retryServer{fail: 1 << 30, code: codes.Unavailable}
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 2}})
	defer set.Close()
	p := retry.New(retry.Config{BaseDelay: time.Millisecond, Budget: retry.UnlimitedBudget()})
	c := testpb.NewTestServiceClient(retryConn(t, srv, p, grpc.WithChainStreamInterceptor(StreamClientBreaker(set))))
	recv := func() error {
		st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
		if err != nil {
			return err
		}
		for {
			if _, err := st.Recv(); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
		}
	}
	recv() // trips the breaker
	before, _ := srv.got()
	err := recv()
	after, _ := srv.got()
	if !errors.Is(err, breaker.ErrOpen) || status.Code(err) != codes.Unavailable || after != before {
		t.Fatalf("stream to an open breaker: %v (code %v), %d calls reached the server", err, status.Code(err), after-before)
	}
}

// UnaryServerBreaker's pushback trailer reaches the client's retry, which
// waits it (capped by MaxPushback) rather than giving up as on a local
// rejection: the server's word.
func TestRetryHonoursServerBreakerPushback(t *testing.T) {
	srv := &retryServer{fail: 2, code: codes.Unavailable}
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour, OpenJitter: -1}})
	defer set.Close()
	var evs []retry.Event
	p := retry.New(retry.Config{MaxPushback: 5 * time.Millisecond, MaxAttempts: 3, Budget: retry.UnlimitedBudget(),
		OnRetry: func(_ context.Context, ev retry.Event) { evs = append(evs, ev) }})
	defer p.Close()
	conn := serve(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerBreaker(set))}, grpc.WithUnaryInterceptor(UnaryClientRetry(p)))
	_, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	var ex *retry.ExhaustedError
	if !errors.As(err, &ex) || ex.Reason != retry.ReasonAttempts || ex.Attempts != 3 || len(evs) != 2 || evs[1].Delay != 5*time.Millisecond {
		t.Fatalf("err %v, events %+v", err, evs)
	}
	if errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("a server's rejection reached the client as a local one: %v", err)
	}
}

// A stream retried before it committed: grpc.OnFinish runs once, with the
// end the caller sees, not once per attempt.
func TestRetryStreamRetriedOnFinishOnce(t *testing.T) {
	srv := &retryServer{fail: 2, code: codes.Unavailable}
	p := retryInstant(retry.Config{})
	c := retryDial(t, srv, p)
	var finished []error
	st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{},
		grpc.OnFinish(func(err error) { finished = append(finished, err) }))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if calls, _ := srv.got(); calls != 3 || n != 2 || len(finished) != 1 || finished[0] != nil {
		t.Fatalf("%d calls, %d messages, OnFinish got %v", calls, n, finished)
	}
}

// Unary: OnFinish once after retries, with the caller's error.
func TestRetryUnaryRetriedOnFinishOnce(t *testing.T) {
	srv := &retryServer{fail: 2, code: codes.Unavailable}
	c := retryDial(t, srv, retryInstant(retry.Config{}))
	var finished []error
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.OnFinish(func(err error) { finished = append(finished, err) }))
	if err != nil || len(finished) != 1 || finished[0] != nil {
		t.Fatalf("err %v, OnFinish got %v", err, finished)
	}
}

// Up to 64 sent messages are replayed on a retried stream; past that, the
// stream is no longer retried.
func TestRetryStreamReplayBound(t *testing.T) {
	for _, tc := range []struct{ msgs, calls int }{{64, 2}, {65, 1}} {
		srv := &retryServer{fail: 1, code: codes.Unavailable}
		c := retryDial(t, srv, retryInstant(retry.Config{}))
		st, err := c.StreamingInputCall(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for range tc.msgs {
			if err := st.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := st.CloseAndRecv()
		calls, _ := srv.got()
		if calls != tc.calls {
			t.Fatalf("%d messages: %d calls, want %d (err %v)", tc.msgs, calls, tc.calls, err)
		}
		if tc.calls == 2 && (err != nil || resp.AggregatedPayloadSize != int32(tc.msgs)) {
			t.Fatalf("%d messages: %v %v", tc.msgs, resp, err)
		}
		if tc.calls == 1 && status.Code(err) != codes.Unavailable {
			t.Fatalf("%d messages: %v", tc.msgs, err)
		}
	}
}

func TestBreakerServerRejectionsCarryPushback(t *testing.T) {
	srv := &retryServer{fail: 1, code: codes.Unavailable}
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour, OpenJitter: -1}})
	defer set.Close()
	conn := serve(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerBreaker(set)), grpc.StreamInterceptor(StreamServerBreaker(set))})
	c := testpb.NewTestServiceClient(conn)
	c.UnaryCall(context.Background(), &testpb.SimpleRequest{}) // trips the method's breaker
	var tr metadata.MD
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&tr))
	if status.Code(err) != codes.Unavailable || fmt.Sprint(tr.Get(pushbackKey)) != "[3600000]" {
		t.Fatalf("unary rejection: %v, trailer %v", err, tr)
	}
	srv2 := &retryServer{fail: 1, code: codes.Unavailable}
	conn2 := serve(t, srv2, []grpc.ServerOption{grpc.StreamInterceptor(StreamServerBreaker(set))})
	c2 := testpb.NewTestServiceClient(conn2)
	for i := range 2 {
		st, err := c2.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, err = st.Recv()
		}
		if i == 1 && (status.Code(err) != codes.Unavailable || fmt.Sprint(st.Trailer().Get(pushbackKey)) != "[3600000]") {
			t.Fatalf("stream rejection: %v, trailer %v", err, st.Trailer())
		}
	}
	if calls, _ := srv2.got(); calls != 1 {
		t.Fatalf("%d streams reached the handler", calls)
	}
}

func TestRetryUnaryBudgetExhaustedKeepsCode(t *testing.T) {
	srv := &retryServer{fail: 5, code: codes.ResourceExhausted}
	p := retry.New(retry.Config{Budget: retry.NewBudget(retry.BudgetConfig{MinPerSecond: -1, Ratio: 0.01})})
	c := retryDial(t, srv, p)
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	var ex *retry.ExhaustedError
	if !errors.Is(err, retry.ErrBudgetExhausted) || !errors.As(err, &ex) || ex.Reason != retry.ReasonBudget || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err %v, code %v", err, status.Code(err))
	}
	if calls, _ := srv.got(); calls != 1 {
		t.Fatalf("%d calls", calls)
	}
}

// StreamClientRetry never hedges, even with a hedging policy.
func TestRetryStreamNeverHedged(t *testing.T) {
	srv := &retryServer{}
	p := retry.New(retry.Config{Budget: retry.UnlimitedBudget(), Hedge: retry.HedgeConfig{Delay: time.Nanosecond}})
	c := retryDial(t, srv, p)
	st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = st.Recv()
	}
	if calls, _ := srv.got(); err != io.EOF || calls != 1 {
		t.Fatalf("err %v, %d streams reached the server", err, calls)
	}
}
