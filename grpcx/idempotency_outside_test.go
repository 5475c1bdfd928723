package grpcx

// Black-box tests of UnaryServerIdempotency written from its documentation,
// over the package's harness (a real gRPC connection on bufconn).

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bulwark-go/bulwark/idempotency"
)

// metaServer sets response metadata and can fail with a detailed status.
type metaServer struct {
	testpb.UnimplementedTestServiceServer
	runs  atomic.Int64
	entry chan struct{}
	gate  chan struct{}
}

func (s *metaServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n := s.runs.Add(1)
	if s.entry != nil {
		s.entry <- struct{}{}
		<-s.gate
	}
	grpc.SetHeader(ctx, metadata.Pairs("x-order", fmt.Sprint(n)))
	grpc.SetTrailer(ctx, metadata.Pairs("x-cost", "7"))
	if st := req.GetResponseStatus(); st != nil && st.Code != 0 {
		s, _ := status.New(codes.Code(st.Code), st.Message).WithDetails(durationpb.New(time.Duration(n) * time.Second))
		return nil, s.Err()
	}
	return &testpb.SimpleResponse{Username: fmt.Sprintf("run %d", n)}, nil
}

func (s *metaServer) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.runs.Add(1)
	return &testpb.Empty{}, nil
}

func outsideClient(t *testing.T, srv testpb.TestServiceServer, cfg idempotency.Config, opts ...IdempotencyOption) testpb.TestServiceClient {
	k := idempotency.New(cfg)
	t.Cleanup(func() { k.Close() })
	return client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerIdempotency(k, opts...))})
}

func TestIdempotencyOutsideReplay(t *testing.T) {
	srv := &metaServer{}
	c := outsideClient(t, srv, idempotency.Config{})
	var h1, t1, h2, t2 metadata.MD
	first, err := c.UnaryCall(withKey(`"k-1"`), &testpb.SimpleRequest{ResponseSize: 3}, grpc.Header(&h1), grpc.Trailer(&t1))
	if err != nil {
		t.Fatal(err)
	}
	if len(h1.Get("idempotent-replayed")) != 0 {
		t.Fatalf("the first reply says it is replayed")
	}
	// the bare form is the same key as the sf-string
	second, err := c.UnaryCall(withKey("k-1"), &testpb.SimpleRequest{ResponseSize: 3}, grpc.Header(&h2), grpc.Trailer(&t2))
	if err != nil || !proto.Equal(first, second) || srv.runs.Load() != 1 {
		t.Fatalf("replay %v %v, runs %d", second, err, srv.runs.Load())
	}
	if got := h2.Get("idempotent-replayed"); len(got) != 1 || got[0] != "true" {
		t.Fatalf("replay header %v", h2)
	}
	// The handler's own response metadata is part of its reply.
	if fmt.Sprint(h2.Get("x-order")) != fmt.Sprint(h1.Get("x-order")) || fmt.Sprint(t2.Get("x-cost")) != fmt.Sprint(t1.Get("x-cost")) {
		t.Errorf("metadata not replayed: header %v then %v, trailer %v then %v", h1, h2, t1, t2)
	}
	// another method with the same key is another request
	if _, err := c.EmptyCall(withKey("k-1"), &testpb.Empty{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("same key, another method: %v", err)
	}
	// two entries
	ctx := metadata.AppendToOutgoingContext(withKey("a"), IdempotencyKeyMetadata, "b")
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("two keys: %v", err)
	}
}

func TestIdempotencyOutsideStoredErrorKeepsDetails(t *testing.T) {
	srv := &metaServer{}
	c := outsideClient(t, srv, idempotency.Config{})
	req := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "no funds"}}
	_, err1 := c.UnaryCall(withKey("e"), req)
	var hdr metadata.MD
	_, err2 := c.UnaryCall(withKey("e"), req, grpc.Header(&hdr))
	s1, s2 := status.Convert(err1), status.Convert(err2)
	if !proto.Equal(s1.Proto(), s2.Proto()) || s1.Code() != codes.FailedPrecondition || srv.runs.Load() != 1 {
		t.Fatalf("replayed error %v, want %v (runs %d)", s2.Proto(), s1.Proto(), srv.runs.Load())
	}
	if len(hdr.Get("idempotent-replayed")) != 1 {
		t.Errorf("a replayed error without idempotent-replayed: %v", hdr)
	}
}

func TestIdempotencyOutsideStoreUnavailable(t *testing.T) {
	store := idempotency.NewMemoryStore(idempotency.MemoryConfig{MaxKeys: 1})
	defer store.Close()
	srv := &metaServer{}
	c := outsideClient(t, srv, idempotency.Config{Store: store})
	if _, err := c.UnaryCall(withKey("fills"), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	var trailer metadata.MD
	_, err := c.UnaryCall(withKey("other"), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unavailable || fmt.Sprint(trailer.Get(pushbackKey)) != "[1000]" || srv.runs.Load() != 1 {
		t.Fatalf("store full: %v, trailer %v, runs %d", err, trailer, srv.runs.Load())
	}
}

func TestIdempotencyOutsideWait(t *testing.T) {
	srv := &metaServer{entry: make(chan struct{}, 1), gate: make(chan struct{})}
	c := outsideClient(t, srv, idempotency.Config{Wait: time.Minute})
	first := make(chan *testpb.SimpleResponse)
	go func() {
		r, _ := c.UnaryCall(withKey("w"), &testpb.SimpleRequest{})
		first <- r
	}()
	<-srv.entry
	second := make(chan *testpb.SimpleResponse)
	go func() {
		r, _ := c.UnaryCall(withKey("w"), &testpb.SimpleRequest{})
		second <- r
	}()
	close(srv.gate)
	a, b := <-first, <-second
	if a == nil || b == nil || !proto.Equal(a, b) || srv.runs.Load() != 1 {
		t.Fatalf("Wait: %v then %v, runs %d", a, b, srv.runs.Load())
	}
}

func TestIdempotencyOutsideScopeOption(t *testing.T) {
	srv := &metaServer{}
	c := outsideClient(t, srv, idempotency.Config{}, WithIdempotencyScope(func(ctx context.Context) string {
		md, _ := metadata.FromIncomingContext(ctx)
		return fmt.Sprint(md.Get("x-tenant"))
	}))
	tenant := func(t string) context.Context {
		return metadata.AppendToOutgoingContext(withKey("same"), "x-tenant", t)
	}
	a, _ := c.UnaryCall(tenant("a"), &testpb.SimpleRequest{})
	b, _ := c.UnaryCall(tenant("b"), &testpb.SimpleRequest{})
	a2, _ := c.UnaryCall(tenant("a"), &testpb.SimpleRequest{})
	if a.GetUsername() == b.GetUsername() || a2.GetUsername() != a.GetUsername() || srv.runs.Load() != 2 {
		t.Fatalf("scopes: %v %v %v", a, b, a2)
	}
}

// A reply larger than MaxResponseBytes is not stored: the next call runs.
func TestIdempotencyOutsideLargeReplyNotStored(t *testing.T) {
	srv := &metaServer{}
	c := outsideClient(t, srv, idempotency.Config{MaxResponseBytes: 8})
	for range 2 {
		if _, err := c.UnaryCall(withKey("big"), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if srv.runs.Load() != 2 {
		t.Fatalf("runs %d, want 2 (a reply over MaxResponseBytes is not stored)", srv.runs.Load())
	}
}

type panicServer struct {
	testpb.UnimplementedTestServiceServer
	runs atomic.Int64
}

func (s *panicServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s.runs.Add(1) == 1 {
		panic("boom")
	}
	return &testpb.SimpleResponse{Username: "second"}, nil
}

// A handler that panics releases the key (the panic goes on, here to a
// recovering interceptor outside): the next call with the key runs.
func TestIdempotencyOutsidePanicReleases(t *testing.T) {
	k := idempotency.New(idempotency.Config{})
	t.Cleanup(func() { k.Close() })
	recoverer := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (reply any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = status.Errorf(codes.Internal, "panic: %v", p)
			}
		}()
		return h(ctx, req)
	}
	srv := &panicServer{}
	c := client(t, srv, []grpc.ServerOption{grpc.ChainUnaryInterceptor(recoverer, UnaryServerIdempotency(k))})
	if _, err := c.UnaryCall(withKey("p"), &testpb.SimpleRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("panicking call: %v", err)
	}
	r, err := c.UnaryCall(withKey("p"), &testpb.SimpleRequest{})
	if err != nil || r.GetUsername() != "second" || srv.runs.Load() != 2 {
		t.Fatalf("after a panic: %v %v, runs %d", r, err, srv.runs.Load())
	}
}
