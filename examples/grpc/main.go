// Command grpc shows bulwark's gRPC client stack: retries outermost, then
// one circuit breaker per method, as interceptors from package grpcx. It
// serves the standard gRPC health service on 127.0.0.1, failing its first
// call with Unavailable, calls it once through the stack, prints what the
// caller sees and exits.
//
//	go run ./examples/grpc
//
// The README's gRPC snippet is the region between the snippet markers
// below; a test at the repository root keeps the two identical.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/grpcx"
	"github.com/bulwark-go/bulwark/retry"
)

// snippet:start

// dial connects to target through bulwark's gRPC client stack and returns
// the connection with a function that closes it and releases the stack.
func dial(target string) (*grpc.ClientConn, func(), error) {
	policy := retry.New(retry.Config{})            // 3 attempts, exponential backoff + full jitter, retry budget
	methods := breaker.NewSet(breaker.SetConfig{}) // one breaker per full method name
	conn, err := grpc.NewClient(target,
		// Plaintext, for this loopback demo; use TLS credentials across a network.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(
			grpcx.UnaryClientRetry(policy),    // honours grpc-retry-pushback-ms, sends grpc-previous-rpc-attempts
			grpcx.UnaryClientBreaker(methods), // rejections are codes.Unavailable
		),
	)
	if err != nil {
		policy.Close()
		methods.Close()
		return nil, nil, err
	}
	return conn, func() {
		conn.Close()
		policy.Close()
		methods.Close()
	}, nil
}

// snippet:end

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

func run() error {
	// A server still warming up: its first call fails with Unavailable.
	var calls atomic.Int32
	warmingUp := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if calls.Add(1) == 1 {
			return nil, status.Error(codes.Unavailable, "warming up")
		}
		return handler(ctx, req)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(warmingUp))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	defer srv.Stop()

	conn, closeConn, err := dial(ln.Addr().String())
	if err != nil {
		return err
	}
	defer closeConn()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err // status codes.Unavailable once retries are exhausted or the breaker is open
	}
	fmt.Printf("health: %v after %d attempts (the first got Unavailable and was retried)\n", resp.GetStatus(), calls.Load())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("want SERVING, got %v", resp.GetStatus())
	}
	return nil
}
