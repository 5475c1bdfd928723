package grpcx

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/grpc/credentials/insecure"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

// echoServer is the TestService of the chaos, health and degrade tests:
// UnaryCall and StreamingOutputCall answer with the status the request
// asks for (after the messages it asks for), EmptyCall at once; hits
// counts the calls the handler ran. (The breaker tests' server differs:
// its EmptyCall waits for its caller to go away.)
type echoServer struct {
	testpb.UnimplementedTestServiceServer
	hits atomic.Int64
}

func echoStatus(st *testpb.EchoStatus) error {
	if st == nil || st.Code == 0 {
		return nil
	}
	return status.Error(codes.Code(st.Code), st.Message)
}

func (s *echoServer) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	s.hits.Add(1)
	return &testpb.Empty{}, nil
}

func (s *echoServer) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.hits.Add(1)
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{}, nil
}

func (s *echoServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	s.hits.Add(1)
	for range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return echoStatus(req.GetResponseStatus())
}

func TestChaosBridgeSet(t *testing.T) {
	if bridge.ChaosPick == nil || bridge.ChaosHeader == nil {
		t.Fatal("package chaos did not set its bridge variables")
	}
}

func drillCtx(t *testing.T, drill string) context.Context {
	if drill == "" {
		return t.Context()
	}
	return metadata.AppendToOutgoingContext(t.Context(), "bulwark-chaos", drill)
}

// TestChaosInterceptors runs every action through the server and the
// client interceptors over a real connection, unary and streaming, and
// checks what the caller sees and whether the server did the work.
func TestChaosInterceptors(t *testing.T) {
	for _, side := range []string{"server", "client"} {
		for _, tc := range []struct {
			action   chaos.Action
			wantCode codes.Code
			wantHits int64
		}{{chaos.None, codes.OK, 1}, {chaos.Error, codes.ResourceExhausted, 0}, {chaos.Abort, codes.Unavailable, 0}, {chaos.Drop, codes.Unavailable, 1}} {
			inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{
				Name: "f", PathPrefix: "/grpc.testing.TestService/", Action: tc.action, GRPCCode: int(codes.ResourceExhausted),
				Latency: chaos.Latency{Delay: 1000},
			}}})
			impl := &echoServer{}
			var c testpb.TestServiceClient
			if side == "server" {
				c = client(t, impl, []grpc.ServerOption{grpc.ChainUnaryInterceptor(UnaryServerChaos(inj)), grpc.ChainStreamInterceptor(StreamServerChaos(inj))})
			} else {
				c = client(t, impl, nil, grpc.WithChainUnaryInterceptor(UnaryClientChaos(inj)), grpc.WithChainStreamInterceptor(StreamClientChaos(inj)))
			}
			// Untargeted (no drill metadata): untouched.
			if _, err := c.UnaryCall(drillCtx(t, ""), &testpb.SimpleRequest{}); err != nil {
				t.Fatalf("%s %v: untargeted call: %v", side, tc.action, err)
			}
			impl.hits.Store(0)
			_, err := c.UnaryCall(drillCtx(t, "d1"), &testpb.SimpleRequest{})
			if status.Code(err) != tc.wantCode || impl.hits.Load() != tc.wantHits {
				t.Errorf("%s %v unary: code %v, server hits %d; want %v, %d", side, tc.action, status.Code(err), impl.hits.Load(), tc.wantCode, tc.wantHits)
			}
			if side == "client" && tc.action != chaos.None && !errors.Is(err, chaos.ErrInjected) {
				t.Errorf("client %v: %v does not match chaos.ErrInjected", tc.action, err)
			}

			impl.hits.Store(0)
			err = func() error {
				s, err := c.StreamingOutputCall(drillCtx(t, "d1"), &testpb.StreamingOutputCallRequest{
					ResponseParameters: []*testpb.ResponseParameters{{}, {}}})
				if err != nil {
					return err
				}
				for {
					if _, err := s.Recv(); err == io.EOF {
						return nil
					} else if err != nil {
						return err
					}
				}
			}()
			if status.Code(err) != tc.wantCode || impl.hits.Load() != tc.wantHits {
				t.Errorf("%s %v stream: code %v, server hits %d; want %v, %d", side, tc.action, status.Code(err), impl.hits.Load(), tc.wantCode, tc.wantHits)
			}
			if n := inj.Injected()["f"]; n != 2 {
				t.Errorf("%s %v: Injected = %d, want 2", side, tc.action, n)
			}
			inj.Close()
		}
	}
}

func TestChaosDisabledPassesThrough(t *testing.T) {
	inj := chaos.New(chaos.Config{Faults: []chaos.Fault{{AllTraffic: true, Action: chaos.Abort}}})
	defer inj.Close()
	impl := &echoServer{}
	c := client(t, impl, []grpc.ServerOption{grpc.ChainUnaryInterceptor(UnaryServerChaos(inj))},
		grpc.WithChainUnaryInterceptor(UnaryClientChaos(inj)))
	if _, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	inj.Enable()
	if _, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("enabled: %v", err)
	}
}

func ExampleUnaryServerChaos() {
	inj := chaos.New(chaos.Config{Faults: []chaos.Fault{{
		Name:       "empty-down",
		PathPrefix: "/grpc.testing.TestService/EmptyCall",
		Action:     chaos.Error,
		GRPCCode:   int(codes.Unavailable),
	}}})
	defer inj.Close()

	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(UnaryServerChaos(inj)))
	testpb.RegisterTestServiceServer(gs, &echoServer{})
	go gs.Serve(lis)
	defer gs.Stop()
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	c := testpb.NewTestServiceClient(conn)

	inj.Enable()
	drill := metadata.AppendToOutgoingContext(context.Background(), "bulwark-chaos", "drill-7")
	_, err := c.EmptyCall(drill, &testpb.Empty{})
	fmt.Println("drill call:", status.Code(err))
	_, err = c.EmptyCall(context.Background(), &testpb.Empty{})
	fmt.Println("production call:", status.Code(err))
	// Output:
	// drill call: Unavailable
	// production call: OK
}
