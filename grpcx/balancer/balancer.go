package balancer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/attributes"
	gbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/grpcx"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/pushback"
	"github.com/bulwark-go/bulwark/internal/tried"
	"github.com/bulwark-go/bulwark/lb"
)

// Name is the name of the load-balancing policy and the scheme of the
// resolver: targets look like "bulwark:///<service>".
const Name = "bulwark"

func init() {
	gbalancer.Register(builder{})
	resolver.Register(resolverBuilder{})
}

// Options configures how a registered balancer serves gRPC.
type Options struct {
	// HashHeader, if set, names the outgoing metadata key whose first
	// value is the RPC's hash key (lb.Balancer.PickKey), for lb.RingHash.
	// Default "": every RPC is picked with Pick.
	HashHeader string
}

type entry struct {
	b        *lb.Balancer
	opts     Options
	classify bulwark.Classifier // b's Config.Classify
}

var (
	mu       sync.Mutex
	services = map[string]*entry{}
)

// Register makes b the balancer of the ClientConns dialled with target
// "bulwark:///<service>" from now on. It returns a function that removes
// the registration (ClientConns already built keep b), or an error if
// service is empty, b is nil, or service is already registered.
func Register(service string, b *lb.Balancer, opts ...Options) (unregister func(), err error) {
	if service == "" || b == nil {
		return nil, errors.New("grpcx/balancer: Register needs a service name and a balancer")
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	e := &entry{b: b, opts: o, classify: bridge.LBClassifier(b)}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := services[service]; dup {
		return nil, fmt.Errorf("grpcx/balancer: service %q is already registered", service)
	}
	services[service] = e
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if services[service] == e {
			delete(services, service)
		}
	}, nil
}

func lookup(service string) *entry {
	mu.Lock()
	defer mu.Unlock()
	return services[service]
}

// ---- resolver

type attrKey struct{}

type resolverBuilder struct{}

func (resolverBuilder) Scheme() string { return Name }

func (resolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := strings.TrimPrefix(target.Endpoint(), "/")
	e := lookup(service)
	if e == nil {
		return nil, fmt.Errorf("grpcx/balancer: no balancer registered for service %q (call balancer.Register first)", service)
	}
	r := &res{cc: cc, e: e}
	sc := cc.ParseServiceConfig(`{"loadBalancingConfig":[{"` + Name + `":{}}]}`)
	if sc.Err != nil {
		return nil, sc.Err
	}
	r.sc = sc
	r.stop = bridge.LBWatch(e.b, r.push)
	r.push()
	return r, nil
}

type res struct {
	cc   resolver.ClientConn
	e    *entry
	sc   *serviceconfig.ParseResult
	stop func()
	mu   sync.Mutex // orders pushes
}

func (r *res) push() {
	r.mu.Lock()
	defer r.mu.Unlock()
	eps := r.e.b.Endpoints()
	addrs := make([]resolver.Address, len(eps))
	for i, ep := range eps {
		addrs[i] = resolver.Address{Addr: ep.Endpoint.Addr}
	}
	_ = r.cc.UpdateState(resolver.State{
		Addresses:     addrs,
		ServiceConfig: r.sc,
		Attributes:    attributes.New(attrKey{}, r.e),
	})
}

func (r *res) ResolveNow(resolver.ResolveNowOptions) {}

func (r *res) Close() { r.stop() }

// ---- balancer

type builder struct{}

func (builder) Name() string { return Name }

func (builder) Build(cc gbalancer.ClientConn, _ gbalancer.BuildOptions) gbalancer.Balancer {
	return &bal{cc: cc, subs: map[string]*sub{}}
}

type bal struct {
	cc gbalancer.ClientConn

	mu     sync.Mutex
	e      *entry
	subs   map[string]*sub
	closed bool
}

type sub struct {
	sc    gbalancer.SubConn
	addr  string
	state connectivity.State
	ready bool // counted READY in lb (bridge.LBConns)
}

// forgetLocked takes sb out of lb's count of SubConns.
func (b *bal) forgetLocked(sb *sub) {
	r := 0
	if sb.ready {
		r = -1
	}
	bridge.LBConns(b.e.b, sb.addr, -1, r)
}

var errNoBalancer = errors.New("grpcx/balancer: the " + Name + " policy needs the " + Name + ":/// resolver")

func (b *bal) UpdateClientConnState(s gbalancer.ClientConnState) error {
	e, _ := s.ResolverState.Attributes.Value(attrKey{}).(*entry)
	if e == nil {
		b.ResolverError(errNoBalancer)
		return gbalancer.ErrBadResolverState
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.e = e
	want := make(map[string]bool, len(s.ResolverState.Addresses))
	for _, a := range s.ResolverState.Addresses {
		want[a.Addr] = true
		if b.subs[a.Addr] != nil {
			continue
		}
		sb := &sub{addr: a.Addr, state: connectivity.Idle}
		sc, err := b.cc.NewSubConn([]resolver.Address{{Addr: a.Addr}}, gbalancer.NewSubConnOptions{
			StateListener: func(st gbalancer.SubConnState) { b.subState(sb, st) },
		})
		if err != nil {
			continue
		}
		sb.sc = sc
		b.subs[a.Addr] = sb
		bridge.LBConns(e.b, a.Addr, 1, 0)
		sc.Connect()
	}
	for addr, sb := range b.subs {
		if !want[addr] {
			sb.sc.Shutdown()
			delete(b.subs, addr)
			b.forgetLocked(sb)
		}
	}
	b.updateLocked()
	return nil
}

func (b *bal) subState(sb *sub, st gbalancer.SubConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.subs[sb.addr] != sb {
		return
	}
	sb.state = st.ConnectivityState
	if sb.state == connectivity.Idle {
		sb.sc.Connect()
	}
	if ready := sb.state == connectivity.Ready; ready != sb.ready {
		sb.ready = ready
		d := 1
		if !ready {
			d = -1
		}
		bridge.LBConns(b.e.b, sb.addr, 0, d)
	}
	b.updateLocked()
}

// updateLocked publishes a picker over the READY SubConns.
func (b *bal) updateLocked() {
	p := &picker{e: b.e, ready: map[string]gbalancer.SubConn{}}
	connecting := false
	for addr, sb := range b.subs {
		switch sb.state {
		case connectivity.Ready:
			p.ready[addr] = sb.sc
			p.list = append(p.list, sb.sc)
		case connectivity.Connecting, connectivity.Idle:
			connecting = true
		}
	}
	st := connectivity.Ready
	switch {
	case len(p.list) > 0:
	case connecting:
		st = connectivity.Connecting
	default:
		st = connectivity.TransientFailure
		p.err = status.Error(codes.Unavailable, "grpcx/balancer: no endpoint is reachable")
	}
	b.cc.UpdateState(gbalancer.State{ConnectivityState: st, Picker: p})
}

func (b *bal) ResolverError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.subs) > 0 {
		return
	}
	b.cc.UpdateState(gbalancer.State{ConnectivityState: connectivity.TransientFailure,
		Picker: &picker{err: status.Error(codes.Unavailable, err.Error())}})
}

// UpdateSubConnState is unused: SubConns report through their
// StateListener.
func (b *bal) UpdateSubConnState(gbalancer.SubConn, gbalancer.SubConnState) {}

func (b *bal) ExitIdle() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, sb := range b.subs {
		if sb.state == connectivity.Idle {
			sb.sc.Connect()
		}
	}
}

func (b *bal) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for addr, sb := range b.subs {
		sb.sc.Shutdown()
		delete(b.subs, addr)
		b.forgetLocked(sb)
	}
}

// ---- picker

type picker struct {
	e     *entry
	ready map[string]gbalancer.SubConn
	list  []gbalancer.SubConn
	next  atomic.Uint64
	err   error
}

func (p *picker) Pick(info gbalancer.PickInfo) (gbalancer.PickResult, error) {
	if p.err != nil {
		return gbalancer.PickResult{}, p.err
	}
	if len(p.list) == 0 {
		return gbalancer.PickResult{}, gbalancer.ErrNoSubConnAvailable
	}
	key := ""
	if h := p.e.opts.HashHeader; h != "" {
		if md, ok := metadata.FromOutgoingContext(info.Ctx); ok {
			if v := md.Get(h); len(v) > 0 {
				key = v[0]
			}
		}
	}
	b := p.e.b
	// The call's record of the endpoints its attempts went to, when
	// grpcx's retry interceptor keeps one: a retry or a hedge goes to
	// another endpoint while one is left.
	rec := tried.From(info.Ctx)
	for range len(p.ready) + 2 {
		var t lb.Ticket
		var err error
		switch {
		case rec != nil:
			var x any
			if x, err = bridge.LBPickAvoid(b, rec, key); err == nil {
				t = x.(lb.Ticket)
			}
		case key != "":
			t, err = b.PickKey(key)
		default:
			t, err = b.Pick()
		}
		if err != nil {
			// Nothing to pick (every endpoint out of rotation with panic
			// mode off) or every breaker rejected: fail the RPC at once,
			// as lb.Pick fails, rather than send it where lb would not.
			return gbalancer.PickResult{}, status.Error(codes.Unavailable, err.Error())
		}
		if sc := p.ready[t.Addr()]; sc != nil {
			if rec != nil {
				bridge.LBTried(rec, t)
			}
			ctx := info.Ctx
			return gbalancer.PickResult{SubConn: sc, Done: func(di gbalancer.DoneInfo) {
				o := judge(ctx, p.e.classify, di.Err)
				var wait time.Duration
				if o == bulwark.Failure {
					if v := di.Trailer.Get("grpc-retry-pushback-ms"); len(v) > 0 {
						wait, _ = pushback.GRPC(v[0])
					}
				}
				bridge.LBRecordWait(b, t, o, wait)
			}}, nil
		}
		b.Record(t, bulwark.Neutral) // not connected: draw again
		key = ""
	}
	// lb keeps choosing endpoints without a connection (panic mode):
	// any READY SubConn serves better than waiting.
	return gbalancer.PickResult{SubConn: p.list[p.next.Add(1)%uint64(len(p.list))]}, nil
}

// judge classifies an RPC's result: by the balancer's Config.Classify if
// set, else by grpcx's rules, except that a hedge's loser is a failure.
func judge(ctx context.Context, classify bulwark.Classifier, err error) bulwark.Outcome {
	if classify != nil {
		return classify(ctx, err)
	}
	if err != nil && outcome.Superseded(ctx) {
		return bulwark.Failure
	}
	return grpcx.Classify(ctx, err)
}
