package grpcx

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/idempotency"
)

// idemServer counts its runs; UnaryCall answers with the run number in the
// payload, or with the status the request asks for.
type idemServer struct {
	testpb.UnimplementedTestServiceServer
	runs  atomic.Int64
	entry chan struct{}
	gate  chan struct{}
}

func (s *idemServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n := s.runs.Add(1)
	if s.entry != nil {
		s.entry <- struct{}{}
		<-s.gate
	}
	if st := req.GetResponseStatus(); st != nil && st.Code != 0 {
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	return &testpb.SimpleResponse{Username: fmt.Sprintf("run %d", n)}, nil
}

func idemClient(t *testing.T, srv *idemServer) testpb.TestServiceClient {
	k := idempotency.New(idempotency.Config{})
	t.Cleanup(func() { k.Close() })
	return client(t, srv, []grpc.ServerOption{grpc.UnaryInterceptor(UnaryServerIdempotency(k))})
}

func withKey(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), IdempotencyKeyMetadata, key)
}

func TestIdempotencyReplaysTheFirstReply(t *testing.T) {
	srv := &idemServer{}
	c := idemClient(t, srv)
	req := &testpb.SimpleRequest{ResponseSize: 1}
	first, err := c.UnaryCall(withKey("k1"), req)
	if err != nil {
		t.Fatal(err)
	}
	var hdr metadata.MD
	second, err := c.UnaryCall(withKey("k1"), req, grpc.Header(&hdr))
	if err != nil || second.GetUsername() != first.GetUsername() || srv.runs.Load() != 1 {
		t.Fatalf("second call = %v, %v after %d runs; want %q replayed", second, err, srv.runs.Load(), first.GetUsername())
	}
	if got := hdr.Get("idempotent-replayed"); len(got) != 1 || got[0] != "true" {
		t.Fatalf("replay header = %v", got)
	}
	if _, err := c.UnaryCall(withKey("k1"), &testpb.SimpleRequest{ResponseSize: 2}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("same key, another request: %v, want InvalidArgument", err)
	}
	if _, err := c.UnaryCall(context.Background(), req); err != nil || srv.runs.Load() != 2 {
		t.Fatalf("a call without a key must pass through: %v, runs %d", err, srv.runs.Load())
	}
	if _, err := c.UnaryCall(withKey(`"open`), req); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed key: %v, want InvalidArgument", err)
	}
}

func TestIdempotencyStoresErrorsButNotFailures(t *testing.T) {
	srv := &idemServer{}
	c := idemClient(t, srv)
	notFound := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such order"}}
	for range 2 {
		if _, err := c.UnaryCall(withKey("nf"), notFound); status.Code(err) != codes.NotFound {
			t.Fatalf("err = %v, want NotFound", err)
		}
	}
	if srv.runs.Load() != 1 {
		t.Fatalf("a NotFound answer ran %d times, want 1 (stored and replayed)", srv.runs.Load())
	}
	unavailable := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable), Message: "down"}}
	for range 2 {
		c.UnaryCall(withKey("un"), unavailable)
	}
	if srv.runs.Load() != 3 {
		t.Fatalf("an Unavailable answer ran %d times in all, want it run again (not stored)", srv.runs.Load()-1)
	}
}

func TestIdempotencyInProgressIsAbortedWithPushback(t *testing.T) {
	srv := &idemServer{entry: make(chan struct{}, 1), gate: make(chan struct{})}
	c := idemClient(t, srv)
	done := make(chan error)
	go func() {
		_, err := c.UnaryCall(withKey("k"), &testpb.SimpleRequest{})
		done <- err
	}()
	<-srv.entry
	var trailer metadata.MD
	_, err := c.UnaryCall(withKey("k"), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	close(srv.gate)
	if status.Code(err) != codes.Aborted || len(trailer.Get(pushbackKey)) != 1 || trailer.Get(pushbackKey)[0] != "1000" {
		t.Fatalf("concurrent duplicate: %v, trailer %v; want Aborted with grpc-retry-pushback-ms 1000", err, trailer)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if srv.runs.Load() != 1 {
		t.Fatalf("runs = %d", srv.runs.Load())
	}
}

func TestIdempotencyScopes(t *testing.T) {
	srv := &idemServer{}
	c := idemClient(t, srv)
	as := func(user string) context.Context {
		return metadata.AppendToOutgoingContext(withKey("shared"), "authorization", user)
	}
	a, _ := c.UnaryCall(as("alice"), &testpb.SimpleRequest{})
	b, _ := c.UnaryCall(as("bob"), &testpb.SimpleRequest{})
	if a.GetUsername() == b.GetUsername() || srv.runs.Load() != 2 {
		t.Fatalf("bob got %q after alice's %q; want his own run", b.GetUsername(), a.GetUsername())
	}
}
