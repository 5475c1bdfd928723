// Command grpc shows bulwark's gRPC stacks over three instances of a
// service on 127.0.0.1.
//
// Each server runs bulwark's server interceptors: a maximum deadline, load
// shedding, a cap on calls in flight, and fault injection (package chaos)
// that the demo uses to break one instance. The client balances over the
// three with package lb through grpcx/balancer (dialling
// "bulwark:///greeter"), with outlier ejection and a breaker per instance,
// under a default deadline, retries and a breaker per method.
//
// The demo sends 30 calls while instance b answers every call with
// Unavailable, then stops instance c and sends 30 more. It prints how many
// succeeded and which instance served them, and exits non-zero if one
// failed.
//
//	go run ./examples/grpc
//
// The README's gRPC snippet is the region between the snippet markers
// below; a test at the repository root keeps the two identical.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/grpcx"
	"github.com/bulwark-go/bulwark/grpcx/balancer"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/timeout"
)

// snippet:start

// newServer returns a gRPC server behind bulwark's server interceptors,
// outermost first, with a function that releases them after the server
// has stopped. inj injects faults, innermost, where the service would fail.
func newServer(inj *chaos.Injector) (*grpc.Server, func()) {
	maxDeadline := timeout.New(timeout.Config{Timeout: 5 * time.Second}) // no call runs longer
	shed := degrade.NewShedder(degrade.ShedderConfig{})                  // sheds low criticality first
	inFlight := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 100})
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(
		grpcx.UnaryServerTimeout(maxDeadline),  // DeadlineExceeded past the maximum
		grpcx.UnaryServerShed(shed),            // Unavailable with grpc-retry-pushback-ms
		grpcx.UnaryServerConcurrency(inFlight), // Unavailable when 100 calls are in flight
		grpcx.UnaryServerChaos(inj),
	))
	return srv, func() { maxDeadline.Close(); shed.Close(); inFlight.Close() }
}

// dial connects to the instances at addrs through bulwark's gRPC client
// stack and returns the connection with a function that closes it and
// releases the stack.
func dial(service string, addrs []string) (*grpc.ClientConn, func(), error) {
	eps := make([]lb.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = lb.Endpoint{Addr: a}
	}
	perInstance := breaker.NewSet(breaker.SetConfig{})
	bal := lb.New(lb.Config{Endpoints: eps, Breakers: perInstance}) // round robin, ejection after 5 failures in a row
	unregister, err := balancer.Register(service, bal)              // serves "bulwark:///" + service
	if err != nil {
		bal.Close()
		perInstance.Close()
		return nil, nil, err
	}
	deadline := timeout.New(timeout.Config{Timeout: 2 * time.Second}) // for calls without a deadline
	policy := retry.New(retry.Config{})                               // 3 attempts, backoff + jitter, a retry budget
	methods := breaker.NewSet(breaker.SetConfig{})                    // one breaker per full method name
	conn, err := grpc.NewClient("bulwark:///"+service,
		// Plaintext, for this loopback demo; use TLS credentials across a network.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(
			grpcx.UnaryClientTimeout(deadline),
			grpcx.UnaryClientRetry(policy),    // each attempt is balanced afresh
			grpcx.UnaryClientBreaker(methods), // rejections are codes.Unavailable
		),
	)
	release := func() {
		unregister()
		for _, c := range []interface{ Close() error }{bal, perInstance, deadline, policy, methods} {
			c.Close()
		}
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return conn, func() { conn.Close(); release() }, nil
}

// snippet:end

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

// instance is one of the service's servers.
type instance struct {
	name    string
	srv     *grpc.Server
	release func()
	inj     *chaos.Injector
	served  atomic.Int64
	stopped bool
}

func (in *instance) stop() {
	if !in.stopped {
		in.stopped = true
		in.srv.Stop()
		in.release()
		in.inj.Close()
	}
}

func run() error {
	var ins []*instance
	defer func() {
		for _, in := range ins {
			in.stop()
		}
	}()
	var addrs []string
	for _, name := range []string{"a", "b", "c"} {
		in := &instance{name: name, inj: chaos.New(chaos.Config{Name: name})}
		in.srv, in.release = newServer(in.inj)
		hs := health.NewServer()
		healthpb.RegisterHealthServer(in.srv, counting{hs, &in.served})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			in.release()
			in.inj.Close()
			return err
		}
		ins = append(ins, in)
		addrs = append(addrs, ln.Addr().String())
		go in.srv.Serve(ln)
	}
	// Instance b fails every call with Unavailable.
	if err := ins[1].inj.SetFaults([]chaos.Fault{{Name: "b down", AllTraffic: true, Action: chaos.Error}}); err != nil {
		return err
	}
	ins[1].inj.Enable()

	conn, closeConn, err := dial("greeter", addrs)
	if err != nil {
		return err
	}
	defer closeConn()
	client := healthpb.NewHealthClient(conn)

	send := func(label string) error {
		ok := 0
		for range 30 {
			if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err == nil {
				ok++
			} else {
				fmt.Printf("  call failed: %v\n", err)
			}
		}
		fmt.Printf("%-34s %2d/30 ok; served so far: a=%d b=%d c=%d\n", label, ok,
			ins[0].served.Load(), ins[1].served.Load(), ins[2].served.Load())
		if ok != 30 {
			return fmt.Errorf("%s: %d of 30 calls failed", label, 30-ok)
		}
		return nil
	}
	if err := send("b fails every call:"); err != nil {
		return err
	}
	ins[2].stop()
	if err := send("b fails every call, c stopped:"); err != nil {
		return err
	}
	if ins[1].served.Load() != 0 {
		return fmt.Errorf("instance b served %d calls through its fault", ins[1].served.Load())
	}
	fmt.Println("every call succeeded: a call that failed on b was retried on another instance, and none went to c once it stopped")
	return nil
}

// counting counts the calls an instance's health service really served
// (past the fault injector).
type counting struct {
	healthpb.HealthServer
	n *atomic.Int64
}

func (c counting) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	c.n.Add(1)
	return c.HealthServer.Check(ctx, req)
}
