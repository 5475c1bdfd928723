package balancer_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwark-go/bulwark/grpcx/balancer"
	"github.com/bulwark-go/bulwark/lb"
)

type counting struct {
	testpb.UnimplementedTestServiceServer
	n atomic.Int64
}

func (c *counting) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	c.n.Add(1)
	return &testpb.Empty{}, nil
}

// Three gRPC servers on loopback behind one ClientConn, balanced by lb.
func Example() {
	var eps []lb.Endpoint
	var impls []*counting
	for range 3 {
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		gs := grpc.NewServer()
		impl := &counting{}
		testpb.RegisterTestServiceServer(gs, impl)
		go gs.Serve(lis)
		defer gs.Stop()
		eps = append(eps, lb.Endpoint{Addr: lis.Addr().String()})
		impls = append(impls, impl)
	}

	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin()})
	defer b.Close()
	unregister, err := balancer.Register("echo", b)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unregister()

	conn, err := grpc.NewClient("bulwark:///echo", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	for range 300 {
		if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			fmt.Println(err)
			return
		}
	}
	every := true
	for _, impl := range impls {
		every = every && impl.n.Load() > 0 // about 100 each once connected
	}
	fmt.Println("every server served calls:", every)
	// Output: every server served calls: true
}
