package grpcx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/clock"
)

func TestDegradeBridgeSet(t *testing.T) {
	if bridge.DegradeCriticality == nil || bridge.DegradeHeader == nil || bridge.DegradeOnShed == nil || bridge.DegradeThrottleClassify == nil {
		t.Fatal("package degrade did not set its bridge variables")
	}
}

// TestShedInterceptor drives a shedder into overload with a fake clock
// (through the bridge's test seam) and checks over a real connection that
// a sheddable call is rejected with Unavailable and a
// grpc-retry-pushback-ms trailer, while a critical one (by route or by
// metadata) still goes through.
func TestShedInterceptor(t *testing.T) {
	var shed []degrade.Criticality
	s := degrade.NewShedder(degrade.ShedderConfig{MinInFlight: 1,
		Routes: []degrade.Route{{Prefix: "/grpc.testing.TestService/EmptyCall", Criticality: degrade.Critical}},
		OnShed: func(_ context.Context, ev degrade.ShedEvent) { shed = append(shed, ev.Criticality) }})
	defer s.Close()
	fc := clock.NewFake(time.Time{})
	bridge.DegradeSetClock(s, fc)
	// History: one bucket of 10 calls of 10 ms; then 2 calls in flight,
	// and one that waited 50 ms (5x the best): queueing.
	for range 10 {
		tk, _ := s.Allow(degrade.Default)
		fc.Advance(10 * time.Millisecond)
		s.Done(tk)
	}
	fc.Advance(100 * time.Millisecond)
	held1, _ := s.Allow(degrade.Critical)
	held2, _ := s.Allow(degrade.Critical)
	defer s.Done(held1)
	defer s.Done(held2)
	tk, _ := s.Allow(degrade.Critical)
	fc.Advance(50 * time.Millisecond)
	s.Done(tk)

	impl := &echoServer{}
	c := client(t, impl, []grpc.ServerOption{grpc.ChainUnaryInterceptor(UnaryServerShed(s)), grpc.ChainStreamInterceptor(StreamServerShed(s))})
	var trailer metadata.MD
	_, err := c.UnaryCall(metadata.AppendToOutgoingContext(t.Context(), "bulwark-criticality", "sheddable"), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unavailable || len(trailer.Get("grpc-retry-pushback-ms")) != 1 || trailer.Get("grpc-retry-pushback-ms")[0] != "1000" {
		t.Fatalf("sheddable call: %v, trailer %v (stats %+v)", err, trailer, s.Stats())
	}
	if _, err := c.UnaryCall(metadata.AppendToOutgoingContext(t.Context(), "bulwark-criticality", "critical"), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("critical metadata: %v", err)
	}
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatalf("critical route: %v", err)
	}
	// Default: 2 in flight >= capacity 1 x 2.
	if _, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("default call: %v", err)
	}
	st, err := c.StreamingOutputCall(metadata.AppendToOutgoingContext(t.Context(), "bulwark-criticality", "sheddable"), &testpb.StreamingOutputCallRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("sheddable stream: %v", err)
	}
	if len(shed) != 3 || shed[0] != degrade.Sheddable || shed[1] != degrade.Default {
		t.Fatalf("OnShed saw %v", shed)
	}
	if impl.hits.Load() != 2 {
		t.Fatalf("the server ran %d calls, want the 2 admitted", impl.hits.Load())
	}
}

func TestThrottleInterceptor(t *testing.T) {
	th := degrade.NewThrottler(degrade.ThrottlerConfig{})
	defer th.Close()
	impl := &echoServer{}
	c := client(t, impl, nil, grpc.WithChainUnaryInterceptor(UnaryClientThrottle(th)), grpc.WithChainStreamInterceptor(StreamClientThrottle(th)))
	unavailable := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable)}}
	throttled := 0
	for range 200 {
		_, err := c.UnaryCall(t.Context(), unavailable)
		if errors.Is(err, degrade.ErrThrottled) {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("throttled call: %v", err)
			}
			throttled++
		}
	}
	if throttled < 100 || impl.hits.Load()+int64(throttled) != 200 {
		t.Fatalf("%d throttled, %d sent", throttled, impl.hits.Load())
	}
	// A NotFound is an answer: accepted.
	r0, a0 := th.Counts()
	c.UnaryCall(t.Context(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound)}})
	if r, a := th.Counts(); r != r0+1 || (a != a0+1 && a != a0) {
		t.Fatalf("counts %d/%d -> %d/%d", r0, a0, r, a)
	}
	// Streams are judged when they end.
	th2 := degrade.NewThrottler(degrade.ThrottlerConfig{})
	defer th2.Close()
	c2 := client(t, impl, nil, grpc.WithChainStreamInterceptor(StreamClientThrottle(th2)))
	st, err := c2.StreamingOutputCall(t.Context(), &testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable)}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); err != nil {
			break
		}
	}
	if r, a := th2.Counts(); r != 1 || a != 0 {
		t.Fatalf("a stream failing with Unavailable: counts %d/%d", r, a)
	}
}

func ExampleUnaryClientThrottle() {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, &echoServer{}) // answers the status each request asks for
	go gs.Serve(lis)
	defer gs.Stop()

	th := degrade.NewThrottler(degrade.ThrottlerConfig{})
	defer th.Close()
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(UnaryClientThrottle(th)))
	defer conn.Close()
	c := testpb.NewTestServiceClient(conn)

	overloaded := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable)}}
	throttled := 0
	for range 50 { // the backend rejects every call
		if _, err := c.UnaryCall(context.Background(), overloaded); errors.Is(err, degrade.ErrThrottled) {
			throttled++
		}
	}
	requests, accepts := th.Counts()
	fmt.Println(requests, accepts, throttled > 25)
	// Output: 50 0 true
}

func ExampleUnaryServerShed() {
	shedder := degrade.NewShedder(degrade.ShedderConfig{
		Routes: []degrade.Route{{Prefix: "/grpc.testing.TestService/EmptyCall", Criticality: degrade.Critical}},
	})
	defer shedder.Close()
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(UnaryServerShed(shedder)), grpc.ChainStreamInterceptor(StreamServerShed(shedder)))
	testpb.RegisterTestServiceServer(gs, &echoServer{})
	go gs.Serve(lis)
	defer gs.Stop()
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()

	// Callers state their criticality in metadata; overloaded servers shed
	// sheddable calls first, with a grpc-retry-pushback-ms trailer.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "bulwark-criticality", "sheddable")
	_, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
	fmt.Println(status.Code(err)) // not overloaded: served
	// Output: OK
}
