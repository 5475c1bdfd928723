package grpcx

// Black-box tests of grpcx's limit interceptors, written against the docs
// of grpcx and package limit, over the package's gRPC harness.

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/limit"
)

type outsideLimitSrv struct {
	testpb.UnimplementedTestServiceServer
	hits    atomic.Int64
	block   chan struct{}
	entered chan struct{}
}

func (s *outsideLimitSrv) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.hits.Add(1)
	if s.block != nil {
		s.entered <- struct{}{}
		select {
		case <-s.block:
		case <-ctx.Done():
		}
	}
	return &testpb.SimpleResponse{}, nil
}

func (s *outsideLimitSrv) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	s.hits.Add(1)
	return stream.Send(&testpb.StreamingOutputCallResponse{})
}

func outsidePushback(tr metadata.MD) (int, bool) {
	v := tr.Get("grpc-retry-pushback-ms")
	if len(v) != 1 {
		return 0, false
	}
	n, err := strconv.Atoi(v[0])
	return n, err == nil
}

func TestLimitOutsideServerRate(t *testing.T) {
	for name, l := range map[string]limit.Limiter{
		"bulwark": limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1}),
		"x/time":  rate.NewLimiter(rate.Every(time.Hour), 1),
	} {
		t.Run(name, func(t *testing.T) {
			srv := &outsideLimitSrv{}
			c := client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerLimit(l))})
			if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			var tr metadata.MD
			_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&tr))
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("second call = %v, want ResourceExhausted", err)
			}
			ms, ok := outsidePushback(tr)
			if !ok || ms < 3599000 || ms > 3600000 {
				t.Errorf("pushback %v, want about an hour", tr.Get("grpc-retry-pushback-ms"))
			}
			if srv.hits.Load() != 1 {
				t.Errorf("handler ran %d times", srv.hits.Load())
			}
		})
	}
}

func TestLimitOutsideServerConcurrency(t *testing.T) {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	srv := &outsideLimitSrv{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	c := client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerConcurrency(b))})
	done := make(chan error, 1)
	go func() {
		_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		done <- err
	}()
	<-srv.entered
	var tr metadata.MD
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&tr))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("second = %v, want Unavailable", err)
	}
	t.Logf("concurrency rejection trailer: %v", tr)
	close(srv.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b.InFlight() != 0 {
		t.Fatalf("InFlight %d", b.InFlight())
	}
}

func TestLimitOutsideClientRejectsLocally(t *testing.T) {
	srv := &outsideLimitSrv{}
	r := limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1})
	defer r.Close()
	c := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientLimit(r, limit.NoWait())))
	if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	var le *LimitError
	if status.Code(err) != codes.ResourceExhausted || !errors.As(err, &le) || !errors.Is(err, limit.ErrRateLimited) {
		t.Fatalf("= %v, want a *LimitError (ResourceExhausted, ErrRateLimited)", err)
	}
	if le.RetryAfter() < 59*time.Minute {
		t.Errorf("RetryAfter %v", le.RetryAfter())
	}
	// Waiting mode, deadline too near: at once, a rejection.
	c2 := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientLimit(r)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c2.UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("waiting = %v", err)
	}
	// Streams too.
	c3 := client(t, srv, nil, grpc.WithStreamInterceptor(StreamClientLimit(r, limit.NoWait())))
	st, err := c3.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("stream = %v", err)
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("server saw %d calls, want 1", srv.hits.Load())
	}
}

func TestLimitOutsideClientConcurrency(t *testing.T) {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	srv := &outsideLimitSrv{}
	c := client(t, srv, nil, grpc.WithUnaryInterceptor(UnaryClientConcurrency(b)))
	b.TryAcquire()
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	if status.Code(err) != codes.Unavailable || !errors.Is(err, limit.ErrConcurrencyLimited) {
		t.Fatalf("= %v", err)
	}
	b.Release()
	if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if srv.hits.Load() != 1 || b.InFlight() != 0 {
		t.Fatalf("hits %d inflight %d", srv.hits.Load(), b.InFlight())
	}
}

func TestLimitOutsideServerKeyedAndStream(t *testing.T) {
	k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Hour, Burst: 1}})
	defer k.Close()
	srv := &outsideLimitSrv{}
	c := client(t, srv, []grpc.ServerOption{
		grpc.UnaryInterceptor(UnaryServerKeyedLimit(k, func(ctx context.Context, _ string) string {
			md, _ := metadata.FromIncomingContext(ctx)
			if v := md.Get("tenant"); len(v) > 0 {
				return v[0]
			}
			return ""
		})),
		grpc.StreamInterceptor(StreamServerKeyedLimit(k, nil)),
	})
	ctxA := metadata.AppendToOutgoingContext(context.Background(), "tenant", "a")
	ctxB := metadata.AppendToOutgoingContext(context.Background(), "tenant", "b")
	if _, err := c.UnaryCall(ctxA, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	var tr metadata.MD
	if _, err := c.UnaryCall(ctxA, &testpb.SimpleRequest{}, grpc.Trailer(&tr)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a again = %v", err)
	}
	if _, ok := outsidePushback(tr); !ok {
		t.Error("no pushback on a keyed rejection")
	}
	if _, err := c.UnaryCall(ctxB, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("b = %v", err)
	}
	// Streams keyed by peer.
	for i := range 2 {
		st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		if (i == 0) != (err == nil) {
			t.Fatalf("stream %d = %v", i, err)
		}
		if i == 1 && status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("stream 2 = %v", err)
		}
	}
}

func TestLimitOutsideMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	r := limit.NewRate(limit.RateConfig{Name: "r", Every: time.Hour, Burst: 1, MeterProvider: mp})
	b := limit.NewBulkhead(limit.BulkheadConfig{Name: "b", MaxConcurrent: 2, MeterProvider: mp})
	a := limit.NewAdaptive(limit.AdaptiveConfig{Name: "a", MeterProvider: mp})
	k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Name: "k"}})
	defer k.Close()
	srv := &outsideLimitSrv{}
	c := client(t, srv, []grpc.ServerOption{grpc.ChainUnaryInterceptor(UnaryServerLimit(r), UnaryServerConcurrency(b), UnaryServerConcurrency(a))})
	c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	conformance.Instruments(t, reader)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	names := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names[m.Name] = true
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "bulwark.limit.decisions" {
				for _, dp := range sum.DataPoints {
					n, _ := dp.Attributes.Value("bulwark.name")
					d, _ := dp.Attributes.Value("bulwark.limit.decision")
					kind, _ := dp.Attributes.Value(attribute.Key("bulwark.limit.kind"))
					got[n.AsString()+"/"+kind.AsString()+"/"+d.AsString()] = dp.Value
				}
			}
		}
	}
	for _, n := range []string{"bulwark.limit.decisions", "bulwark.limit.in_flight", "bulwark.limit.concurrency_limit"} {
		if !names[n] {
			t.Errorf("no %s", n)
		}
	}
	want := map[string]int64{"r/rate/admitted": 1, "r/rate/rejected": 1, "b/bulkhead/admitted": 1, "a/adaptive/admitted": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	for _, c := range []interface{ Close() error }{r, b, a} {
		c.Close()
		c.Close()
	}
}

// Regression: a client limit interceptor answered a call whose context
// had ended with the bare context error, whose status.Code is Unknown (a
// failure to every gRPC metric and classifier) where grpc-go itself says
// Canceled or DeadlineExceeded.
func TestLimitClientContextEndIsAStatus(t *testing.T) {
	r := limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1})
	defer r.Close()
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1})
	defer b.Close()
	b.TryAcquire() // full: calls queue
	defer b.Release()
	srv := &outsideLimitSrv{}
	for name, opt := range map[string]grpc.DialOption{
		"rate":        grpc.WithUnaryInterceptor(UnaryClientLimit(r)),
		"concurrency": grpc.WithUnaryInterceptor(UnaryClientConcurrency(b)),
	} {
		c := client(t, srv, nil, opt)
		cause := errors.New("caller gave up")
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.Canceled || !errors.Is(err, cause) {
			t.Errorf("%s, cancelled: %v (%v), want Canceled wrapping the cause", name, err, status.Code(err))
		}
		dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		_, err = c.UnaryCall(dctx, &testpb.SimpleRequest{})
		dcancel()
		if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s, past deadline: %v (%v), want DeadlineExceeded", name, err, status.Code(err))
		}
	}
	if srv.hits.Load() != 0 {
		t.Errorf("server saw %d calls", srv.hits.Load())
	}
}
