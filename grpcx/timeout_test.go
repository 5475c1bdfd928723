package grpcx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/timeout"
)

func TestTimeoutBridgeIsSet(t *testing.T) {
	if bridge.TimeoutDerive == nil || bridge.TimeoutJudge == nil || bridge.TimeoutCall == nil {
		t.Fatal("package timeout did not set its bridge variables")
	}
}

// timeouts returns the bulwark.timeout.timeouts count read by rd.
func timeouts(t *testing.T, rd *sdkmetric.ManualReader) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "bulwark.timeout.timeouts" {
				return sum.DataPoints[0].Value
			}
		}
	}
	t.Fatal("no bulwark.timeout.timeouts")
	return 0
}

// timeoutServer is the interop TestService whose calls last until their
// context ends, or, with ignore set, until release is closed. It reports
// the time each call's context had left when the handler started.
type timeoutServer struct {
	testpb.UnimplementedTestServiceServer
	ignore  bool
	release chan struct{}
	left    chan time.Duration // buffered; -1 when the context had no deadline
	sendErr chan error
}

func newTimeoutServer(ignore bool) *timeoutServer {
	return &timeoutServer{ignore: ignore, release: make(chan struct{}),
		left: make(chan time.Duration, 16), sendErr: make(chan error, 16)}
}

// seen returns the time the next call had left when it reached the
// handler, failing the test if no call arrives within a bound.
func (s *timeoutServer) seen(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-s.left:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the handler")
		return 0
	}
}

func (s *timeoutServer) report(ctx context.Context) {
	if dl, ok := ctx.Deadline(); ok {
		s.left <- time.Until(dl)
	} else {
		s.left <- -1
	}
}

func (s *timeoutServer) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.report(ctx)
	if s.ignore {
		<-s.release
		return &testpb.SimpleResponse{}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *timeoutServer) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	ctx := stream.Context()
	s.report(ctx)
	if s.ignore { // once the time has run out, sends on until a send fails
		<-ctx.Done()
		for {
			if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
				s.sendErr <- err
				return err
			}
		}
	}
	for {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func newT(t *testing.T, cfg timeout.Config) *timeout.Timeout {
	to := timeout.New(cfg)
	t.Cleanup(func() { to.Close() })
	return to
}

func wantGRPCTimeout(t *testing.T, err error, ours bool) {
	t.Helper()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v (code %v), want DeadlineExceeded", err, status.Code(err))
	}
	if errors.Is(err, timeout.ErrTimeout) != ours {
		t.Fatalf("errors.Is(%v, ErrTimeout) = %v, want %v", err, !ours, ours)
	}
}

func TestTimeoutUnaryClientDefaultDeadline(t *testing.T) {
	srv := newTimeoutServer(false)
	to := newT(t, timeout.Config{Timeout: 300 * time.Millisecond})
	c := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientTimeout(to)))

	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	wantGRPCTimeout(t, err, true)

	// A caller's deadline, even a longer one, is kept.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{})
	wantGRPCTimeout(t, err, false)
	// (The deadlines the server sees, with margins no loaded machine can
	// miss: TestTimeoutOutsideClientDefaultOnlyWithoutDeadline.)
}

func TestTimeoutStreamClientDefaultDeadline(t *testing.T) {
	srv := newTimeoutServer(false)
	rd := sdkmetric.NewManualReader()
	to := newT(t, timeout.Config{Timeout: 200 * time.Millisecond, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))})
	c := client(t, srv, nil, grpc.WithStreamInterceptor(StreamClientTimeout(to)))
	// However late a loaded machine gets the stream going, its error is
	// our limit's: from opening it, or from a Recv.
	stream, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	for err == nil {
		_, err = stream.Recv()
	}
	wantGRPCTimeout(t, err, true)
	if stream != nil {
		if _, err := stream.Recv(); !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("a second Recv = %v", err)
		}
	}
	if got := timeouts(t, rd); got != 1 {
		t.Fatalf("bulwark.timeout.timeouts = %d, want 1 for one stream", got)
	}
	// (The deadline the server sees: TestTimeoutOutsideClientDefaultOnlyWithoutDeadline.)
}

func TestTimeoutUnaryServerEnforcesAMaximum(t *testing.T) {
	srv := newTimeoutServer(false)
	to := newT(t, timeout.Config{Timeout: 50 * time.Millisecond})
	c := client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerTimeout(to))})

	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}) // no deadline
	wantGRPCTimeout(t, err, false)                                       // the server's TimeoutError does not cross the wire
	if left := srv.seen(t); left == -1 || left > 50*time.Millisecond {
		t.Fatalf("handler had %v, want at most the 50ms maximum", left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{}) // a longer deadline is cut
	wantGRPCTimeout(t, err, false)
	if left := srv.seen(t); left == -1 || left > 50*time.Millisecond {
		t.Fatalf("handler had %v, want at most the 50ms maximum", left)
	}
	// (A shorter client deadline is kept: TestTimeoutOutsideServerMaximum,
	// with deadlines no loaded machine can miss.)
	if err := to.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTimeoutUnaryServerAbandon: with Config.Abandon the client gets
// DeadlineExceeded at the deadline while the handler, which ignores its
// context, is still running.
func TestTimeoutUnaryServerAbandon(t *testing.T) {
	srv := newTimeoutServer(true)
	to := newT(t, timeout.Config{Timeout: 20 * time.Millisecond, Abandon: true})
	c := client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerTimeout(to))})
	defer close(srv.release) // only after the client has its answer
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	wantGRPCTimeout(t, err, false)
}

func TestTimeoutStreamServerEnforcesAMaximum(t *testing.T) {
	srv := newTimeoutServer(true) // sends on past its deadline
	to := newT(t, timeout.Config{Timeout: 30 * time.Millisecond})
	c := client(t, srv, []grpc.ServerOption{grpc.StreamInterceptor(StreamServerTimeout(to))})
	stream, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if left := srv.seen(t); left == -1 || left > 30*time.Millisecond {
		t.Fatalf("handler had %v, want at most the 30ms maximum", left)
	}
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	if err == io.EOF {
		t.Fatal("stream ended OK, want DeadlineExceeded")
	}
	if e := <-srv.sendErr; !errors.Is(e, timeout.ErrTimeout) {
		t.Fatalf("handler's Send after the deadline = %v, want a TimeoutError", e)
	}
	wantGRPCTimeout(t, err, false)
}

// ExampleUnaryClientTimeout: a client whose calls carry no deadline gets
// one, and a server caps what its handlers may take.
func ExampleUnaryClientTimeout() {
	clientLimit := timeout.New(timeout.Config{Timeout: 5 * time.Second})
	defer clientLimit.Close()
	serverMax := timeout.New(timeout.Config{Timeout: 20 * time.Millisecond})
	defer serverMax.Close()

	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.UnaryInterceptor(UnaryServerTimeout(serverMax)))
	testpb.RegisterTestServiceServer(gs, newTimeoutServer(false)) // answers when its context ends
	go gs.Serve(lis)
	defer gs.Stop()
	conn, _ := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(UnaryClientTimeout(clientLimit)))
	defer conn.Close()

	_, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	fmt.Println(status.Code(err), "client's own limit:", errors.Is(err, timeout.ErrTimeout))
	// Output: DeadlineExceeded client's own limit: false
}

// ctxRecorder is the interop TestService whose EmptyCall records the
// context its handler ran with.
type ctxRecorder struct {
	testpb.UnimplementedTestServiceServer
	ctxs chan context.Context
}

func (s *ctxRecorder) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.ctxs <- ctx
	return &testpb.Empty{}, nil
}

// Config.ReuseContexts does not reach a gRPC handler: a handler's code may
// keep its context (a goroutine, a log), so UnaryServerTimeout gives each
// call a context of its own, which stays cancelled after the call.
func TestUnaryServerTimeoutNeverReusesContexts(t *testing.T) {
	to := timeout.New(timeout.Config{Timeout: time.Hour, ReuseContexts: true})
	defer to.Close()
	srv := &ctxRecorder{ctxs: make(chan context.Context, 1)}
	c := client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerTimeout(to))})
	seen := map[context.Context]bool{}
	var first context.Context
	for i := range 20 {
		if _, err := c.EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
		ctx := <-srv.ctxs
		if seen[ctx] {
			t.Fatalf("call %d: a handler got a context another call had", i)
		}
		seen[ctx] = true
		if first == nil {
			first = ctx
		}
	}
	if first.Err() == nil {
		t.Fatal("the first call's context is live again")
	}
}
