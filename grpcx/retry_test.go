package grpcx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/retry"
)

// retryServer is a TestService that fails its first `fail` calls with
// `code` (and an optional pushback trailer), records the
// grpc-previous-rpc-attempts of every call, and, in slowFirst mode, holds
// the first call until it is cancelled.
type retryServer struct {
	testpb.UnimplementedTestServiceServer
	mu        sync.Mutex
	calls     int
	previous  []string
	fail      int
	code      codes.Code
	pushback  string
	slowFirst bool
	arrived   chan struct{} // closed when the slow first attempt arrives
	cancelled chan struct{} // closed when it has been cancelled
	// midStream, if set, ends StreamingOutputCall with this code right
	// after its first message.
	midStream codes.Code
}

func (s *retryServer) begin(ctx context.Context) (int, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.previous = append(s.previous, fmt.Sprint(md.Get(previousAttemptsKey)))
	s.mu.Unlock()
	if n <= s.fail {
		if s.pushback != "" {
			grpc.SetTrailer(ctx, metadata.Pairs(pushbackKey, s.pushback))
		}
		return n, status.Error(s.code, fmt.Sprintf("call %d failed", n))
	}
	return n, nil
}

func (s *retryServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if md, _ := metadata.FromIncomingContext(ctx); s.slowFirst && len(md.Get(previousAttemptsKey)) == 0 {
		close(s.arrived)
		<-ctx.Done()
		close(s.cancelled)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &testpb.SimpleResponse{Username: fmt.Sprint("call ", n)}, nil
}

func (s *retryServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	n, err := s.begin(stream.Context())
	if err != nil {
		return err
	}
	for i := range 2 {
		body := []byte(fmt.Sprintf("call %d msg %d", n, i))
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
		if s.midStream != codes.OK {
			return status.Errorf(s.midStream, "call %d failed after its first message", n)
		}
	}
	return nil
}

func (s *retryServer) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	total := 0
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		total += len(m.GetPayload().GetBody())
	}
	if _, err := s.begin(stream.Context()); err != nil {
		return err
	}
	return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
}

func (s *retryServer) got() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, append([]string(nil), s.previous...)
}

// retryDial serves srv through the package harness and returns a client
// whose calls go through p.
func retryDial(t *testing.T, srv *retryServer, p *retry.Policy) testpb.TestServiceClient {
	return testpb.NewTestServiceClient(retryConn(t, srv, p))
}

// retryConn is retryDial's connection; opts are added to the client's
// (interceptors chained with grpc.WithChainUnaryInterceptor run inside
// the retry interceptor, once per attempt).
func retryConn(t *testing.T, srv testpb.TestServiceServer, p *retry.Policy, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	t.Cleanup(func() { p.Close() })
	return serve(t, srv, nil, append([]grpc.DialOption{
		grpc.WithUnaryInterceptor(UnaryClientRetry(p)),
		grpc.WithStreamInterceptor(StreamClientRetry(p)),
	}, opts...)...)
}

func retryInstant(cfg retry.Config) *retry.Policy {
	cfg.NewBackOff = func() backoff.BackOff { return &backoff.ZeroBackOff{} }
	cfg.Budget = retry.UnlimitedBudget()
	return retry.New(cfg)
}

func TestRetryUnaryRetriesFailureCodesWithAttemptMetadata(t *testing.T) {
	srv := &retryServer{fail: 2, code: codes.Unavailable}
	c := retryDial(t, srv, retryInstant(retry.Config{}))
	resp, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	if err != nil || resp.GetUsername() != "call 3" {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if n, prev := srv.got(); n != 3 || fmt.Sprint(prev) != "[[] [1] [2]]" {
		t.Fatalf("%d calls, previous attempts %v", n, prev)
	}
}

func TestRetryUnaryExhaustedKeepsCode(t *testing.T) {
	srv := &retryServer{fail: 5, code: codes.Unavailable}
	c := retryDial(t, srv, retryInstant(retry.Config{MaxAttempts: 2}))
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	if !errors.Is(err, retry.ErrExhausted) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v (code %v)", err, status.Code(err))
	}
	if n, _ := srv.got(); n != 2 {
		t.Fatalf("%d calls", n)
	}
}

func TestRetryUnaryNonFailureCodeNotRetried(t *testing.T) {
	srv := &retryServer{fail: 5, code: codes.NotFound}
	c := retryDial(t, srv, retryInstant(retry.Config{}))
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	if s, ok := status.FromError(err); !ok || s.Code() != codes.NotFound || s.Message() != "call 1 failed" {
		t.Fatalf("err %v", err)
	}
	if n, _ := srv.got(); n != 1 {
		t.Fatalf("%d calls", n)
	}
}

func TestRetryUnaryPushback(t *testing.T) {
	for _, tc := range []struct {
		value string
		calls int
	}{{"-1", 1}, {"soon", 1}, {"", 2}} {
		srv := &retryServer{fail: 1, code: codes.Unavailable, pushback: tc.value}
		c := retryDial(t, srv, retryInstant(retry.Config{}))
		_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		if n, _ := srv.got(); n != tc.calls {
			t.Errorf("pushback %q: %d calls, err %v", tc.value, n, err)
		}
		if tc.calls == 1 && status.Code(err) != codes.Unavailable {
			t.Errorf("pushback %q: err %v", tc.value, err)
		}
	}
	// A valid pushback replaces the schedule (a base delay of an hour
	// would never end): the delay slept is the server's.
	delays := make(chan time.Duration, 1)
	srv := &retryServer{fail: 1, code: codes.ResourceExhausted, pushback: "3"}
	c := retryDial(t, srv, retry.New(retry.Config{BaseDelay: time.Hour, MaxDelay: time.Hour, Jitter: retry.NoJitter,
		Budget: retry.UnlimitedBudget(), OnRetry: func(_ context.Context, ev retry.Event) { delays <- ev.Delay }}))
	if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := <-delays; d != 3*time.Millisecond {
		t.Fatalf("delay %v, want the server's 3ms", d)
	}
}

func TestRetryUnaryHedgeFreshReplies(t *testing.T) {
	srv := &retryServer{slowFirst: true, arrived: make(chan struct{}), cancelled: make(chan struct{})}
	// The first attempt never answers until cancelled, so the hedge wins
	// whatever the real time its delay takes; the hedge is sent only once
	// the first attempt has reached the server, so the order is fixed.
	p := retry.New(retry.Config{Budget: retry.UnlimitedBudget(), Hedge: retry.HedgeConfig{Delay: time.Millisecond}})
	afterFirst := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if retry.Attempt(ctx) > 1 {
			<-srv.arrived
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	conn := retryConn(t, srv, p, grpc.WithChainUnaryInterceptor(afterFirst))
	// The caller's reply holds stale fields: the winner's reply must
	// replace it whole, not be merged into it.
	reply := &testpb.SimpleResponse{Username: "stale", OauthScope: "stale"}
	done := make(chan error, 1)
	go func() {
		done <- conn.Invoke(context.Background(), "/grpc.testing.TestService/UnaryCall", &testpb.SimpleRequest{}, reply)
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-srv.cancelled // the slow first attempt was cancelled
	if reply.GetUsername() != "call 2" || reply.GetOauthScope() != "" {
		t.Fatalf("reply %v", reply)
	}
	if n, prev := srv.got(); n != 2 || fmt.Sprint(prev) != "[[] [1]]" { // the first arrived first
		t.Fatalf("%d calls, previous %v", n, prev)
	}
}

func TestRetryStreamRetriesBeforeFirstMessage(t *testing.T) {
	srv := &retryServer{fail: 2, code: codes.Unavailable}
	c := retryDial(t, srv, retryInstant(retry.Config{}))
	stream, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.GetPayload().GetBody()))
	}
	if fmt.Sprint(got) != "[call 3 msg 0 call 3 msg 1]" {
		t.Fatalf("got %q", got)
	}
	if _, prev := srv.got(); fmt.Sprint(prev) != "[[] [1] [2]]" {
		t.Fatalf("previous attempts %v", prev)
	}
}

// Once the client has received a message, the stream is committed: a
// later failure reaches the caller and is never retried, since a new
// stream would replay what the application has already seen.
func TestRetryStreamNotRetriedAfterFirstMessage(t *testing.T) {
	srv := &retryServer{midStream: codes.Unavailable}
	c := retryDial(t, srv, retryInstant(retry.Config{}))
	stream, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || string(m.GetPayload().GetBody()) != "call 1 msg 0" {
		t.Fatalf("first message %v, err %v", m, err)
	}
	m, err = stream.Recv()
	if s, ok := status.FromError(err); !ok || s.Code() != codes.Unavailable || s.Message() != "call 1 failed after its first message" {
		t.Fatalf("second receive: %v, err %v", m, err)
	}
	if n, _ := srv.got(); n != 1 {
		t.Fatalf("server saw %d attempts", n)
	}
}

// meetServer answers UnaryCall with a reply naming its attempt in every
// field; the first attempt is held until the hedge has arrived, so that
// both are served together.
type meetServer struct {
	testpb.UnimplementedTestServiceServer
	first, hedge chan struct{} // closed when each attempt arrives
}

func meetReply(n string) *testpb.SimpleResponse {
	return &testpb.SimpleResponse{
		Username:   "user " + n,
		OauthScope: "scope " + n,
		ServerId:   "server " + n,
		Hostname:   "host " + n,
		Payload:    &testpb.Payload{Body: bytes.Repeat([]byte(n), 4096)},
	}
}

func (s *meetServer) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(previousAttemptsKey)) > 0 {
		close(s.hedge)
		return meetReply("2"), nil
	}
	close(s.first)
	select {
	case <-s.hedge:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return meetReply("1"), nil
}

// Two hedged attempts that both succeed at once each decode into a reply
// of their own; the caller's reply is exactly the winner's (run with
// -race: a shared reply would be written by both).
func TestRetryUnaryHedgeBothSucceed(t *testing.T) {
	srv := &meetServer{first: make(chan struct{}), hedge: make(chan struct{})}
	p := retry.New(retry.Config{MaxAttempts: 2, Budget: retry.UnlimitedBudget(),
		Hedge: retry.HedgeConfig{Delay: time.Millisecond}})
	// Inside the retry interceptor: each attempt, once answered, waits
	// for the other, so both succeed before either is judged.
	var answered sync.WaitGroup
	answered.Add(2)
	meet := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		answered.Done()
		answered.Wait()
		return err
	}
	conn := retryConn(t, srv, p, grpc.WithChainUnaryInterceptor(meet))
	reply := &testpb.SimpleResponse{Username: "stale", GrpclbRouteType: testpb.GrpclbRouteType_GRPCLB_ROUTE_TYPE_BACKEND}
	done := make(chan error, 1)
	go func() {
		done <- conn.Invoke(context.Background(), "/grpc.testing.TestService/UnaryCall", &testpb.SimpleRequest{}, reply)
	}()
	<-srv.first
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(reply, meetReply("1")) && !proto.Equal(reply, meetReply("2")) {
		t.Fatalf("reply is not one attempt's: user %q scope %q server %q host %q route %v",
			reply.GetUsername(), reply.GetOauthScope(), reply.GetServerId(), reply.GetHostname(), reply.GetGrpclbRouteType())
	}
}

func TestRetryStreamReplaysSentMessages(t *testing.T) {
	srv := &retryServer{fail: 1, code: codes.Unavailable}
	c := retryDial(t, srv, retryInstant(retry.Config{}))
	stream, err := c.StreamingInputCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"abc", "defgh"} {
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: []byte(b)}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetAggregatedPayloadSize() != 8 {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if n, _ := srv.got(); n != 2 {
		t.Fatalf("%d calls", n)
	}
}

// hedgeMDServer answers UnaryCall with its attempt number in the header,
// the trailer and the reply. The first attempt of a call waits for the
// hedge to arrive, then both answer at once, so either may win.
type hedgeMDServer struct {
	testpb.UnimplementedTestServiceServer
	mu    sync.Mutex
	hedge chan struct{}
}

func (s *hedgeMDServer) reset() {
	s.mu.Lock()
	s.hedge = make(chan struct{})
	s.mu.Unlock()
}

func (s *hedgeMDServer) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	n := "1"
	s.mu.Lock()
	hedge := s.hedge
	s.mu.Unlock()
	if prev := md.Get(previousAttemptsKey); len(prev) > 0 {
		n = "2"
		close(hedge)
	} else {
		select {
		case <-hedge:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	grpc.SendHeader(ctx, metadata.Pairs("attempt", n))
	grpc.SetTrailer(ctx, metadata.Pairs("attempt", n))
	return &testpb.SimpleResponse{Username: n}, nil
}

// Issue 7 item 2: call options that write back (Header, Trailer, Peer,
// OnFinish) see only the winning attempt's values, once. Before the fix
// every hedged attempt wrote the caller's metadata (a data race under
// -race, and the loser's header in most calls) and OnFinish ran once per
// attempt.
func TestRetryUnaryHedgeWriteBackOptionsSeeOnlyWinner(t *testing.T) {
	srv := &hedgeMDServer{}
	p := retry.New(retry.Config{MaxAttempts: 2, Budget: retry.UnlimitedBudget(), Hedge: retry.HedgeConfig{Delay: time.Millisecond}})
	c := testpb.NewTestServiceClient(retryConn(t, srv, p))
	for i := range 50 {
		srv.reset()
		var header, trailer metadata.MD
		var pr peer.Peer
		var finishes atomic.Int32
		resp, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{},
			grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&pr),
			grpc.OnFinish(func(error) { finishes.Add(1) }))
		if err != nil {
			t.Fatal(err)
		}
		won := resp.GetUsername()
		if fmt.Sprint(header.Get("attempt")) != "["+won+"]" || fmt.Sprint(trailer.Get("attempt")) != "["+won+"]" {
			t.Fatalf("call %d: attempt %s won, but the caller got header %v and trailer %v", i, won, header, trailer)
		}
		if pr.Addr == nil || finishes.Load() != 1 {
			t.Fatalf("call %d: peer %v, OnFinish ran %d times, want once", i, pr.Addr, finishes.Load())
		}
	}
	// Retried (not hedged) calls too: the values are the last attempt's,
	// and OnFinish runs once, with the caller's error.
	rs := &retryServer{fail: 5, code: codes.Unavailable, pushback: "1"}
	rc := retryDial(t, rs, retryInstant(retry.Config{MaxAttempts: 2}))
	var trailer metadata.MD
	var finished []error
	_, err := rc.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&trailer),
		grpc.OnFinish(func(err error) { finished = append(finished, err) }))
	if !errors.Is(err, retry.ErrExhausted) || len(finished) != 1 || finished[0] != err ||
		fmt.Sprint(trailer.Get(pushbackKey)) != "[1]" {
		t.Fatalf("err %v, OnFinish got %v, trailer %v", err, finished, trailer)
	}
}

// headersThenFail sends response headers on StreamingOutputCall, then
// fails before any message.
type headersThenFail struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int32
}

func (s *headersThenFail) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	n := s.calls.Add(1)
	if err := stream.SendHeader(metadata.Pairs("attempt", fmt.Sprint(n))); err != nil {
		return err
	}
	return status.Error(codes.Unavailable, "failed after the headers")
}

// Issue 7 item 5: gRPC commits a stream once response headers arrive; a
// failure after them is the caller's, never retried (the application may
// have read attempt 1's headers). OnFinish runs once.
func TestRetryStreamNotRetriedAfterHeaders(t *testing.T) {
	srv := &headersThenFail{}
	c := testpb.NewTestServiceClient(retryConn(t, srv, retryInstant(retry.Config{})))
	var finished []error
	stream, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{},
		grpc.OnFinish(func(err error) { finished = append(finished, err) }))
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || srv.calls.Load() != 1 {
		t.Fatalf("err %v after %d attempts, want Unavailable after 1", err, srv.calls.Load())
	}
	if md, _ := stream.Header(); fmt.Sprint(md.Get("attempt")) != "[1]" {
		t.Fatalf("header %v", md)
	}
	if len(finished) != 1 || status.Code(finished[0]) != codes.Unavailable {
		t.Fatalf("OnFinish got %v, want one Unavailable", finished)
	}
	// A stream that fails before headers is still retried; OnFinish runs
	// once, at its clean end.
	rs := &retryServer{fail: 1, code: codes.Unavailable}
	rc := retryDial(t, rs, retryInstant(retry.Config{}))
	finished = nil
	stream, err = rc.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{},
		grpc.OnFinish(func(err error) { finished = append(finished, err) }))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = stream.Recv()
	}
	if n, _ := rs.got(); err != io.EOF || n != 2 || len(finished) != 1 || finished[0] != nil {
		t.Fatalf("end %v after %d attempts, OnFinish got %v", err, n, finished)
	}
}

// gRPC retries add the same span events as HTTP ones.
func TestRetryUnarySpanEvents(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	srv := &retryServer{fail: 1, code: codes.Unavailable}
	c := retryDial(t, srv, retryInstant(retry.Config{}))
	ctx, span := tp.Tracer("test").Start(context.Background(), "call")
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	span.End()
	var events []string
	for _, s := range sr.Ended() {
		for _, e := range s.Events() {
			events = append(events, e.Name)
		}
	}
	if fmt.Sprint(events) != "[bulwark.retry.attempt]" {
		t.Fatalf("span events %v, want one bulwark.retry.attempt", events)
	}
}

// grpcx reaches retry's internals through internal/bridge: every
// variable it uses must be set by retry's init.
func TestRetryBridgeSet(t *testing.T) {
	if bridge.RetryClassifier == nil || bridge.RetryHedging == nil {
		t.Fatal("internal/bridge retry variables not set")
	}
	p := retry.New(retry.Config{Hedge: retry.HedgeConfig{Delay: time.Second}})
	defer p.Close()
	if bridge.RetryClassifier(p) != nil || !bridge.RetryHedging(p) {
		t.Fatal("bridge reports a classifier or no hedging for a hedging policy with none")
	}
}

// Issue 7 item 11 over gRPC: retry over a breaker per method; once the
// breaker is open, a call returns at once (no attempt, no retry) with an
// error matching breaker.ErrOpen whose code is still Unavailable.
func TestRetryOverOpenBreakerFailsFast(t *testing.T) {
	srv := &retryServer{fail: 1 << 30, code: codes.Unavailable}
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 3}})
	defer set.Close()
	var retries atomic.Int32
	p := retry.New(retry.Config{BaseDelay: time.Millisecond, Budget: retry.UnlimitedBudget(),
		OnRetry: func(context.Context, retry.Event) { retries.Add(1) }})
	c := testpb.NewTestServiceClient(retryConn(t, srv, p, grpc.WithChainUnaryInterceptor(UnaryClientBreaker(set))))
	if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("first call: %v, want the server's Unavailable", err)
	}
	retries.Store(0)
	before, _ := srv.got()
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	after, _ := srv.got()
	var ex *retry.ExhaustedError
	if !errors.Is(err, breaker.ErrOpen) || status.Code(err) != codes.Unavailable || !errors.As(err, &ex) ||
		ex.Reason != retry.ReasonRejected || retries.Load() != 0 || after != before {
		t.Fatalf("call to an open breaker: %v (code %v), %d retries, %d calls reached the server", err, status.Code(err), retries.Load(), after-before)
	}
}
