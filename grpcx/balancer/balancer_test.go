package balancer_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/grpcx"
	"github.com/bulwark-go/bulwark/grpcx/balancer"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is grpc-go's interop TestService on a real loopback TCP port,
// counting its calls.
type server struct {
	testpb.UnimplementedTestServiceServer
	gs    *grpc.Server
	addr  string
	calls atomic.Int64
	fail  atomic.Bool
	// pushback, when failing, is sent as grpc-retry-pushback-ms; slow
	// makes every call take 5 ms (simulated work).
	pushback string
	slow     bool
	hs       *health.Server
}

func (s *server) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.calls.Add(1)
	if s.slow {
		time.Sleep(5 * time.Millisecond)
	}
	if s.fail.Load() {
		if s.pushback != "" {
			grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", s.pushback))
		}
		return nil, status.Error(codes.Unavailable, "failing")
	}
	return &testpb.Empty{}, nil
}

// StreamingOutputCall fails at once, before sending anything, when the
// server is failing; else it sends one response.
func (s *server) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	s.calls.Add(1)
	if s.fail.Load() {
		return status.Error(codes.Unavailable, "failing")
	}
	return st.Send(&testpb.StreamingOutputCallResponse{})
}

func start(t *testing.T) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{gs: grpc.NewServer(), addr: lis.Addr().String(), hs: health.NewServer()}
	testpb.RegisterTestServiceServer(s.gs, s)
	healthpb.RegisterHealthServer(s.gs, s.hs)
	go s.gs.Serve(lis)
	t.Cleanup(s.gs.Stop)
	return s
}

func setup(t *testing.T, service string, cfg lb.Config, opts ...grpc.DialOption) ([]*server, *lb.Balancer, testpb.TestServiceClient) {
	t.Helper()
	srvs := []*server{start(t), start(t), start(t)}
	for _, s := range srvs {
		cfg.Endpoints = append(cfg.Endpoints, lb.Endpoint{Addr: s.addr})
	}
	b := lb.New(cfg)
	unregister, err := balancer.Register(service, b)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("bulwark:///"+service, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDisableRetry(),
	}, opts...)...)
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

func TestBalancesOverThreeServersWithOneKilled(t *testing.T) {
	policy := retry.New(retry.Config{MaxAttempts: 3, Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 1})})
	defer policy.Close()
	srvs, b, client := setup(t, "killed", lb.Config{Policy: lb.RoundRobin()},
		grpc.WithUnaryInterceptor(grpcx.UnaryClientRetry(policy)))
	ctx := context.Background()
	call := func(i int) {
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("call %d lost: %v", i, err)
		}
	}
	warmUp(t, srvs, func() { call(-1) })
	start := [3]int64{srvs[0].calls.Load(), srvs[1].calls.Load(), srvs[2].calls.Load()}
	for i := range 300 {
		call(i)
	}
	for i, s := range srvs {
		if n := s.calls.Load() - start[i]; n != 100 {
			t.Fatalf("server %d got %d of 300 round-robin calls, want 100", i, n)
		}
	}
	srvs[1].gs.Stop() // killed mid-test
	before := [3]int64{srvs[0].calls.Load(), srvs[1].calls.Load(), srvs[2].calls.Load()}
	for i := range 300 {
		call(300 + i)
	}
	if n := srvs[1].calls.Load(); n != before[1] {
		t.Fatalf("killed server served %d calls", n-before[1])
	}
	for _, i := range []int{0, 2} {
		if d := srvs[i].calls.Load() - before[i]; d < 100 {
			t.Fatalf("survivor %d got %d of 300 calls after the kill", i, d)
		}
	}
	if st := stateOf(b, srvs[1].addr); st == lb.Healthy {
		t.Fatalf("killed server still healthy in lb")
	}
}

// warmUp calls until every server has served a call, so that every
// connection is ready (until then a call may go to another endpoint than
// the policy's choice).
func warmUp(t *testing.T, srvs []*server, call func()) {
	t.Helper()
	for range 1000 {
		ready := true
		for _, s := range srvs {
			ready = ready && s.calls.Load() > 0
		}
		if ready {
			return
		}
		call()
	}
	t.Fatal("the connections never all became ready")
}

func stateOf(b *lb.Balancer, addr string) lb.State {
	for _, e := range b.Endpoints() {
		if e.Endpoint.Addr == addr {
			return e.State
		}
	}
	return 255
}

func TestFailingServerIsEjected(t *testing.T) {
	srvs, b, client := setup(t, "failing", lb.Config{Policy: lb.RoundRobin()})
	ctx := context.Background()
	call := func() error {
		_, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true))
		return err
	}
	warmUp(t, srvs, func() {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	})
	srvs[0].fail.Store(true)
	failures := 0
	for range 200 {
		if call() != nil {
			failures++
		}
	}
	// Five failures in a row eject it; no call fails after that.
	if failures != lb.DefaultConsecutiveFailures {
		t.Fatalf("%d calls failed, want %d before the ejection", failures, lb.DefaultConsecutiveFailures)
	}
	if st := stateOf(b, srvs[0].addr); st != lb.Ejected {
		t.Fatalf("failing server is %v, want ejected", st)
	}
}

func TestUpdateReachesTheClientConn(t *testing.T) {
	srvs, b, client := setup(t, "update", lb.Config{Policy: lb.RoundRobin()})
	ctx := context.Background()
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	if err := b.Update([]lb.Endpoint{{Addr: srvs[2].addr}}); err != nil {
		t.Fatal(err)
	}
	before := srvs[2].calls.Load()
	for range 50 {
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	if d := srvs[2].calls.Load() - before; d != 50 {
		t.Fatalf("after the update the remaining server got %d of 50 calls", d)
	}
}

func TestHashHeaderIsSticky(t *testing.T) {
	srvs := []*server{start(t), start(t), start(t)}
	var eps []lb.Endpoint
	for _, s := range srvs {
		eps = append(eps, lb.Endpoint{Addr: s.addr})
	}
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RingHash(lb.HashConfig{})})
	defer b.Close()
	unregister, err := balancer.Register("sticky", b, balancer.Options{HashHeader: "x-user"})
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	conn, err := grpc.NewClient("bulwark:///sticky", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	i := 0
	warmUp(t, srvs, func() { // with many keys
		i++
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", "warm-"+strconv.Itoa(i))
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	})
	before := [3]int64{srvs[0].calls.Load(), srvs[1].calls.Load(), srvs[2].calls.Load()}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", "alice")
	for range 30 {
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	var got []int64
	for i, s := range srvs {
		if d := s.calls.Load() - before[i]; d > 0 {
			got = append(got, d)
		}
	}
	if len(got) != 1 || got[0] != 30 {
		t.Fatalf("alice's 30 calls spread as %v, want all on one server", got)
	}
}

func TestRegisterErrorsAndUnknownService(t *testing.T) {
	b := lb.New(lb.Config{})
	defer b.Close()
	if _, err := balancer.Register("", b); err == nil {
		t.Fatal("empty service registered")
	}
	un, err := balancer.Register("dup", b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := balancer.Register("dup", b); err == nil {
		t.Fatal("duplicate registered")
	}
	un()
	if un2, err := balancer.Register("dup", b); err != nil {
		t.Fatalf("after unregister: %v", err)
	} else {
		un2()
	}
	conn, err := grpc.NewClient("bulwark:///nobody", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = testpb.NewTestServiceClient(conn).EmptyCall(context.Background(), &testpb.Empty{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no balancer registered") {
		t.Fatalf("call to an unregistered service: %v", err)
	}
}

func TestHealthChecker(t *testing.T) {
	s := start(t)
	ep := lb.Endpoint{Addr: s.addr}
	hc := balancer.HealthChecker{}
	if err := hc.Check(context.Background(), ep); err != nil {
		t.Fatalf("serving server: %v", err)
	}
	s.hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := hc.Check(context.Background(), ep); err == nil {
		t.Fatal("NOT_SERVING passed")
	}
	s.gs.Stop()
	if err := hc.Check(context.Background(), ep); err == nil {
		t.Fatal("stopped server passed")
	}
}

func TestClassifyOverrideAppliesToGRPC(t *testing.T) {
	// Unavailable judged neutral: the failing server is never ejected.
	neutral := func(context.Context, error) bulwark.Outcome { return bulwark.Neutral }
	srvs, b, client := setup(t, "classify", lb.Config{Policy: lb.RoundRobin(), Classify: neutral})
	warmUp(t, srvs, func() { client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)) })
	srvs[0].fail.Store(true)
	for range 60 {
		client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true))
	}
	if st := stateOf(b, srvs[0].addr); st != lb.Healthy {
		t.Fatalf("with Unavailable judged neutral the server is %v, want healthy", st)
	}
}

func TestPushbackTrailerSteersP2C(t *testing.T) {
	srvs := []*server{start(t), start(t)}
	srvs[0].slow = true // 5 ms a call
	srvs[1].pushback = "30000"
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: srvs[0].addr}, {Addr: srvs[1].addr}},
		Policy: lb.P2C(lb.P2CConfig{Penalty: time.Nanosecond}), Outlier: lb.OutlierConfig{ConsecutiveFailures: -1}})
	defer b.Close()
	unregister, err := balancer.Register("pushback", b)
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	conn, err := grpc.NewClient("bulwark:///pushback", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	warmUp(t, srvs, func() { client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)) })
	srvs[1].fail.Store(true)
	tried := srvs[1].calls.Load()
	for srvs[1].calls.Load() == tried { // until P2C has tried it failing once
		client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true))
	}
	// It asked for 30 s; with a 1 ns penalty alone its fast failures
	// would cost less than the slow server's 5 ms, and it would win.
	before := srvs[1].calls.Load()
	for range 30 {
		if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("a call reached the server that asked for 30 s: %v", err)
		}
	}
	if n := srvs[1].calls.Load() - before; n != 0 {
		t.Fatalf("the server that pushed back got %d calls", n)
	}
}

// TestRetryGoesToAnotherEndpoint: grpcx's retry interceptor over the
// balancer sends each retry of a call to an endpoint that none of the
// call's attempts went to. With RingHash a key pins its calls to one
// server; when that server fails, each call's retry goes to the next
// server of the ring, and no call is lost (without the rule all three
// attempts went to the failing server).
func TestRetryGoesToAnotherEndpoint(t *testing.T) {
	retriesAvoidTheKeysServer(t, "avoid", func(p *retry.Policy) grpc.DialOption {
		return grpc.WithChainUnaryInterceptor(grpcx.UnaryClientRetry(p))
	}, func(ctx context.Context, client testpb.TestServiceClient) error {
		_, err := client.EmptyCall(ctx, &testpb.Empty{})
		return err
	})
}

// TestStreamRetryGoesToAnotherEndpoint: the same for streams.
// grpcx.StreamClientRetry keeps the same record of a stream's endpoints
// as the unary interceptor keeps of a call's, and each stream's retry is
// opened on the next server of the ring (without the record every attempt
// went back to the failing server).
func TestStreamRetryGoesToAnotherEndpoint(t *testing.T) {
	retriesAvoidTheKeysServer(t, "avoid-stream", func(p *retry.Policy) grpc.DialOption {
		return grpc.WithChainStreamInterceptor(grpcx.StreamClientRetry(p))
	}, func(ctx context.Context, client testpb.TestServiceClient) error {
		st, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
		if err != nil {
			return err
		}
		if _, err := st.Recv(); err != nil {
			return err
		}
		if _, err := st.Recv(); err != io.EOF {
			return fmt.Errorf("second Recv: %v, want EOF", err)
		}
		return nil
	})
}

// retriesAvoidTheKeysServer pins a key to one of three servers with
// RingHash, makes that server fail, and checks that each of 10 calls
// (call, through the retry interceptor that interceptor installs) reaches
// it once and is served by its retry elsewhere.
func retriesAvoidTheKeysServer(t *testing.T, name string, interceptor func(*retry.Policy) grpc.DialOption,
	call func(context.Context, testpb.TestServiceClient) error) {
	t.Helper()
	srvs := []*server{start(t), start(t), start(t)}
	var eps []lb.Endpoint
	for _, s := range srvs {
		eps = append(eps, lb.Endpoint{Addr: s.addr})
	}
	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RingHash(lb.HashConfig{}),
		Outlier: lb.OutlierConfig{ConsecutiveFailures: -1, FailureRate: -1}})
	defer b.Close()
	unregister, err := balancer.Register(name, b, balancer.Options{HashHeader: "x-user"})
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	policy := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Microsecond, Budget: retry.UnlimitedBudget()})
	defer policy.Close()
	conn, err := grpc.NewClient("bulwark:///"+name, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(), interceptor(policy))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	warmUp(t, srvs, func() {
		if err := call(context.Background(), client); err != nil {
			t.Fatal(err)
		}
	})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", "alice")
	before := [3]int64{srvs[0].calls.Load(), srvs[1].calls.Load(), srvs[2].calls.Load()}
	if err := call(ctx, client); err != nil {
		t.Fatal(err)
	}
	home := -1
	for i, s := range srvs {
		if s.calls.Load() > before[i] {
			home = i
		}
	}
	srvs[home].fail.Store(true)
	for i, s := range srvs {
		before[i] = s.calls.Load()
	}
	const calls = 10
	for range calls {
		if err := call(ctx, client); err != nil {
			t.Fatalf("call lost: %v (server calls %d %d %d)", err, srvs[0].calls.Load()-before[0], srvs[1].calls.Load()-before[1], srvs[2].calls.Load()-before[2])
		}
	}
	var got [3]int64
	for i, s := range srvs {
		got[i] = s.calls.Load() - before[i]
	}
	if got[home] != calls {
		t.Fatalf("the failing server got %d attempts for %d calls (all %v): a retry went back to it", got[home], calls, got)
	}
	if got[0]+got[1]+got[2] != 2*calls {
		t.Fatalf("attempts %v, want %d: each call's first to the key's server, its retry to the next", got, 2*calls)
	}
}
