package grpcx

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// HealthConfig configures [HealthServer]. The zero HealthConfig is
// useful: the empty service name is the readiness of the whole server,
// and every other service name is the health group of the same name.
type HealthConfig struct {
	// Services maps gRPC service names to health groups
	// (health.Ready, health.Live, or a name from Check.Groups). Default:
	// "" maps to health.Ready, and a name not in the map is looked up as a
	// group of the same name.
	Services map[string]string
	// WatchInterval is how often Watch re-runs a service's checks (each
	// answered from its cache while fresh) to notice a change. Default
	// 1 s (DefaultWatchInterval); at most 1 minute.
	WatchInterval time.Duration
}

// DefaultWatchInterval is HealthConfig.WatchInterval's default.
const DefaultWatchInterval = time.Second

// Validate reports a bad WatchInterval as a *bulwark.ConfigError.
func (c HealthConfig) Validate() error {
	v := validate.New("grpcx")
	v.Duration("HealthConfig.WatchInterval", c.WatchInterval, time.Minute)
	return v.Err()
}

// HealthServer returns the standard gRPC health service
// (grpc.health.v1.Health) fed by h's checks, to register with
// healthpb.RegisterHealthServer. A service is SERVING when its group's
// critical checks pass and NOT_SERVING otherwise, exactly as [health]'s
// HTTP probes judge (with the same per-check timeouts and caches):
//
//   - Check answers the status of the requested service, or NotFound for
//     a service that maps to no group;
//   - Watch sends the status at once (SERVICE_UNKNOWN for an unknown
//     service, which may appear later) and again whenever it changes,
//     re-evaluating every WatchInterval, until the client goes away;
//   - List answers every known service: "", the Services keys, and every
//     group name.
//
// It panics with a *bulwark.ConfigError if cfg is not valid, and if h is
// nil.
func HealthServer(h *health.Health, cfg HealthConfig) healthpb.HealthServer {
	if h == nil {
		panic("grpcx: HealthServer called with a nil *health.Health")
	}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = DefaultWatchInterval
	}
	s := &healthServer{h: h, interval: cfg.WatchInterval, services: map[string]string{"": health.Ready}}
	for k, v := range cfg.Services {
		s.services[k] = v
	}
	return s
}

type healthServer struct {
	healthpb.UnimplementedHealthServer
	h        *health.Health
	interval time.Duration
	services map[string]string
}

// group returns the health group of service, and false if there is none.
func (s *healthServer) group(service string) (string, bool) {
	g, ok := s.services[service]
	if !ok {
		g = service
	}
	return g, s.h.HasGroup(g)
}

func (s *healthServer) status(ctx context.Context, service string) healthpb.HealthCheckResponse_ServingStatus {
	g, ok := s.group(service)
	if !ok {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	if s.h.Report(ctx, g).Status == health.StatusOK {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

func (s *healthServer) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st := s.status(ctx, req.GetService())
	if st == healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		return nil, status.Error(codes.NotFound, fmt.Sprintf("grpcx: unknown service %q", req.GetService()))
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

func (s *healthServer) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx := stream.Context()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	t := clock.Real.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(context.Cause(ctx)).Err()
		case <-t.C():
		}
		if st := s.status(ctx, req.GetService()); st != last && ctx.Err() == nil {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		t.Reset(s.interval)
	}
}

func (s *healthServer) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{}}
	names := []string{}
	for k := range s.services {
		names = append(names, k)
	}
	names = append(names, s.h.Groups()...)
	for _, n := range names {
		if _, done := out.Statuses[n]; done {
			continue
		}
		if st := s.status(ctx, n); st != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
			out.Statuses[n] = &healthpb.HealthCheckResponse{Status: st}
		}
	}
	return out, nil
}
