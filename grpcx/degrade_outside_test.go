package grpcx

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/retry"
)

func TestOutsideThrottleInterceptorCounts(t *testing.T) {
	th := degrade.NewThrottler(degrade.ThrottlerConfig{})
	defer th.Close()
	impl := &echoServer{}
	p := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Millisecond})
	c := client(t, impl, nil, grpc.WithChainUnaryInterceptor(UnaryClientRetry(p), UnaryClientThrottle(th)))
	fail := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable)}}
	throttled := 0
	for range 300 {
		_, err := c.UnaryCall(t.Context(), fail)
		if errors.Is(err, degrade.ErrThrottled) {
			throttled++
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("throttled code %v", status.Code(err))
			}
		}
	}
	req, acc := th.Counts()
	if acc != 0 || req == 0 || throttled == 0 {
		t.Fatalf("req %d acc %d throttled %d", req, acc, throttled)
	}
	if int64(impl.hits.Load())+int64(0) >= req {
		t.Fatalf("server saw %d of %d requests: nothing throttled", impl.hits.Load(), req)
	}
}
