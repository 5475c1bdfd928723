package lb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/bulwark-go/bulwark/internal/httpx"
)

// Checker probes one endpoint for active health checks: a nil error means
// the endpoint passed. Implementations must honour ctx (it carries the
// check's timeout) and be safe for concurrent use. [HTTPChecker] is the
// HTTP one; the gRPC health-checking protocol's lives in grpcx/balancer,
// so that lb never imports gRPC.
type Checker interface {
	Check(ctx context.Context, ep Endpoint) error
}

// CheckerFunc adapts a function to [Checker].
type CheckerFunc func(ctx context.Context, ep Endpoint) error

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context, ep Endpoint) error { return f(ctx, ep) }

// HTTPChecker checks an endpoint with an HTTP GET of Path: a 2xx answer
// passes, anything else (another status, a redirect included, a
// transport error, a timeout) fails. Redirects are not followed: the
// verdict is the endpoint's own answer, never another host's.
type HTTPChecker struct {
	// Path is the path to get, e.g. "/healthz". Default "/".
	Path string
	// Scheme is "http" or "https". Default "http".
	Scheme string
	// Host, if set, is the Host header to send. Default: the endpoint's
	// address.
	Host string
	// Client sends the checks (a copy of it that does not follow
	// redirects). Default http.DefaultClient.
	Client *http.Client
}

// Check gets Path from ep.
func (c HTTPChecker) Check(ctx context.Context, ep Endpoint) error {
	scheme := c.Scheme
	if scheme == "" {
		scheme = "http"
	}
	path := c.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+ep.Addr+path, nil)
	if err != nil {
		return err
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	httpx.DrainClose(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("lb: health check of %s: status %d", ep.Addr, resp.StatusCode)
	}
	return nil
}

// checkAll runs one round of active checks, every endpoint at once, and
// applies the verdicts.
func (b *Balancer) checkAll() {
	b.mu.Lock()
	ms := b.members
	b.mu.Unlock()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(b.ctx, b.s.hTimeout)
			defer cancel()
			errs[i] = b.checker.Check(ctx, m.endpoint())
		}()
	}
	wg.Wait()
	if b.ctx.Err() != nil { // closing: a cancelled check says nothing
		return
	}
	var evs []StateChangeEvent
	b.mu.Lock()
	changed := false
	now := b.nanotime()
	for i, m := range ms {
		if b.byAddr[m.ep.Addr] != m {
			continue // removed meanwhile
		}
		from := m.state()
		if errs[i] == nil {
			m.hcFail = 0
			if m.unhealthy {
				if m.hcPass++; m.hcPass >= b.s.hHealthy {
					m.unhealthy, m.hcPass = false, 0
					b.startRampLocked(m, now)
					changed = true
					if to := m.state(); to != from {
						evs = append(evs, StateChangeEvent{Endpoint: m.endpoint(), From: from, To: to, Reason: "active check passed"})
					}
				}
			}
			continue
		}
		m.hcPass = 0
		if !m.unhealthy {
			if m.hcFail++; m.hcFail >= b.s.hUnhealthy {
				m.unhealthy, m.hcFail = true, 0
				changed = true
				if to := m.state(); to != from {
					evs = append(evs, StateChangeEvent{Endpoint: m.endpoint(), From: from, To: to, Reason: "active check failed"})
				}
			}
		}
	}
	if changed {
		b.rebuildLocked()
	}
	b.mu.Unlock()
	for _, ev := range evs {
		b.notify(context.Background(), ev)
	}
}
