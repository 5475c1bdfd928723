package balancer

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bulwark-go/bulwark/lb"
)

// HealthChecker is an lb.Checker that runs the gRPC health-checking
// protocol (grpc.health.v1.Health/Check) against an endpoint: SERVING
// passes; any other status, an error or a timeout fails. Each check opens
// its own connection and closes it, so a check sees what a new
// connection would and no connection outlives it.
type HealthChecker struct {
	// Service is the service name to ask about. Default "": the server
	// as a whole.
	Service string
	// DialOptions are used to connect. Default: insecure transport
	// credentials.
	DialOptions []grpc.DialOption
}

var _ lb.Checker = HealthChecker{}

// Check asks ep whether Service is serving.
func (h HealthChecker) Check(ctx context.Context, ep lb.Endpoint) error {
	opts := h.DialOptions
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient("passthrough:///"+ep.Addr, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: h.Service})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpcx/balancer: %s reports %v", ep.Addr, resp.GetStatus())
	}
	return nil
}
