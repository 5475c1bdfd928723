package lb_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/lb"
)

// dnsServer is a small authoritative DNS server on loopback UDP that
// answers A, AAAA and SRV questions from its records, so that the
// resolvers are tested through net.Resolver's real DNS client with no
// external network.
type dnsServer struct {
	conn net.PacketConn
	mu   sync.Mutex
	a    map[string][]netip.Addr // name -> A and AAAA
	srv  map[string][]net.SRV
	fail bool // answer SERVFAIL
	done chan struct{}

	// clients are the connections resolvers dialed; the cleanup closes
	// them, so that a lookup still waiting for an answer (its caller gave
	// up) ends with the test instead of at the resolver's 5 s timeout.
	cmu     sync.Mutex
	clients []net.Conn
}

func newDNSServer(t *testing.T) *dnsServer {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: conn, a: map[string][]netip.Addr{}, srv: map[string][]net.SRV{}, done: make(chan struct{})}
	go s.serve()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
		s.cmu.Lock()
		for _, c := range s.clients {
			c.Close()
		}
		s.cmu.Unlock()
	})
	return s
}

// resolver returns a net.Resolver that asks only this server.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", s.conn.LocalAddr().String())
		if err == nil {
			s.cmu.Lock()
			s.clients = append(s.clients, c)
			s.cmu.Unlock()
		}
		return c, err
	}}
}

func (s *dnsServer) set(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

func (s *dnsServer) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := s.answer(buf[:n]); resp != nil {
			s.conn.WriteTo(resp, from)
		}
	}
}

const (
	typeA    = 1
	typeAAAA = 28
	typeSRV  = 33
)

// answer builds the response to one query (a single question).
func (s *dnsServer) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// The question: labels, then type and class.
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, strings.ToLower(string(q[i+1:i+1+l])))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	name := strings.Join(labels, ".") + "."

	s.mu.Lock()
	defer s.mu.Unlock()
	var answers [][]byte
	rr := func(typ uint16, rdata []byte) []byte {
		b := []byte{0xc0, 12} // the question's name
		b = binary.BigEndian.AppendUint16(b, typ)
		b = binary.BigEndian.AppendUint16(b, 1) // IN
		b = binary.BigEndian.AppendUint32(b, 60)
		b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
		return append(b, rdata...)
	}
	switch qtype {
	case typeA, typeAAAA:
		for _, ip := range s.a[name] {
			if ip.Is4() && qtype == typeA || ip.Is6() && qtype == typeAAAA {
				answers = append(answers, rr(qtype, ip.AsSlice()))
			}
		}
	case typeSRV:
		for _, r := range s.srv[name] {
			var d []byte
			d = binary.BigEndian.AppendUint16(d, r.Priority)
			d = binary.BigEndian.AppendUint16(d, r.Weight)
			d = binary.BigEndian.AppendUint16(d, r.Port)
			for _, l := range strings.Split(strings.TrimSuffix(r.Target, "."), ".") {
				d = append(d, byte(len(l)))
				d = append(d, l...)
			}
			d = append(d, 0)
			answers = append(answers, rr(typeSRV, d))
		}
	}
	flags := uint16(0x8580) // response, authoritative, recursion desired and available
	if s.fail {
		flags |= 2 // SERVFAIL
		answers = nil
	}
	resp := append([]byte(nil), q[:2]...)
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
	resp = binary.BigEndian.AppendUint32(resp, 0)
	resp = append(resp, question...)
	for _, a := range answers {
		resp = append(resp, a...)
	}
	return resp
}

func addrs(eps []lb.Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Addr)
	}
	return out
}

func TestDNSResolverAAndAAAA(t *testing.T) {
	s := newDNSServer(t)
	s.set(func() {
		s.a["svc.test."] = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")}
	})
	d := lb.DNS{Host: "svc.test.", Port: 8080, Zone: "z1", Resolver: s.resolver()}
	eps, err := d.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addrs(eps), " ")
	for _, want := range []string{"192.0.2.1:8080", "192.0.2.2:8080", "[2001:db8::1]:8080"} {
		if !strings.Contains(got, want) {
			t.Fatalf("endpoints %s, missing %s", got, want)
		}
	}
	if len(eps) != 3 || eps[0].Zone != "z1" {
		t.Fatalf("endpoints %+v", eps)
	}
}

func TestSRVResolverKeepsLowestPriorityWithWeights(t *testing.T) {
	s := newDNSServer(t)
	s.set(func() {
		s.srv["_http._tcp.svc.test."] = []net.SRV{
			{Target: "a.svc.test.", Port: 81, Priority: 10, Weight: 3},
			{Target: "b.svc.test.", Port: 82, Priority: 10, Weight: 0},
			{Target: "backup.svc.test.", Port: 83, Priority: 20, Weight: 5},
		}
	})
	eps, err := lb.SRV{Service: "http", Proto: "tcp", Name: "svc.test.", Resolver: s.resolver()}.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]int{}
	for _, e := range eps {
		w[e.Addr] = e.Weight
	}
	if len(w) != 2 || w["a.svc.test:81"] != 3 || w["b.svc.test:82"] != 1 {
		t.Fatalf("endpoints %v, want a:81 weight 3 and b:82 weight 1 (0 becomes 1), no backup", w)
	}
}

func TestRefreshFollowsDNSAndKeepsLastGoodSet(t *testing.T) {
	s := newDNSServer(t)
	s.set(func() { s.a["svc.test."] = []netip.Addr{netip.MustParseAddr("192.0.2.1")} })
	b := lb.New(lb.Config{Resolver: lb.DNS{Host: "svc.test.", Port: 80, Resolver: s.resolver()}})
	defer b.Close()
	ctx := context.Background()
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := addrs(endpointsOf(b)); len(got) != 1 || got[0] != "192.0.2.1:80" {
		t.Fatalf("after the first answer: %v", got)
	}
	s.set(func() {
		s.a["svc.test."] = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.3")}
	})
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := addrs(endpointsOf(b)); len(got) != 2 {
		t.Fatalf("after the second answer: %v", got)
	}
	s.set(func() { s.fail = true })
	if err := b.Refresh(ctx); err == nil {
		t.Fatal("Refresh with a failing DNS server returned nil")
	}
	s.set(func() { s.fail = false; s.a["svc.test."] = nil })
	if err := b.Refresh(ctx); err == nil {
		t.Fatal("Refresh with no records returned nil")
	}
	if got := addrs(endpointsOf(b)); len(got) != 2 {
		t.Fatalf("a failed or empty answer changed the set: %v", got)
	}
}

func endpointsOf(b *lb.Balancer) []lb.Endpoint {
	var eps []lb.Endpoint
	for _, e := range b.Endpoints() {
		eps = append(eps, e.Endpoint)
	}
	return eps
}

func TestResolverAskedOnTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		asked := 0
		r := lb.ResolverFunc(func(context.Context) ([]lb.Endpoint, error) {
			mu.Lock()
			defer mu.Unlock()
			asked++
			if asked == 3 {
				return nil, errors.New("registry down")
			}
			return endpoints(asked), nil
		})
		b := lb.New(lb.Config{Resolver: r, ResolveInterval: time.Minute})
		synctest.Wait() // the first answer, at once
		if n := len(b.Endpoints()); n != 1 {
			t.Fatalf("after the first answer: %d endpoints", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(b.Endpoints()); n != 2 {
			t.Fatalf("after a minute: %d endpoints, want 2", n)
		}
		time.Sleep(time.Minute) // the registry fails: the set stays
		synctest.Wait()
		if n := len(b.Endpoints()); n != 2 {
			t.Fatalf("after a failed answer: %d endpoints, want 2", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(b.Endpoints()); n != 4 {
			t.Fatalf("after the fourth answer: %d endpoints, want 4", n)
		}
		b.Close()
	})
}
