package grpcx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/bulwark-go/bulwark/limit"
)

// limitServer is the interop TestService, counting the calls that reach
// it; with gate set, calls wait for it to close (or their context).
type limitServer struct {
	testpb.UnimplementedTestServiceServer
	hits    atomic.Int64
	gate    chan struct{}
	entered chan struct{}
}

func (s *limitServer) wait(ctx context.Context) {
	s.hits.Add(1)
	if s.gate == nil {
		return
	}
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	select {
	case <-s.gate:
	case <-ctx.Done():
	}
}

func (s *limitServer) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.wait(ctx)
	return &testpb.SimpleResponse{}, nil
}

func (s *limitServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	s.wait(stream.Context())
	for range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return nil
}

func pushbackMs(t *testing.T, tr metadata.MD) int {
	t.Helper()
	v := tr.Get(pushbackKey)
	if len(v) == 0 {
		return -1
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		t.Fatalf("pushback %q", v[0])
	}
	return n
}

func TestUnaryServerLimitAnswersResourceExhaustedWithPushback(t *testing.T) {
	for name, l := range map[string]limit.Limiter{
		"bulwark":     limit.NewRate(limit.RateConfig{Every: time.Minute, Burst: 1}),
		"x-time-rate": rate.NewLimiter(rate.Every(time.Minute), 1),
	} {
		t.Run(name, func(t *testing.T) {
			srv := &limitServer{}
			c := client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerLimit(l))})
			ctx := context.Background()
			if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			var tr metadata.MD
			_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Trailer(&tr))
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("second call = %v, want ResourceExhausted", err)
			}
			if ms := pushbackMs(t, tr); ms < 59000 || ms > 60000 {
				t.Fatalf("grpc-retry-pushback-ms = %d, want about 60000", ms)
			}
			if srv.hits.Load() != 1 {
				t.Fatalf("the handler ran %d times, want 1", srv.hits.Load())
			}
		})
	}
}

func TestStreamServerLimit(t *testing.T) {
	l := limit.NewRate(limit.RateConfig{Every: time.Minute, Burst: 1})
	defer l.Close()
	srv := &limitServer{}
	c := client(t, srv, []grpc.ServerOption{grpc.StreamInterceptor(StreamServerLimit(l))})
	for i, want := range []codes.Code{codes.OK, codes.ResourceExhausted} {
		st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Recv()
		if err == io.EOF {
			err = nil
		}
		if status.Code(err) != want {
			t.Fatalf("stream %d: %v, want %v", i, err, want)
		}
	}
}

func TestKeyedServerLimitByMetadata(t *testing.T) {
	k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Minute, Burst: 1}})
	defer k.Close()
	key := func(ctx context.Context, _ string) string {
		md, _ := metadata.FromIncomingContext(ctx)
		return md.Get("tenant")[0]
	}
	srv := &limitServer{}
	c := client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerKeyedLimit(k, key))})
	call := func(tenant string) codes.Code {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "tenant", tenant)
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		return status.Code(err)
	}
	if call("a") != codes.OK || call("b") != codes.OK || call("a") != codes.ResourceExhausted {
		t.Fatal("tenants were not limited independently")
	}
}

func TestUnaryClientLimitRejectedCallsNeverReachTheNetwork(t *testing.T) {
	l := limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1})
	defer l.Close()
	srv := &limitServer{}
	c := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientLimit(l, limit.NoWait())))
	ctx := context.Background()
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	var le *LimitError
	if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, limit.ErrRateLimited) || !errors.As(err, &le) ||
		le.RetryAfter() < 59*time.Minute {
		t.Fatalf("second call = %v, want a ResourceExhausted *LimitError with about an hour to wait", err)
	}
	// Waiting (the default): a deadline before the turn fails at once.
	cw := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientLimit(l)))
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := cw.UnaryCall(dctx, &testpb.SimpleRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("waiting call with a near deadline = %v, want ResourceExhausted", err)
	}
	if time.Since(start) > 10*time.Second || srv.hits.Load() != 1 {
		t.Fatalf("the call waited or reached the server (hits %d)", srv.hits.Load())
	}
}

func TestStreamClientLimit(t *testing.T) {
	l := limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1})
	defer l.Close()
	srv := &limitServer{}
	c := client(t, srv, nil, grpc.WithStreamInterceptor(StreamClientLimit(l, limit.NoWait())))
	st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatal(err)
	}
	if _, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{}); !errors.Is(err, limit.ErrRateLimited) {
		t.Fatalf("second stream = %v, want ErrRateLimited", err)
	}
}

func TestServerConcurrencyAnswersUnavailable(t *testing.T) {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	srv := &limitServer{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	c := client(t, srv, []grpc.ServerOption{
		grpc.UnaryInterceptor(UnaryServerConcurrency(b)),
		grpc.StreamInterceptor(StreamServerConcurrency(b)),
	})
	done := make(chan error)
	go func() {
		_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		done <- err
	}()
	<-srv.entered
	var tr metadata.MD
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&tr))
	if status.Code(err) != codes.Unavailable || pushbackMs(t, tr) != -1 {
		t.Fatalf("call over the cap = %v (pushback %v), want Unavailable without pushback", err, tr)
	}
	st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream over the cap = %v, want Unavailable", err)
	}
	close(srv.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b.InFlight() != 0 {
		t.Fatalf("InFlight = %d after the calls ended", b.InFlight())
	}
}

func TestClientConcurrency(t *testing.T) {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	srv := &limitServer{}
	c := client(t, srv, nil,
		grpc.WithUnaryInterceptor(UnaryClientConcurrency(b)),
		grpc.WithStreamInterceptor(StreamClientConcurrency(b)))
	ctx := context.Background()

	// An open stream holds the slot: a unary call is rejected locally.
	st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{}, {}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable ||
		!errors.Is(err, limit.ErrConcurrencyLimited) {
		t.Fatalf("call while a stream holds the slot = %v, want Unavailable", err)
	}
	for {
		if _, err := st.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if b.InFlight() != 0 {
		t.Fatal("the stream kept its slot after EOF")
	}
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if srv.hits.Load() != 2 {
		t.Fatalf("server hits %d, want 2 (the rejected call must not reach it)", srv.hits.Load())
	}

	// An abandoned stream frees its slot when its context is cancelled:
	// a queued Acquire gets it (the bulkhead wakes it; nothing polls).
	bq := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, QueueTimeout: 10 * time.Second})
	defer bq.Close()
	cq := client(t, srv, nil, grpc.WithStreamInterceptor(StreamClientConcurrency(bq)))
	sctx, cancel := context.WithCancel(ctx)
	if _, err := cq.StreamingOutputCall(sctx, &testpb.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	p, err := bq.Acquire(ctx)
	if err != nil {
		t.Fatalf("the cancelled stream kept its slot: %v", err)
	}
	p.Release(0)
}

func TestLimitErrorStatus(t *testing.T) {
	custom := &LimitError{Err: &limit.RejectedError{Wait: time.Second}}
	if status.Code(custom) != codes.ResourceExhausted || custom.RetryAfter() != time.Second {
		t.Fatalf("a custom RejectedError: code %v, RetryAfter %v; want a rate limit of 1s", status.Code(custom), custom.RetryAfter())
	}
	l := limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1})
	defer l.Close()
	l.Allow()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := &LimitError{Err: l.Wait(ctx)}
	if status.Code(err) != codes.ResourceExhausted || err.RetryAfter() < 59*time.Minute || !errors.Is(err, limit.ErrRateLimited) {
		t.Fatalf("rate rejection: code %v, RetryAfter %v", status.Code(err), err.RetryAfter())
	}
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	b.TryAcquire()
	_, berr := b.Acquire(context.Background())
	err = &LimitError{Err: berr}
	if status.Code(err) != codes.Unavailable || err.RetryAfter() != 0 || !errors.Is(err, limit.ErrConcurrencyLimited) {
		t.Fatalf("concurrency rejection: code %v, RetryAfter %v", status.Code(err), err.RetryAfter())
	}
}

// A server that admits one call a minute answers the next with
// ResourceExhausted and tells the client when to come back.
func ExampleUnaryServerLimit() {
	l := limit.NewRate(limit.RateConfig{Every: time.Minute, Burst: 1})
	defer l.Close()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.UnaryInterceptor(UnaryServerLimit(l)))
	testpb.RegisterTestServiceServer(gs, &limitServer{})
	go gs.Serve(lis)
	defer gs.Stop()
	conn, _ := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	c := testpb.NewTestServiceClient(conn)
	for range 2 {
		var tr metadata.MD
		_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&tr))
		if err == nil {
			fmt.Println("OK")
			continue
		}
		ms, _ := strconv.Atoi(tr.Get("grpc-retry-pushback-ms")[0])
		fmt.Printf("%v, come back in %.0fs\n", status.Code(err), float64(ms)/1000)
	}
	// Output:
	// OK
	// ResourceExhausted, come back in 60s
}
