package benchmarks

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2/registry"
	"github.com/go-kratos/kratos/v2/selector"
	kp2c "github.com/go-kratos/kratos/v2/selector/p2c"
	krandom "github.com/go-kratos/kratos/v2/selector/random"
	kwrr "github.com/go-kratos/kratos/v2/selector/wrr"
	_ "github.com/zeromicro/go-zero/zrpc" // registers go-zero's p2c_ewma balancer
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/resolver"

	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
)

// Pick + Done per policy: one call picked and handed back at once, the
// per-call cost a balancer adds. Each balancer is built once, outside the
// loop, over n endpoints, as a client would.
//
// Peers: kratos' selectors (Select then done) through their public API;
// grpc-go's round_robin and go-zero's p2c_ewma through grpc's balancer
// registry (grpcPicker below): their types are unexported (go-zero's live
// in zrpc/internal, which Go forbids importing from another module), but
// their builders are registered by name, so the real balancer is built
// over a stand-in ClientConn whose SubConns report READY at once, and its
// picker's Pick and Done are measured as a gRPC channel would call them,
// without the RPC around them.

type lbCase struct {
	name  string
	setup func(n int) (op func(), done func())
}

func bulwarkLB(p func() lb.Policy) func(int) (func(), func()) {
	return func(n int) (func(), func()) {
		eps := make([]lb.Endpoint, n)
		for i := range eps {
			eps[i] = lb.Endpoint{Addr: "10.0.0." + strconv.Itoa(i+1) + ":80", Weight: 1 + i%3}
		}
		b := lb.New(lb.Config{Endpoints: eps, Policy: p()})
		return func() {
			t, err := b.Pick()
			if err != nil {
				panic(err)
			}
			b.Done(t, nil)
		}, func() { b.Close() }
	}
}

func kratosLB(build func() selector.Selector) func(int) (func(), func()) {
	return func(n int) (func(), func()) {
		s := build()
		nodes := make([]selector.Node, n)
		for i := range nodes {
			addr := "10.0.0." + strconv.Itoa(i+1) + ":80"
			nodes[i] = selector.NewNode("http", addr, &registry.ServiceInstance{
				ID: addr, Name: "svc", Endpoints: []string{"http://" + addr},
				Metadata: map[string]string{"weight": strconv.Itoa(1 + i%3)},
			})
		}
		s.Apply(nodes)
		ctx := context.Background()
		return func() {
			_, done, err := s.Select(ctx)
			if err != nil {
				panic(err)
			}
			done(ctx, selector.DoneInfo{})
		}, func() {}
	}
}

var lbCases = []lbCase{
	{"bulwark-roundrobin", bulwarkLB(lb.RoundRobin)},
	{"bulwark-weightedroundrobin", bulwarkLB(lb.WeightedRoundRobin)},
	{"bulwark-random", bulwarkLB(lb.Random)},
	{"bulwark-leastrequest", bulwarkLB(lb.LeastRequest)},
	{"bulwark-p2c", bulwarkLB(func() lb.Policy { return lb.P2C(lb.P2CConfig{}) })},
	{"bulwark-ringhash", bulwarkLB(func() lb.Policy { return lb.RingHash(lb.HashConfig{}) })},
	{"kratos-p2c", kratosLB(func() selector.Selector { return kp2c.New() })},
	{"kratos-wrr", kratosLB(func() selector.Selector { return kwrr.New() })},
	{"kratos-random", kratosLB(func() selector.Selector { return krandom.New() })},
	{"grpc-roundrobin", grpcPicker(roundrobin.Name)},
	{"gozero-p2c", grpcPicker("p2c_ewma")},
}

// grpcPicker builds the gRPC balancer registered under name over n
// addresses and returns a Pick + Done of the picker it settles on.
func grpcPicker(name string) func(int) (func(), func()) {
	return func(n int) (func(), func()) {
		builder := balancer.Get(name)
		if builder == nil {
			panic("no gRPC balancer " + name)
		}
		cc := &pickerCC{}
		bal := builder.Build(cc, balancer.BuildOptions{})
		st := resolver.State{}
		for i := range n {
			addr := resolver.Address{Addr: "10.0.0." + strconv.Itoa(i+1) + ":80"}
			st.Addresses = append(st.Addresses, addr)
			st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
		}
		if err := bal.UpdateClientConnState(balancer.ClientConnState{ResolverState: st}); err != nil {
			panic(err)
		}
		cc.drain()
		if cc.state.ConnectivityState != connectivity.Ready {
			panic(name + " did not become READY: " + cc.state.ConnectivityState.String())
		}
		picker := cc.state.Picker
		info := balancer.PickInfo{FullMethodName: "/svc/Method", Ctx: context.Background()}
		// Every SubConn must be in rotation, or the balancer is not
		// spreading over n endpoints.
		seen := map[balancer.SubConn]bool{}
		for range 64 * n {
			r, err := picker.Pick(info)
			if err != nil {
				panic(err)
			}
			seen[r.SubConn] = true
			if r.Done != nil {
				r.Done(balancer.DoneInfo{})
			}
		}
		if len(seen) != n {
			panic(name + " picks " + strconv.Itoa(len(seen)) + " of " + strconv.Itoa(n) + " SubConns")
		}
		return func() {
			r, err := picker.Pick(info)
			if err != nil {
				panic(err)
			}
			if r.Done != nil {
				r.Done(balancer.DoneInfo{})
			}
		}, bal.Close
	}
}

// pickerCC stands in for a gRPC ClientConn: it hands out SubConns that
// become READY as soon as they are asked to connect, and keeps the last
// state the balancer published. Callbacks into the balancer are queued and
// run by drain, one at a time, as grpc's serializer runs them.
type pickerCC struct {
	balancer.ClientConn // nil: methods not listed here are never called
	state               balancer.State
	queue               []func()
}

func (cc *pickerCC) drain() {
	for len(cc.queue) > 0 {
		f := cc.queue[0]
		cc.queue = cc.queue[1:]
		f()
	}
}

func (cc *pickerCC) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	return &pickerSC{cc: cc, listener: opts.StateListener}, nil
}
func (cc *pickerCC) UpdateState(s balancer.State)                         { cc.state = s }
func (cc *pickerCC) ResolveNow(resolver.ResolveNowOptions)                {}
func (cc *pickerCC) RemoveSubConn(sc balancer.SubConn)                    { sc.Shutdown() }
func (cc *pickerCC) Target() string                                       { return "bench:///svc" }
func (cc *pickerCC) MetricsRecorder() estats.MetricsRecorder              { return noMetrics{} }
func (cc *pickerCC) UpdateAddresses(balancer.SubConn, []resolver.Address) {}

type pickerSC struct {
	balancer.SubConn // nil: methods not listed here are never called
	cc               *pickerCC
	listener         func(balancer.SubConnState)
	connected        bool
}

func (sc *pickerSC) Connect() {
	if sc.connected {
		return
	}
	sc.connected = true
	sc.cc.queue = append(sc.cc.queue,
		func() { sc.listener(balancer.SubConnState{ConnectivityState: connectivity.Connecting}) },
		func() { sc.listener(balancer.SubConnState{ConnectivityState: connectivity.Ready}) })
}
func (sc *pickerSC) Shutdown() {
	sc.cc.queue = append(sc.cc.queue, func() { sc.listener(balancer.SubConnState{ConnectivityState: connectivity.Shutdown}) })
}
func (sc *pickerSC) RegisterHealthListener(l func(balancer.SubConnState)) {
	sc.cc.queue = append(sc.cc.queue, func() { l(balancer.SubConnState{ConnectivityState: connectivity.Ready}) })
}
func (sc *pickerSC) UpdateAddresses([]resolver.Address) {}

// noMetrics discards what a balancer records.
type noMetrics struct {
	estats.UnimplementedMetricsRecorder
}

// reportCPU adds a cpu-ns/op metric: the process's CPU time over the
// benchmark divided by its operations. On a shared machine, where ns/op
// (wall time) includes the time other processes held the CPU, it shows
// what an operation costs.
func reportCPU(b *testing.B, run func()) {
	start := processCPU()
	run()
	if end := processCPU(); start >= 0 && end >= 0 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkLBPickDone(b *testing.B) {
	for _, n := range []int{8, 64} {
		for _, c := range lbCases {
			b.Run(c.name+"/endpoints="+strconv.Itoa(n), func(b *testing.B) {
				op, done := c.setup(n)
				defer done()
				b.ReportAllocs()
				reportCPU(b, func() {
					for b.Loop() {
						op()
					}
				})
			})
		}
	}
}

func BenchmarkLBPickDoneParallel(b *testing.B) {
	for _, c := range lbCases {
		b.Run(c.name+"/endpoints=8", func(b *testing.B) {
			op, done := c.setup(8)
			defer done()
			b.ReportAllocs()
			reportCPU(b, func() {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						op()
					}
				})
			})
		})
	}
}

// BenchmarkLBRetryElsewhere: a GET whose first attempt fails with a
// transport error and whose retry succeeds, through retry over lb (3
// endpoints, ejection off) over an in-memory transport: the cost of a
// retried call, with lb's previous-hosts rule (the record lb hands back
// with the failure, the retry's pick passing over the failed endpoint).
// A call whose first attempt succeeds pays nothing for the rule:
// BenchmarkStackLayer/bulwark-lb and BenchmarkLBPickDone show that.
func BenchmarkLBRetryElsewhere(b *testing.B) {
	eps := []lb.Endpoint{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}, {Addr: "10.0.0.3:80"}}
	for _, pc := range []struct {
		name string
		p    lb.Policy
	}{{"bulwark-p2c", lb.P2C(lb.P2CConfig{})}, {"bulwark-roundrobin", lb.RoundRobin()}} {
		b.Run(pc.name, func(b *testing.B) {
			bal := lb.New(lb.Config{Endpoints: eps, Policy: pc.p,
				Outlier: lb.OutlierConfig{ConsecutiveFailures: -1, FailureRate: -1}})
			defer bal.Close()
			p := retry.New(retry.Config{MaxAttempts: 2, BaseDelay: time.Nanosecond, Budget: retry.UnlimitedBudget()})
			defer p.Close()
			stackGets(b, p.RoundTripper(bal.RoundTripper(failFirstTransport{})))
		})
	}
}

// failFirstTransport fails each call's first attempt with a transport
// error and answers the others as retryCannedTransport does.
type failFirstTransport struct{}

var errFirstAttempt = errors.New("first attempt fails")

func (failFirstTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if retry.Attempt(req.Context()) == 1 {
		return nil, errFirstAttempt
	}
	return retryCannedTransport{}.RoundTrip(req)
}
