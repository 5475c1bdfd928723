package benchmarks

import (
	"context"
	"strconv"
	"testing"

	"github.com/go-kratos/kratos/v2/registry"
	"github.com/go-kratos/kratos/v2/selector"
	kp2c "github.com/go-kratos/kratos/v2/selector/p2c"
	krandom "github.com/go-kratos/kratos/v2/selector/random"
	kwrr "github.com/go-kratos/kratos/v2/selector/wrr"

	"github.com/bulwark-go/bulwark/lb"
)

// Pick + Done per policy: one call picked and handed back at once, the
// per-call cost a balancer adds. Each balancer is built once, outside the
// loop, over n endpoints, as a client would.
//
// Peers driven directly: kratos' selectors (Select then done), the only
// ones with a public pick API. grpc-go's round-robin picker is unexported
// (reachable only through a ClientConn, where a pick's cost drowns in the
// RPC's) and go-zero's p2c lives in zrpc/internal/balancer/p2c, which Go
// forbids importing from another module: neither can be driven alone.

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
