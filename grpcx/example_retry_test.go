package grpcx_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/grpcx"
	"github.com/bulwark-go/bulwark/retry"
)

// flaky fails its first call with Unavailable.
type flaky struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int32
}

func (f *flaky) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if f.calls.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &testpb.SimpleResponse{Username: "gopher"}, nil
}

// A retry policy as a client interceptor: the Unavailable of the first
// attempt is retried, and the caller sees only the answer.
func ExampleUnaryClientRetry() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer()
	svc := &flaky{}
	testpb.RegisterTestServiceServer(srv, svc)
	go srv.Serve(lis)
	defer srv.Stop()

	policy := retry.New(retry.Config{Name: "users", BaseDelay: time.Millisecond})
	defer policy.Close()
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(grpcx.UnaryClientRetry(policy)),
		grpc.WithChainStreamInterceptor(grpcx.StreamClientRetry(policy)),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	resp, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	fmt.Println(resp.GetUsername(), err, "after", svc.calls.Load(), "calls")
	// Output: gopher <nil> after 2 calls
}
