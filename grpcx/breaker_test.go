package grpcx

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

// breakerTestServer is grpc-go's interop TestService: UnaryCall and
// StreamingOutputCall answer with the status the request asks for;
// EmptyCall waits until its caller goes away (after signalling arrived).
type breakerTestServer struct {
	testpb.UnimplementedTestServiceServer
	hits    atomic.Int64
	arrived chan struct{}
}

func newBreakerServer() *breakerTestServer {
	return &breakerTestServer{arrived: make(chan struct{}, 16)}
}

func (s *breakerTestServer) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.hits.Add(1)
	s.arrived <- struct{}{}
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

func breakerEcho(st *testpb.EchoStatus) error {
	if st == nil || st.Code == 0 {
		return nil
	}
	return status.Error(codes.Code(st.Code), st.Message)
}

func (s *breakerTestServer) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.hits.Add(1)
	if err := breakerEcho(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{}, nil
}

func (s *breakerTestServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	s.hits.Add(1)
	for range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return breakerEcho(req.GetResponseStatus())
}

func (s *breakerTestServer) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	s.hits.Add(1)
	n := 0
	for {
		_, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(n)})
		}
		if err != nil {
			return err
		}
		n++
	}
}

// breakerClient starts the server through the shared harness, with
// client interceptors using set (closed when the test ends).
func breakerClient(t *testing.T, set *breaker.Set) (testpb.TestServiceClient, *breakerTestServer) {
	t.Helper()
	impl := newBreakerServer()
	t.Cleanup(func() { set.Close() })
	return client(t, impl, nil,
		grpc.WithChainUnaryInterceptor(UnaryClientBreaker(set)),
		grpc.WithChainStreamInterceptor(StreamClientBreaker(set))), impl
}

// breakerServer starts the server with server interceptors using set.
func breakerServer(t *testing.T, set *breaker.Set) (testpb.TestServiceClient, *breakerTestServer) {
	t.Helper()
	impl := newBreakerServer()
	t.Cleanup(func() { set.Close() })
	return client(t, impl, []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(UnaryServerBreaker(set)),
		grpc.ChainStreamInterceptor(StreamServerBreaker(set))}), impl
}

func breakerSet(cfg breaker.Config) *breaker.Set {
	cfg.OpenJitter = -1
	return breaker.NewSet(breaker.SetConfig{Config: cfg})
}

const (
	breakerEmptyMethod  = "/grpc.testing.TestService/EmptyCall"
	breakerUnaryMethod  = "/grpc.testing.TestService/UnaryCall"
	breakerStreamMethod = "/grpc.testing.TestService/StreamingOutputCall"
	breakerInputMethod  = "/grpc.testing.TestService/StreamingInputCall"
)

func breakerUnaryReq(c codes.Code) *testpb.SimpleRequest {
	return &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(c), Message: "echo"}}
}

func TestBreakerBridgeIsSet(t *testing.T) {
	if bridge.BreakerAllow == nil || bridge.BreakerRecord == nil || bridge.BreakerClassifier == nil {
		t.Fatal("package breaker did not set its bridge variables")
	}
}

func TestUnaryClientBreakerOverRealConnection(t *testing.T) {
	set := breakerSet(breaker.Config{ConsecutiveFailures: 2})
	client, srv := breakerClient(t, set)
	ctx := context.Background()

	for range 5 { // codes that are not failures keep it closed
		if _, err := client.UnaryCall(ctx, breakerUnaryReq(codes.NotFound)); status.Code(err) != codes.NotFound {
			t.Fatalf("NotFound call: %v", err)
		}
	}
	for range 2 {
		if _, err := client.UnaryCall(ctx, breakerUnaryReq(codes.Unavailable)); status.Code(err) != codes.Unavailable {
			t.Fatalf("failing call: %v", err)
		}
	}
	if got := set.Get(breakerUnaryMethod).State(); got != breaker.Open {
		t.Fatalf("UnaryCall breaker %v, want open", got)
	}
	_, err := client.UnaryCall(ctx, breakerUnaryReq(codes.OK))
	if status.Code(err) != codes.Unavailable || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("rejection = %v (code %v), want Unavailable matching ErrOpen", err, status.Code(err))
	}
	var be *BreakerError
	var oe *breaker.OpenError
	if !errors.As(err, &be) || !errors.As(err, &oe) || oe.Name != breakerUnaryMethod {
		t.Fatalf("rejection %T does not carry the breaker error", err)
	}
	if srv.hits.Load() != 7 {
		t.Fatalf("server hits %d, want 7: the open breaker reached the server", srv.hits.Load())
	}
	if _, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{}); err != nil { // another method, another breaker
		t.Fatalf("StreamingOutputCall: %v", err)
	}
}

func TestStreamClientBreakerOverRealConnection(t *testing.T) {
	set := breakerSet(breaker.Config{ConsecutiveFailures: 2})
	client, srv := breakerClient(t, set)
	ctx := context.Background()
	drain := func(c codes.Code) error {
		st, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: make([]*testpb.ResponseParameters, 3), ResponseStatus: &testpb.EchoStatus{Code: int32(c)}})
		if err != nil {
			return err
		}
		for {
			if _, err := st.Recv(); err != nil {
				if err == io.EOF {
					_, again := st.Recv() // after the end: must not record twice
					if again != io.EOF {
						t.Fatalf("second Recv: %v", again)
					}
					return nil
				}
				return err
			}
		}
	}
	if err := drain(codes.OK); err != nil {
		t.Fatal(err)
	}
	if c := set.Get(breakerStreamMethod).Counts(); c.Successes != 1 || c.Failures != 0 {
		t.Fatalf("after a clean stream: %+v", c)
	}
	for range 2 {
		if err := drain(codes.Internal); status.Code(err) != codes.Internal {
			t.Fatalf("failing stream: %v", err)
		}
	}
	err := drain(codes.OK)
	if status.Code(err) != codes.Unavailable || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("rejected stream: %v", err)
	}
	if srv.hits.Load() != 3 {
		t.Fatalf("server hits %d, want 3", srv.hits.Load())
	}

	// Client streaming: the single response ends the stream, a success.
	in, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := in.Send(&testpb.StreamingInputCallRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := in.CloseAndRecv(); err != nil || resp.AggregatedPayloadSize != 3 {
		t.Fatalf("CloseAndRecv = %v, %v", resp, err)
	}
	if c := set.Get(breakerInputMethod).Counts(); c.Successes != 1 {
		t.Fatalf("client stream counts %+v", c)
	}
}

// TestStreamAbandonedInHalfOpenDoesNotWedge runs in a synctest bubble:
// the open period and HalfOpenMaxWait pass in fake time, through the
// public API only.
func TestStreamAbandonedInHalfOpenDoesNotWedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := breakerSet(breaker.Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenDuration: time.Second,
			OpenDurationGrowth: 1, HalfOpenMaxWait: 10 * time.Second})
		client, _ := breakerClient(t, set)
		b := set.Get(breakerStreamMethod)
		tk, _ := b.Allow()
		b.Done(tk, errors.New("trip")) // open for 1s
		time.Sleep(time.Second)

		ctx, cancel := context.WithCancel(context.Background())
		if _, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{}); err != nil {
			t.Fatal(err) // the probe: abandoned without reading
		}
		cancel()
		_, err := client.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
		if !errors.Is(err, breaker.ErrHalfOpenFull) || status.Code(err) != codes.Unavailable {
			t.Fatalf("second stream while the probe is out: %v", err)
		}
		time.Sleep(10 * time.Second) // HalfOpenMaxWait: the lost probe's slot is reclaimed
		if _, err := client.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{}); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("after max wait: %v, want a reopen", err)
		}
		time.Sleep(time.Second)
		st, err := client.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatalf("new probe: %v", err)
		}
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("Recv = %v", err)
		}
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("state %v, want closed after a good probe", got)
		}
	})
}

func TestBreakerErrorStatus(t *testing.T) {
	e := &BreakerError{Err: breaker.ErrOpen}
	if status.Code(e) != codes.Unavailable || e.Error() != "breaker: circuit open" || !errors.Is(e, breaker.ErrOpen) {
		t.Fatalf("BreakerError: %v %v", status.Code(e), e)
	}
}

// TestUnaryServerBreakerRejectsWithPushback: once the server's breaker
// for a method opens, calls are answered Unavailable without running the
// handler, with a grpc-retry-pushback-ms trailer holding the open period
// (fake time: nothing elapses between the trip and the rejection).
func TestUnaryServerBreakerRejectsWithPushback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := breakerSet(breaker.Config{ConsecutiveFailures: 2, OpenDuration: 3 * time.Second})
		client, srv := breakerServer(t, set)
		ctx := context.Background()
		for range 2 {
			if _, err := client.UnaryCall(ctx, breakerUnaryReq(codes.Internal)); status.Code(err) != codes.Internal {
				t.Fatalf("failing call: %v", err)
			}
		}
		var trailer metadata.MD
		_, err := client.UnaryCall(ctx, breakerUnaryReq(codes.OK), grpc.Trailer(&trailer))
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != breaker.ErrOpen.Error() {
			t.Fatalf("rejection = %v, want Unavailable %q", err, breaker.ErrOpen)
		}
		if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "3000" {
			t.Fatalf("pushback trailer %v, want [3000]", got)
		}
		if srv.hits.Load() != 2 {
			t.Fatalf("handler ran %d times, want 2: a rejected call reached it", srv.hits.Load())
		}
		time.Sleep(time.Second) // 2 s left, rounded up
		trailer = nil
		_, _ = client.UnaryCall(ctx, breakerUnaryReq(codes.OK), grpc.Trailer(&trailer))
		if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "2000" {
			t.Fatalf("pushback trailer a second later %v, want [2000]", got)
		}
		set.Get(breakerUnaryMethod).ForceOpen() // no known wait: no trailer
		trailer = nil
		if _, err := client.UnaryCall(ctx, breakerUnaryReq(codes.OK), grpc.Trailer(&trailer)); status.Code(err) != codes.Unavailable {
			t.Fatalf("forced open: %v", err)
		}
		if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 0 {
			t.Fatalf("forced open sent pushback %v", got)
		}
		time.Sleep(2 * time.Second)
		set.Get(breakerUnaryMethod).Reset()
		if _, err := client.UnaryCall(ctx, breakerUnaryReq(codes.OK)); err != nil {
			t.Fatalf("after Reset: %v", err)
		}
	})
}

func TestStreamServerBreakerRejectsWithPushback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := breakerSet(breaker.Config{ConsecutiveFailures: 1, OpenDuration: 1500 * time.Millisecond})
		client, srv := breakerServer(t, set)
		ctx := context.Background()
		recv := func(c codes.Code, opts ...grpc.CallOption) error {
			st, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
				ResponseParameters: make([]*testpb.ResponseParameters, 2), ResponseStatus: &testpb.EchoStatus{Code: int32(c)}}, opts...)
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
		if err := recv(codes.OK); err != nil {
			t.Fatal(err)
		}
		if err := recv(codes.Unavailable); status.Code(err) != codes.Unavailable {
			t.Fatalf("failing stream: %v", err)
		}
		if got := set.Get(breakerStreamMethod).State(); got != breaker.Open {
			t.Fatalf("server breaker %v after a failed stream, want open", got)
		}
		var trailer metadata.MD
		if err := recv(codes.OK, grpc.Trailer(&trailer)); status.Code(err) != codes.Unavailable {
			t.Fatalf("rejected stream: %v", err)
		}
		if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "1500" {
			t.Fatalf("pushback trailer %v, want [1500]", got)
		}
		if srv.hits.Load() != 2 {
			t.Fatalf("handler ran %d times, want 2", srv.hits.Load())
		}
	})
}

// TestServerBreakerPanicIsAFailure calls the interceptors directly: a
// panic in a real gRPC handler would crash the test's server.
func TestServerBreakerPanicIsAFailure(t *testing.T) {
	set := breakerSet(breaker.Config{ConsecutiveFailures: 1})
	defer set.Close()
	info := &grpc.UnaryServerInfo{FullMethod: "/svc/Panics"}
	func() {
		defer func() {
			if r := recover(); r != "handler bug" {
				t.Fatalf("recovered %v, want the handler's panic", r)
			}
		}()
		_, _ = UnaryServerBreaker(set)(context.Background(), nil, info, func(context.Context, any) (any, error) { panic("handler bug") })
	}()
	if got := set.Get("/svc/Panics").State(); got != breaker.Open {
		t.Fatalf("state %v after a panicking handler, want open", got)
	}
	func() {
		defer func() { _ = recover() }()
		_ = StreamServerBreaker(set)(nil, &fakeServerStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/svc/PanicStream"},
			func(any, grpc.ServerStream) error { panic("handler bug") })
	}()
	if got := set.Get("/svc/PanicStream").State(); got != breaker.Open {
		t.Fatalf("stream state %v after a panicking handler, want open", got)
	}
}

// fakeServerStream is only a context holder for the direct call above; it
// stands in for no behaviour under test.
type fakeServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeServerStream) Context() context.Context { return s.ctx }

// TestClientBreakerCallerCancelWithCauseIsNeutral: a caller that cancels
// its call, with or without a cause, says nothing about the server.
func TestClientBreakerCallerCancelWithCauseIsNeutral(t *testing.T) {
	set := breakerSet(breaker.Config{ConsecutiveFailures: 1})
	client, srv := breakerClient(t, set)
	for _, cause := range []error{nil, errors.New("user went away")} {
		ctx, cancel := context.WithCancelCause(context.Background())
		go func() { <-srv.arrived; cancel(cause) }()
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}); err == nil {
			t.Fatal("cancelled call succeeded")
		}
	}
	if c := set.Get(breakerEmptyMethod).Counts(); c.Failures != 0 || c.Neutral != 2 || c.State != breaker.Closed {
		t.Fatalf("counts %+v, want 2 neutral calls, no failure", c)
	}
}

// TestClientBreakerSupersededIsAFailure: an attempt cancelled with the
// cause bulwark.ErrSuperseded (a hedge won) is evidence against its
// server, and trips the breaker; a plain cancellation beside it does not.
func TestClientBreakerSupersededIsAFailure(t *testing.T) {
	set := breakerSet(breaker.Config{ConsecutiveFailures: 1})
	client, srv := breakerClient(t, set)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { <-srv.arrived; cancel(bulwark.ErrSuperseded) }()
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}); err == nil {
		t.Fatal("superseded call succeeded")
	}
	if c := set.Get(breakerEmptyMethod).Counts(); c.State != breaker.Open || c.Failures != 0 {
		t.Fatalf("after a superseded attempt: counts %+v, want open", c)
	}

	// The same through a stream.
	set2 := breakerSet(breaker.Config{ConsecutiveFailures: 1})
	client2, _ := breakerClient(t, set2)
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	st, err := client2.StreamingOutputCall(ctx2, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cancel2(bulwark.ErrSuperseded)
	if _, err := st.Recv(); err == nil {
		t.Fatal("Recv on a superseded stream succeeded")
	}
	if got := set2.Get(breakerStreamMethod).State(); got != breaker.Open {
		t.Fatalf("stream breaker %v after a superseded stream, want open", got)
	}
}

// TestClientBreakerSpanEventsAndHookContext: gRPC calls get the span
// events HTTP calls get, and OnStateChange receives the call's ctx.
func TestClientBreakerSpanEventsAndHookContext(t *testing.T) {
	type ctxKey struct{}
	var hookSaw []any
	set := breakerSet(breaker.Config{ConsecutiveFailures: 1,
		OnStateChange: func(ctx context.Context, ev breaker.StateChangeEvent) {
			hookSaw = append(hookSaw, ctx.Value(ctxKey{}), ev.Key, ev.To)
		}})
	client, _ := breakerClient(t, set)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(context.WithValue(context.Background(), ctxKey{}, "call-1"), "rpc")
	_, _ = client.UnaryCall(ctx, breakerUnaryReq(codes.Unavailable))
	_, _ = client.UnaryCall(ctx, breakerUnaryReq(codes.OK))
	span.End()
	evs := sr.Ended()[0].Events()
	if len(evs) != 2 || evs[0].Name != "bulwark.breaker.state_change" || evs[1].Name != "bulwark.breaker.rejected" {
		t.Fatalf("span events %+v, want state_change then rejected", evs)
	}
	if len(hookSaw) != 3 || hookSaw[0] != "call-1" || hookSaw[1] != breakerUnaryMethod || hookSaw[2] != breaker.Open {
		t.Fatalf("OnStateChange saw %v, want the call's ctx, the method and open", hookSaw)
	}
}

// TestClientBreakerHonoursClassify: the Set's Config.Classify, reached
// through the bridge, overrides the gRPC rules.
func TestClientBreakerHonoursClassify(t *testing.T) {
	set := breakerSet(breaker.Config{ConsecutiveFailures: 1,
		Classify: func(_ context.Context, err error) bulwark.Outcome {
			if status.Code(err) == codes.Unavailable {
				return bulwark.Neutral
			}
			return bulwark.Success
		}})
	client, _ := breakerClient(t, set)
	for range 3 {
		_, _ = client.UnaryCall(context.Background(), breakerUnaryReq(codes.Unavailable))
	}
	if c := set.Get(breakerUnaryMethod).Counts(); c.Neutral != 3 || c.State != breaker.Closed {
		t.Fatalf("counts %+v, want 3 neutral calls", c)
	}
}
