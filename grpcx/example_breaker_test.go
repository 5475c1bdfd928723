package grpcx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/grpcx"
)

// flakyService is grpc-go's interop TestService whose UnaryCall fails with
// Unavailable while its dependency is down.
type flakyService struct {
	testpb.UnimplementedTestServiceServer
	down bool
}

func (s *flakyService) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s.down {
		return nil, status.Error(codes.Unavailable, "dependency down")
	}
	return &testpb.SimpleResponse{}, nil
}

// startExample serves svc over an in-memory listener with serverOpts and
// returns a client connection built with clientOpts, and a stop function.
func startExample(svc testpb.TestServiceServer, serverOpts []grpc.ServerOption, clientOpts ...grpc.DialOption) (*grpc.ClientConn, func()) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(serverOpts...)
	testpb.RegisterTestServiceServer(srv, svc)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///example", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, clientOpts...)...)
	if err != nil {
		panic(err)
	}
	return conn, func() { conn.Close(); srv.Stop() }
}

// A client guards each method with its own breaker: once UnaryCall has
// failed twice, further calls fail fast with Unavailable, without reaching
// the server, and the error still matches breaker.ErrOpen.
func ExampleUnaryClientBreaker() {
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 2}})
	defer set.Close()
	conn, stop := startExample(&flakyService{down: true}, nil,
		grpc.WithChainUnaryInterceptor(grpcx.UnaryClientBreaker(set)),
		grpc.WithChainStreamInterceptor(grpcx.StreamClientBreaker(set)))
	defer stop()
	client := testpb.NewTestServiceClient(conn)

	for range 3 {
		_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		fmt.Printf("%v, open: %v\n", status.Code(err), errors.Is(err, breaker.ErrOpen))
	}
	fmt.Println(set.Get("/grpc.testing.TestService/UnaryCall").State())
	// Output:
	// Unavailable, open: false
	// Unavailable, open: false
	// Unavailable, open: true
	// open
}

// A server sheds calls to a method whose handler keeps failing: while its
// breaker is open, callers get Unavailable at once, with a
// grpc-retry-pushback-ms trailer saying when to come back.
func ExampleUnaryServerBreaker() {
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{
		ConsecutiveFailures: 2, OpenDuration: 5 * time.Second, OpenJitter: -1}})
	defer set.Close()
	svc := &flakyService{down: true}
	conn, stop := startExample(svc, []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(grpcx.UnaryServerBreaker(set)),
		grpc.ChainStreamInterceptor(grpcx.StreamServerBreaker(set))})
	defer stop()
	client := testpb.NewTestServiceClient(conn)

	for range 3 {
		var trailer metadata.MD
		_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
		st := status.Convert(err)
		fmt.Printf("%v: %s", st.Code(), st.Message())
		if p := trailer.Get("grpc-retry-pushback-ms"); len(p) == 1 {
			ms, _ := strconv.Atoi(p[0])
			fmt.Printf(" (pushback within 5s: %v)", ms > 0 && ms <= 5000)
		}
		fmt.Println()
	}
	// Output:
	// Unavailable: dependency down
	// Unavailable: dependency down
	// Unavailable: breaker: circuit open (pushback within 5s: true)
}
