package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Resolver supplies a balancer's endpoints: DNS ([DNS], [SRV]), a service
// registry, a file. The balancer asks it every Config.ResolveInterval (and
// on [Balancer.Refresh]); a registry that pushes changes may instead call
// [Balancer.Update] itself. Implementations must be safe for concurrent
// use and honour ctx.
type Resolver interface {
	Resolve(ctx context.Context) ([]Endpoint, error)
}

// ResolverFunc adapts a function to [Resolver].
type ResolverFunc func(ctx context.Context) ([]Endpoint, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context) ([]Endpoint, error) { return f(ctx) }

// ErrNoAddresses is returned by Refresh when the resolver answered with
// no endpoint; the balancer keeps its last good set.
var ErrNoAddresses = errors.New("lb: resolver returned no endpoints")

// Refresh asks Config.Resolver for the endpoints now, bounded by ctx and
// Config.ResolveTimeout, and applies a non-empty answer with Update. A
// failed or empty answer (ErrNoAddresses) leaves the set unchanged.
// Refreshes run one at a time (a call waits for the one in progress, the
// background one included), so an older answer never replaces a newer
// one. Without a Resolver it returns nil at once. It panics if ctx is
// nil.
func (b *Balancer) Refresh(ctx context.Context) error {
	if ctx == nil {
		panic("lb: Balancer.Refresh called with a nil ctx")
	}
	if b.resolver == nil {
		return nil
	}
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, b.s.resolveTimeout)
	defer cancel()
	eps, err := b.resolver.Resolve(ctx)
	if err != nil {
		return err
	}
	if len(eps) == 0 {
		return ErrNoAddresses
	}
	return b.Update(eps)
}

// DNS resolves a host name's A and AAAA records into endpoints on Port,
// each of weight 1 and zone Zone, one per distinct address (an IPv4-mapped
// IPv6 address counts as its IPv4 address).
type DNS struct {
	// Host is the name to look up.
	Host string
	// Port is the port of every endpoint, in [1, 65535]; Resolve fails
	// with any other value.
	Port int
	// Zone is the zone of every endpoint. Default "".
	Zone string
	// Resolver does the lookups. Default net.DefaultResolver.
	Resolver *net.Resolver
}

// Resolve looks up d.Host.
func (d DNS) Resolve(ctx context.Context) ([]Endpoint, error) {
	if d.Port < 1 || d.Port > 65535 {
		return nil, fmt.Errorf("lb: DNS.Port %d is not in [1, 65535]", d.Port)
	}
	ips, err := orDefault(d.Resolver).LookupNetIP(ctx, "ip", d.Host)
	if err != nil {
		return nil, err
	}
	eps := make([]Endpoint, 0, len(ips))
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		ip = ip.Unmap()
		if seen[ip] {
			continue
		}
		seen[ip] = true
		eps = append(eps, Endpoint{Addr: netip.AddrPortFrom(ip, uint16(d.Port)).String(), Weight: 1, Zone: d.Zone})
	}
	return eps, nil
}

// SRV resolves SRV records (RFC 2782) into endpoints: the records of the
// lowest priority present (the others are backups that SRV clients only
// use when these fail, which outlier ejection and panic mode already
// cover), each with the record's weight (a weight of 0 becomes 1) and
// address target:port. A record whose target is "." (RFC 2782: the
// service is decidedly not available at this domain) gives no endpoint; a
// target:port repeated in the records gives one endpoint, of the first
// record's weight.
type SRV struct {
	// Service, Proto and Name are as in net.LookupSRV: both Service and
	// Proto empty looks up Name directly.
	Service, Proto, Name string
	// Zone is the zone of every endpoint. Default "".
	Zone string
	// Resolver does the lookups. Default net.DefaultResolver.
	Resolver *net.Resolver
}

// Resolve looks up the SRV records.
func (s SRV) Resolve(ctx context.Context) ([]Endpoint, error) {
	_, recs, err := orDefault(s.Resolver).LookupSRV(ctx, s.Service, s.Proto, s.Name)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	prio := recs[0].Priority // sorted by priority
	eps := make([]Endpoint, 0, len(recs))
	seen := map[string]bool{}
	for _, rec := range recs {
		if rec.Priority != prio {
			break
		}
		host := rec.Target
		if host == "." || host == "" {
			continue
		}
		if n := len(host); n > 0 && host[n-1] == '.' {
			host = host[:n-1]
		}
		addr := net.JoinHostPort(host, strconv.Itoa(int(rec.Port)))
		if seen[addr] {
			continue
		}
		seen[addr] = true
		w := int(rec.Weight)
		if w == 0 {
			w = 1
		}
		eps = append(eps, Endpoint{Addr: addr, Weight: w, Zone: s.Zone})
	}
	return eps, nil
}

func orDefault(r *net.Resolver) *net.Resolver {
	if r == nil {
		return net.DefaultResolver
	}
	return r
}
