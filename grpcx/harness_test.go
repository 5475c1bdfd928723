package grpcx

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/test/bufconn"
)

// The one gRPC test harness of package grpcx: every interceptor's tests
// start grpc-go's interop TestService over a real gRPC connection (an
// in-memory bufconn listener, so no port is opened) with this, instead of
// each file keeping its own.

// serve starts impl on a new server built with serverOpts and returns a
// client connection built with clientOpts (after the harness's dialer and
// insecure credentials; gRPC's own retries are disabled, so only bulwark
// retries). Server, listener and connection are closed when the test ends.
func serve(t *testing.T, impl testpb.TestServiceServer, serverOpts []grpc.ServerOption, clientOpts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	return serveServices(t, func(gs *grpc.Server) { testpb.RegisterTestServiceServer(gs, impl) }, serverOpts, clientOpts...)
}

// serveServices is serve for a server whose services register registers
// (the health service, say) in place of the TestService.
func serveServices(t *testing.T, register func(*grpc.Server), serverOpts []grpc.ServerOption, clientOpts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(serverOpts...)
	register(gs)
	go gs.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
	}, clientOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		lis.Close()
	})
	return conn
}

// client is serve's connection as a TestService client.
func client(t *testing.T, impl testpb.TestServiceServer, serverOpts []grpc.ServerOption, clientOpts ...grpc.DialOption) testpb.TestServiceClient {
	t.Helper()
	return testpb.NewTestServiceClient(serve(t, impl, serverOpts, clientOpts...))
}
