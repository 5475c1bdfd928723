package grpcx

// Black-box tests of the timeout interceptors: only the public API of
// grpcx and timeout, over the package's gRPC harness.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/timeout"
)

// deadlineService answers with the time its context had left (in the
// response's username, "none" without a deadline); with hold set, it
// waits for its context to end first and returns ret (the context's
// error if nil); with ignore set it waits for release instead.
type deadlineService struct {
	testpb.UnimplementedTestServiceServer
	hold, ignore bool
	ret          error
	release      chan struct{}
	entered      chan struct{}
}

func left(ctx context.Context) string {
	dl, ok := ctx.Deadline()
	if !ok {
		return "none"
	}
	return time.Until(dl).String()
}

func (s *deadlineService) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	l := left(ctx)
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	switch {
	case s.ignore:
		<-s.release
	case s.hold:
		<-ctx.Done()
		if s.ret != nil {
			return nil, s.ret
		}
		return nil, ctx.Err()
	}
	return &testpb.SimpleResponse{Username: l}, nil
}

func (s *deadlineService) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	ctx := stream.Context()
	if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(left(ctx))}}); err != nil {
		return err
	}
	if s.hold {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// leftOf parses the time left a deadlineService reported.
func leftOf(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "none" {
		return -1
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// deadlineCalls returns c's unary and streaming calls to a
// deadlineService, each returning the time the handler's context had left
// (-1 for none).
func deadlineCalls(t *testing.T, c testpb.TestServiceClient) map[string]func(context.Context) time.Duration {
	unary := func(ctx context.Context) time.Duration {
		t.Helper()
		r, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return leftOf(t, r.GetUsername())
	}
	stream := func(ctx context.Context) time.Duration {
		t.Helper()
		st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("stream end: %v", err)
		}
		return leftOf(t, string(r.GetPayload().GetBody()))
	}
	return map[string]func(context.Context) time.Duration{"unary": unary, "stream": stream}
}

func TestTimeoutOutsideClientDefaultOnlyWithoutDeadline(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: time.Hour})
	c := client(t, &deadlineService{}, nil,
		grpc.WithUnaryInterceptor(UnaryClientTimeout(to)), grpc.WithStreamInterceptor(StreamClientTimeout(to)))
	for name, call := range deadlineCalls(t, c) {
		if d := call(context.Background()); d <= 59*time.Minute || d > time.Hour {
			t.Errorf("%s without a deadline: the server saw %v, want the 1h default", name, d)
		}
		long, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
		if d := call(long); d <= 2*time.Hour {
			t.Errorf("%s with a 3h deadline: the server saw %v, want it kept (not cut to 1h)", name, d)
		}
		cancel()
		short, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if d := call(short); d <= 9*time.Minute || d > 10*time.Minute {
			t.Errorf("%s with a 10m deadline: the server saw %v", name, d)
		}
		cancel()
	}
}

func TestTimeoutOutsideClientErrors(t *testing.T) {
	short := newT(t, timeout.Config{Timeout: 20 * time.Millisecond})
	long := newT(t, timeout.Config{Timeout: time.Hour})
	srv := &deadlineService{hold: true, entered: make(chan struct{}, 8)}
	cs := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientTimeout(short)), grpc.WithStreamInterceptor(StreamClientTimeout(short)))
	cl := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientTimeout(long)), grpc.WithStreamInterceptor(StreamClientTimeout(long)))

	// Ours: DeadlineExceeded and ErrTimeout.
	_, err := cs.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	var te *timeout.TimeoutError
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, timeout.ErrTimeout) || !errors.As(err, &te) || te.Limit != 20*time.Millisecond {
		t.Fatalf("unary, our limit: %v (code %v)", err, status.Code(err))
	}
	st, err := cs.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	for err == nil { // (opening the stream may already fail on a loaded machine)
		_, err = st.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, timeout.ErrTimeout) {
		t.Fatalf("stream, our limit: %v (code %v)", err, status.Code(err))
	}

	// The caller's own deadline: DeadlineExceeded, not ErrTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = cl.UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded || errors.Is(err, timeout.ErrTimeout) {
		t.Fatalf("unary, the caller's deadline: %v (code %v)", err, status.Code(err))
	}

	// The caller's cancellation (with a cause): Canceled, not ErrTimeout.
	for range len(srv.entered) {
		<-srv.entered
	}
	cctx, ccancel := context.WithCancelCause(context.Background())
	go func() { <-srv.entered; ccancel(errors.New("user left")) }()
	_, err = cl.UnaryCall(cctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.Canceled || errors.Is(err, timeout.ErrTimeout) {
		t.Fatalf("unary, the caller's cancellation: %v (code %v)", err, status.Code(err))
	}
}

func TestTimeoutOutsideServerMaximum(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: time.Hour})
	c := client(t, &deadlineService{}, []grpc.ServerOption{
		grpc.UnaryInterceptor(UnaryServerTimeout(to)), grpc.StreamInterceptor(StreamServerTimeout(to))})
	for name, call := range deadlineCalls(t, c) {
		if d := call(context.Background()); d <= 59*time.Minute || d > time.Hour {
			t.Errorf("%s without a deadline: the handler had %v, want the 1h maximum", name, d)
		}
		long, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
		if d := call(long); d <= 59*time.Minute || d > time.Hour {
			t.Errorf("%s with a 3h deadline: the handler had %v, want the 1h maximum", name, d)
		}
		cancel()
		short, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if d := call(short); d <= 9*time.Minute || d > 10*time.Minute {
			t.Errorf("%s with a 10m deadline: the handler had %v, want the client's", name, d)
		}
		cancel()
	}
}

// When the server's limit runs out, the client gets DeadlineExceeded, or
// the status the handler's error carries; with Abandon, while a handler
// that ignores its context still runs.
func TestTimeoutOutsideServerExpiry(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(fmt.Sprint("abandon=", abandon), func(t *testing.T) {
			to := newT(t, timeout.Config{Timeout: 20 * time.Millisecond, Abandon: abandon})
			opts := []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerTimeout(to)), grpc.StreamInterceptor(StreamServerTimeout(to))}
			_, err := client(t, &deadlineService{hold: true}, opts).UnaryCall(context.Background(), &testpb.SimpleRequest{})
			if status.Code(err) != codes.DeadlineExceeded || errors.Is(err, timeout.ErrTimeout) {
				t.Fatalf("unary: %v (code %v), want DeadlineExceeded (the server's TimeoutError stays on the server)", err, status.Code(err))
			}
			// The handler's own status, returned at the deadline (with
			// Abandon it races the deadline: either is allowed).
			_, err = client(t, &deadlineService{hold: true, ret: status.Error(codes.Unavailable, "gave up")}, opts).UnaryCall(context.Background(), &testpb.SimpleRequest{})
			if (status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "gave up")) && (!abandon || status.Code(err) != codes.DeadlineExceeded) {
				t.Fatalf("unary, handler's status: %v, want Unavailable", err)
			}
			st, err := client(t, &deadlineService{hold: true}, opts).StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for err == nil {
				_, err = st.Recv()
			}
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("stream: %v (code %v)", err, status.Code(err))
			}
			if !abandon {
				return
			}
			srv := &deadlineService{ignore: true, release: make(chan struct{})}
			_, err = client(t, srv, opts).UnaryCall(context.Background(), &testpb.SimpleRequest{})
			close(srv.release) // only after the client has its answer
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("abandoned handler: %v (code %v)", err, status.Code(err))
			}
		})
	}
}

// A nil *timeout.Timeout panics when the interceptor is built, as the
// other grpcx interceptors do with a nil primitive, not with a nil
// dereference inside a call (which, on a server, grpc-go does not recover).
func TestTimeoutInterceptorsRejectANilTimeout(t *testing.T) {
	for name, build := range map[string]func(){
		"UnaryClientTimeout":  func() { UnaryClientTimeout(nil) },
		"StreamClientTimeout": func() { StreamClientTimeout(nil) },
		"UnaryServerTimeout":  func() { UnaryServerTimeout(nil) },
		"StreamServerTimeout": func() { StreamServerTimeout(nil) },
	} {
		got := func() (v any) {
			defer func() { v = recover() }()
			build()
			return nil
		}()
		if s, _ := got.(string); !strings.Contains(s, name) || !strings.Contains(s, "nil") {
			t.Errorf("%s(nil): recovered %v, want a panic naming it and the nil Timeout", name, got)
		}
	}
}

// quietStream is a server-streaming handler that stops at its context's
// end by returning nil, as a handler that sees ctx.Done may.
type quietStream struct {
	testpb.UnimplementedTestServiceServer
}

func (quietStream) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// A stream that the server's maximum cut short ends DeadlineExceeded for
// the client even when the handler stops quietly (returns nil): before,
// the client saw a clean end (io.EOF) of a stream the deadline had cut.
func TestStreamServerTimeoutCutStreamIsNotOK(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: 20 * time.Millisecond})
	c := client(t, quietStream{}, []grpc.ServerOption{grpc.StreamInterceptor(StreamServerTimeout(to))})
	st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	for err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream end: %v (code %v), want DeadlineExceeded", err, status.Code(err))
	}
}
