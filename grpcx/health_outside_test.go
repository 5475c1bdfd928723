package grpcx

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bulwark-go/bulwark/health"
)

func TestOutsideHealthWatchServiceAppearsLater(t *testing.T) {
	h := health.New(health.Config{})
	defer h.Close()
	c := healthClient(t, h, HealthConfig{WatchInterval: time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("%v %v", r, err)
	}
	var down atomic.Bool
	if err := h.Add(health.Check{Name: "db", TTL: time.Nanosecond, Groups: []string{"orders"}, Func: func(context.Context) error {
		if down.Load() {
			return errors.New("down")
		}
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("after Add: %v %v", r, err)
	}
	down.Store(true)
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after failure: %v %v", r, err)
	}
	// Check agrees; optional checks never make a service NOT_SERVING.
	if r, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check: %v %v", r, err)
	}
}

func TestOutsideHealthCheckHanging(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := health.New(health.Config{Checks: []health.Check{{Name: "hang", Timeout: 20 * time.Millisecond, Func: func(context.Context) error { <-release; return nil }}}})
	defer h.Close()
	c := healthClient(t, h, HealthConfig{})
	r, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("%v %v", r, err)
	}
}
