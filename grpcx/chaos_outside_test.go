package grpcx

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/chaos"
)

func TestOutsideChaosServerTargetingAndDrop(t *testing.T) {
	inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{
		{Name: "unary-drop", Action: chaos.Drop, PathPrefix: "/grpc.testing.TestService/UnaryCall", Drill: "d1"},
		{Name: "empty-err", Action: chaos.Error, GRPCCode: int(codes.PermissionDenied), PathPrefix: "/grpc.testing.TestService/EmptyCall"},
		{Name: "http-only", Action: chaos.Abort, Methods: []string{"GET"}, AllTraffic: true},
	}})
	defer inj.Close()
	impl := &echoServer{}
	c := client(t, impl, []grpc.ServerOption{grpc.ChainUnaryInterceptor(UnaryServerChaos(inj)), grpc.ChainStreamInterceptor(StreamServerChaos(inj))})
	drill := func(v string) context.Context {
		return metadata.AppendToOutgoingContext(t.Context(), "bulwark-chaos", v)
	}
	// Production traffic: untouched.
	if _, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	// Wrong drill value: untouched.
	if _, err := c.UnaryCall(drill("d2"), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	before := impl.hits.Load()
	_, err := c.UnaryCall(drill("d1"), &testpb.SimpleRequest{})
	if status.Code(err) != codes.Unavailable || impl.hits.Load() != before+1 {
		t.Fatalf("drop: %v, handler ran %d", err, impl.hits.Load()-before)
	}
	before = impl.hits.Load()
	_, err = c.EmptyCall(drill("x"), &testpb.Empty{})
	if status.Code(err) != codes.PermissionDenied || impl.hits.Load() != before {
		t.Fatalf("error: %v, handler ran %d", err, impl.hits.Load()-before)
	}
	got := inj.Injected()
	if got["unary-drop"] != 1 || got["empty-err"] != 1 || got["http-only"] != 0 {
		t.Fatalf("Injected %v", got)
	}
}

func TestOutsideChaosClientLatencyAndAbort(t *testing.T) {
	inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{
		{Name: "abort", Action: chaos.Abort, AllTraffic: true, PathPrefix: "/grpc.testing.TestService/EmptyCall"},
	}})
	defer inj.Close()
	impl := &echoServer{}
	c := client(t, impl, nil, grpc.WithChainUnaryInterceptor(UnaryClientChaos(inj)))
	_, err := c.EmptyCall(t.Context(), &testpb.Empty{})
	var ce *ChaosError
	if status.Code(err) != codes.Unavailable || !errors.Is(err, chaos.ErrInjected) || !errors.As(err, &ce) || impl.hits.Load() != 0 {
		t.Fatalf("abort: %v, hits %d", err, impl.hits.Load())
	}
	inj.Disable()
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil || impl.hits.Load() != 1 {
		t.Fatalf("disabled: %v", err)
	}
}

func TestOutsideChaosLatencyServerSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inj := chaos.New(chaos.Config{Enabled: true, Faults: []chaos.Fault{{Latency: chaos.Latency{Delay: 2 * time.Second}, AllTraffic: true}}})
		defer inj.Close()
		var took time.Duration
		ic := UnaryServerChaos(inj)
		start := time.Now()
		_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/a.B/C"}, func(ctx context.Context, req any) (any, error) {
			took = time.Since(start)
			return nil, nil
		})
		if err != nil || took != 2*time.Second {
			t.Fatalf("latency: %v %v", err, took)
		}
	})
}
