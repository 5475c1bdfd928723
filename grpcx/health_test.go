package grpcx

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/grpc/credentials/insecure"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/health"
)

func healthClient(t *testing.T, h *health.Health, cfg HealthConfig) healthpb.HealthClient {
	t.Helper()
	conn := serveServices(t, func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, HealthServer(h, cfg)) }, nil)
	return healthpb.NewHealthClient(conn)
}

func TestHealthServerCheck(t *testing.T) {
	h := health.New(health.Config{Checks: []health.Check{
		{Name: "db", Func: func(context.Context) error { return nil }, Groups: []string{"orders"}},
		{Name: "search", Func: func(context.Context) error { return errors.New("down") }, Groups: []string{"catalog"}},
		{Name: "loop", Liveness: true, Func: func(context.Context) error { return nil }},
	}})
	defer h.Close()
	c := healthClient(t, h, HealthConfig{Services: map[string]string{"shop.v1.Orders": "orders", "liveness": health.Live}})
	for svc, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":               healthpb.HealthCheckResponse_NOT_SERVING, // readiness: search is critical and down
		"shop.v1.Orders": healthpb.HealthCheckResponse_SERVING,
		"orders":         healthpb.HealthCheckResponse_SERVING,
		"catalog":        healthpb.HealthCheckResponse_NOT_SERVING,
		"liveness":       healthpb.HealthCheckResponse_SERVING,
	} {
		resp, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != want {
			t.Errorf("Check(%q) = %v, %v; want %v", svc, resp.GetStatus(), err, want)
		}
	}
	if _, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v, want NotFound", err)
	}
	list, err := c.List(t.Context(), &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.GetStatuses(); len(got) != 5 || got["catalog"].GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("List = %v", got)
	}
}

// TestHealthServerWatch: Watch sends the current status, then each change.
func TestHealthServerWatch(t *testing.T) {
	var failing atomic.Bool
	h := health.New(health.Config{Checks: []health.Check{{Name: "db", TTL: time.Nanosecond, Func: func(context.Context) error {
		if failing.Load() {
			return errors.New("db: down")
		}
		return nil
	}}}})
	defer h.Close()
	c := healthClient(t, h, HealthConfig{WatchInterval: time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := func(s healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := w.Recv()
		if err != nil || resp.GetStatus() != s {
			t.Fatalf("Watch sent %v, %v; want %v", resp.GetStatus(), err, s)
		}
	}
	want(healthpb.HealthCheckResponse_SERVING)
	failing.Store(true)
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	failing.Store(false)
	want(healthpb.HealthCheckResponse_SERVING)

	u, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: "later"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := u.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("unknown service: %v %v", resp, err)
	}
}

func TestHealthConfigValidate(t *testing.T) {
	if err := (HealthConfig{WatchInterval: -1}).Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Validate = %v", err)
	}
}

func ExampleHealthServer() {
	h := health.New(health.Config{Checks: []health.Check{
		{Name: "db", Func: func(context.Context) error { return nil }, Groups: []string{"orders"}},
		{Name: "search", Optional: true, Func: func(context.Context) error { return errors.New("search: down") }},
	}})
	defer h.Close()

	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, HealthServer(h, HealthConfig{
		Services: map[string]string{"shop.v1.Orders": "orders"},
	}))
	go gs.Serve(lis)
	defer gs.Stop()

	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "shop.v1.Orders"} {
		resp, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		fmt.Printf("%q: %v %v\n", svc, resp.GetStatus(), err)
	}
	// Output:
	// "": SERVING <nil>
	// "shop.v1.Orders": SERVING <nil>
}
