package grpcx

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/clock"
)

// breakerTestServer is grpc-go's interop TestService: UnaryCall and
// StreamingOutputCall answer with the status the request asks for.
type breakerTestServer struct {
	testpb.UnimplementedTestServiceServer
	hits atomic.Int64
}

func (s *breakerTestServer) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	s.hits.Add(1)
	return &testpb.Empty{}, nil
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

// breakerDial starts the server on an in-memory listener and returns a
// client whose interceptors use set.
func breakerDial(t *testing.T, set *breaker.Set) (testpb.TestServiceClient, *breakerTestServer) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	impl := &breakerTestServer{}
	testpb.RegisterTestServiceServer(srv, impl)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(UnaryClientBreaker(set)),
		grpc.WithChainStreamInterceptor(StreamClientBreaker(set)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		lis.Close()
		set.Close()
	})
	return testpb.NewTestServiceClient(conn), impl
}

func breakerSet(cfg breaker.Config) (*breaker.Set, *clock.Fake) {
	clk := clock.NewFake(time.Time{})
	cfg.Clock = clk
	cfg.OpenJitter = -1
	return breaker.NewSet(breaker.SetConfig{Config: cfg}), clk
}

const (
	breakerUnaryMethod  = "/grpc.testing.TestService/UnaryCall"
	breakerStreamMethod = "/grpc.testing.TestService/StreamingOutputCall"
	breakerInputMethod  = "/grpc.testing.TestService/StreamingInputCall"
)

func breakerUnaryReq(c codes.Code) *testpb.SimpleRequest {
	return &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(c), Message: "echo"}}
}

func TestUnaryClientBreakerOverRealConnection(t *testing.T) {
	set, _ := breakerSet(breaker.Config{ConsecutiveFailures: 2})
	client, srv := breakerDial(t, set)
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
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}); err != nil { // another method, another breaker
		t.Fatalf("EmptyCall: %v", err)
	}
}

func TestStreamClientBreakerOverRealConnection(t *testing.T) {
	set, _ := breakerSet(breaker.Config{ConsecutiveFailures: 2})
	client, srv := breakerDial(t, set)
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

func TestStreamAbandonedInHalfOpenDoesNotWedge(t *testing.T) {
	set, clk := breakerSet(breaker.Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenDuration: time.Second,
		OpenDurationGrowth: 1, HalfOpenMaxWait: 10 * time.Second})
	client, _ := breakerDial(t, set)
	b := set.Get(breakerStreamMethod)
	tk, _ := b.Allow()
	b.Done(tk, errors.New("trip")) // open for 1s
	clk.Advance(time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	if _, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err) // the probe: abandoned without reading
	}
	cancel()
	_, err := client.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if !errors.Is(err, breaker.ErrHalfOpenFull) || status.Code(err) != codes.Unavailable {
		t.Fatalf("second stream while the probe is out: %v", err)
	}
	clk.Advance(10 * time.Second) // HalfOpenMaxWait: the lost probe's slot is reclaimed
	if _, err := client.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{}); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("after max wait: %v, want a reopen", err)
	}
	clk.Advance(time.Second)
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
}

func TestBreakerErrorStatus(t *testing.T) {
	e := &BreakerError{Err: breaker.ErrOpen}
	if status.Code(e) != codes.Unavailable || e.Error() != "breaker: circuit open" || !errors.Is(e, breaker.ErrOpen) {
		t.Fatalf("BreakerError: %v %v", status.Code(e), e)
	}
}
