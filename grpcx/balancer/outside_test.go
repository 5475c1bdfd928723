package balancer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/grpcx"
	"github.com/bulwark-go/bulwark/grpcx/balancer"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
)

type oSrv struct {
	testpb.UnimplementedTestServiceServer
	gs      *grpc.Server
	addr    string
	calls   atomic.Int64
	fail    atomic.Bool
	block   chan struct{}
	arrived chan struct{}
}

func (s *oSrv) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.calls.Add(1)
	if s.block != nil {
		s.arrived <- struct{}{}
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.fail.Load() {
		return nil, status.Error(codes.Unavailable, "failing")
	}
	return &testpb.Empty{}, nil
}

func (s *oSrv) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	s.calls.Add(1)
	for range 3 {
		if err := st.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	if s.fail.Load() {
		return status.Error(codes.Unavailable, "failing")
	}
	return nil
}

func oStartSrv(t *testing.T) *oSrv {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// WaitForHandlers: Stop returns once no handler runs, so that a test
	// that stops a server reads its final count of calls (a call
	// dispatched just before Stop could otherwise count itself after).
	s := &oSrv{gs: grpc.NewServer(grpc.WaitForHandlers(true)), addr: lis.Addr().String()}
	testpb.RegisterTestServiceServer(s.gs, s)
	go s.gs.Serve(lis)
	t.Cleanup(s.gs.Stop)
	return s
}

var (
	oSvc   atomic.Int64
	oNames sync.Map // *lb.Balancer -> service name
)

func serviceOf(t *testing.T, b *lb.Balancer) string {
	name, ok := oNames.Load(b)
	if !ok {
		t.Fatal("balancer not registered by oSetup")
	}
	return name.(string)
}

func oSetup(t *testing.T, cfg lb.Config, n int, opts ...grpc.DialOption) ([]*oSrv, *lb.Balancer, testpb.TestServiceClient) {
	t.Helper()
	var srvs []*oSrv
	for range n {
		s := oStartSrv(t)
		srvs = append(srvs, s)
		cfg.Endpoints = append(cfg.Endpoints, lb.Endpoint{Addr: s.addr})
	}
	b := lb.New(cfg)
	name := fmt.Sprint("outside-", oSvc.Add(1))
	unregister, err := balancer.Register(name, b)
	if err != nil {
		t.Fatal(err)
	}
	oNames.Store(b, name)
	conn, err := grpc.NewClient("bulwark:///"+name, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDisableRetry()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		unregister()
		b.Close()
	})
	return srvs, b, testpb.NewTestServiceClient(conn)
}

// oWarm calls until every server has served a call, so that every
// SubConn is READY.
func oWarm(t *testing.T, srvs []*oSrv, client testpb.TestServiceClient) {
	t.Helper()
	for range 2000 {
		ready := true
		for _, s := range srvs {
			ready = ready && s.calls.Load() > 0
		}
		if ready {
			return
		}
		if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("connections never ready")
}

func oState(b *lb.Balancer, addr string) lb.EndpointState {
	for _, e := range b.Endpoints() {
		if e.Endpoint.Addr == addr {
			return e
		}
	}
	return lb.EndpointState{State: 255}
}

// Three real servers, four concurrent callers, retry above; one server
// killed mid-test: no call lost, and it leaves the rotation.
func TestOutsideKillOneOfThreeMidTestConcurrent(t *testing.T) {
	pol := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Millisecond, Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 1})})
	defer pol.Close()
	srvs, b, client := oSetup(t, lb.Config{Policy: lb.P2C(lb.P2CConfig{})}, 3, grpc.WithUnaryInterceptor(grpcx.UnaryClientRetry(pol)))
	// Connect every SubConn first.
	ctx := context.Background()
	oWarm(t, srvs, client)
	var wg sync.WaitGroup
	var lost atomic.Int64
	var firstErr atomic.Value
	var done atomic.Int64
	kill := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for range 200 {
				c, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := client.EmptyCall(c, &testpb.Empty{})
				cancel()
				if err != nil {
					lost.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				if done.Add(1) == 300 {
					close(kill)
				}
			}
		})
	}
	<-kill
	srvs[1].gs.Stop()
	killedAt := srvs[1].calls.Load()
	wg.Wait()
	if n := lost.Load(); n != 0 {
		t.Fatalf("%d of 800 calls lost: %v", n, firstErr.Load())
	}
	if srvs[1].calls.Load() != killedAt {
		t.Fatalf("killed server served calls")
	}
	if st := oState(b, srvs[1].addr).State; st == lb.Healthy {
		t.Fatalf("killed server still healthy")
	}
}

func TestOutsideCancellationNeutralAndSupersededFailure(t *testing.T) {
	srvs, b, client := oSetup(t, lb.Config{Outlier: lb.OutlierConfig{ConsecutiveFailures: -1}}, 1)
	srvs[0].block = make(chan struct{})
	srvs[0].arrived = make(chan struct{})
	ctx := context.Background()
	c, cancel := context.WithCancelCause(ctx)
	go func() {
		<-srvs[0].arrived
		cancel(errors.New("caller left"))
	}()
	_, err := client.EmptyCall(c, &testpb.Empty{}, grpc.WaitForReady(true))
	if status.Code(err) != codes.Canceled {
		t.Fatalf("err %v", err)
	}
	st := oState(b, srvs[0].addr)
	if st.Failures != 0 || st.Successes != 0 {
		t.Fatalf("caller's cancellation recorded: %+v", st)
	}
	c, cancel = context.WithCancelCause(ctx)
	go func() {
		<-srvs[0].arrived
		cancel(bulwark.ErrSuperseded)
	}()
	_, _ = client.EmptyCall(c, &testpb.Empty{}, grpc.WaitForReady(true))
	if st := oState(b, srvs[0].addr); st.Failures != 1 {
		t.Fatalf("superseded call not a failure: %+v", st)
	}
	if st := oState(b, srvs[0].addr); st.InFlight != 0 {
		t.Fatalf("in flight %d", st.InFlight)
	}
}

func TestOutsideStreamOutcomeAndInFlight(t *testing.T) {
	srvs, b, client := oSetup(t, lb.Config{Policy: lb.LeastRequest(), Outlier: lb.OutlierConfig{ConsecutiveFailures: -1}}, 1)
	ctx := context.Background()
	run := func() error {
		st, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return err
		}
		for {
			if _, err := st.Recv(); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
		}
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	s := oState(b, srvs[0].addr)
	if s.Successes != 1 || s.InFlight != 0 {
		t.Fatalf("after a stream: %+v", s)
	}
	srvs[0].fail.Store(true)
	if err := run(); status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v", err)
	}
	s = oState(b, srvs[0].addr)
	if s.Failures != 1 || s.InFlight != 0 {
		t.Fatalf("after a failed stream: %+v", s)
	}
}

func TestOutsideEmptySetFailsFast(t *testing.T) {
	_, b, client := oSetup(t, lb.Config{}, 1)
	ctx := context.Background()
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(nil); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := client.EmptyCall(c, &testpb.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("empty set: %v, want Unavailable at once", err)
	}
}

func TestOutsideRegister(t *testing.T) {
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: "127.0.0.1:1"}}})
	defer b.Close()
	if _, err := balancer.Register("", b); err == nil {
		t.Error("empty service accepted")
	}
	if _, err := balancer.Register("x-outside", nil); err == nil {
		t.Error("nil balancer accepted")
	}
	un, err := balancer.Register("x-outside", b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := balancer.Register("x-outside", b); err == nil {
		t.Error("second registration accepted")
	}
	un()
	un() // idempotent?
	un2, err := balancer.Register("x-outside", b)
	if err != nil {
		t.Fatalf("re-register after unregister: %v", err)
	}
	un2()
	// Unknown service: the dial or the first RPC fails, it does not hang.
	conn, err := grpc.NewClient("bulwark:///nobody", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err == nil {
		defer conn.Close()
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = testpb.NewTestServiceClient(conn).EmptyCall(c, &testpb.Empty{})
		if err == nil || status.Code(err) == codes.DeadlineExceeded {
			t.Fatalf("unknown service: %v", err)
		}
	}
}

// Regression: with panic mode off (lb.Config.PanicThreshold < 0) and
// every endpoint ejected, lb.Pick fails with ErrNoEndpoints, but the gRPC
// picker fell back to any READY SubConn, so RPCs still reached the
// ejected servers. They now fail with Unavailable without being sent.
func TestPanicModeOffEveryEndpointEjectedFailsFast(t *testing.T) {
	srvs, b, client := oSetup(t, lb.Config{Policy: lb.RoundRobin(), PanicThreshold: -1,
		Outlier: lb.OutlierConfig{ConsecutiveFailures: 1, MaxEjectedFraction: 1}}, 2)
	ctx := context.Background()
	oWarm(t, srvs, client)
	srvs[0].fail.Store(true)
	srvs[1].fail.Store(true)
	for i := 0; oState(b, srvs[0].addr).State != lb.Ejected || oState(b, srvs[1].addr).State != lb.Ejected; i++ {
		if i > 100 {
			t.Fatal("never both ejected")
		}
		_, _ = client.EmptyCall(ctx, &testpb.Empty{})
	}
	before := srvs[0].calls.Load() + srvs[1].calls.Load()
	for range 10 {
		_, err := client.EmptyCall(ctx, &testpb.Empty{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err %v, want Unavailable", err)
		}
	}
	if n := srvs[0].calls.Load() + srvs[1].calls.Load() - before; n != 0 {
		t.Fatalf("%d RPCs reached ejected servers with panic mode off", n)
	}
}

// Regression: under grpcx/balancer an endpoint whose connection is not
// READY is lb.Unhealthy, but lb.Config.OnStateChange ("called when an
// endpoint changes state") was not told when a connection was lost or
// came back.
func TestOnStateChangeSeesConnectionLoss(t *testing.T) {
	evs := make(chan lb.StateChangeEvent, 64)
	srvs, _, client := oSetup(t, lb.Config{Policy: lb.RoundRobin(), OnStateChange: func(_ context.Context, ev lb.StateChangeEvent) {
		select {
		case evs <- ev:
		default:
		}
	}}, 2)
	oWarm(t, srvs, client)
	srvs[1].gs.Stop()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Endpoint.Addr == srvs[1].addr && ev.From == lb.Healthy && ev.To == lb.Unhealthy {
				if ev.Reason != "connection not ready" {
					t.Fatalf("reason %q", ev.Reason)
				}
				return
			}
		case <-timeout:
			t.Fatal("no state change for the lost connection")
		}
	}
}

// Regression: every ClientConn dialled to a service wrote the endpoints'
// reachability into the one shared lb.Balancer, the last writer winning:
// a second ClientConn marked every endpoint not ready while it connected,
// and one closed before it connected left them so for good, putting the
// balancer in panic mode (health and ejection ignored) for the first
// ClientConn, whose connections were fine.
func TestSecondClientConnDoesNotOverrideReachability(t *testing.T) {
	srvs, b, client := oSetup(t, lb.Config{Policy: lb.RoundRobin()}, 3)
	oWarm(t, srvs, client)
	for range 3 {
		conn, err := grpc.NewClient("bulwark:///"+serviceOf(t, b), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		conn.Connect()
		conn.Close()
	}
	for _, e := range b.Endpoints() {
		if e.State != lb.Healthy {
			t.Fatalf("%s is %v after another ClientConn came and went", e.Endpoint.Addr, e.State)
		}
	}
	if b.Panicking() {
		t.Fatal("panic mode after another ClientConn came and went")
	}
}

// The doc's advice for a ClientConn that disables service configs: with
// the "bulwark" policy as its default service config, lb still balances
// (without it, grpc-go falls back to pick_first, past lb).
func TestDisabledServiceConfigWithDefaultPolicyStillBalances(t *testing.T) {
	srvs, b, client := oSetup(t, lb.Config{Policy: lb.RoundRobin()}, 2, grpc.WithDisableServiceConfig(),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"bulwark":{}}]}`))
	oWarm(t, srvs, client)
	var sum int64
	for _, e := range b.Endpoints() {
		sum += e.Successes
	}
	if sum == 0 {
		t.Fatal("lb saw no call")
	}
}
