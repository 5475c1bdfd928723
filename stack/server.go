package stack

import (
	"errors"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/timeout"
)

// Server is bulwark's server stack (see the package doc): its Handler puts
// the configured layers in front of a handler. Build it with NewServer and
// Close it once the HTTP server using it has stopped. It is safe for
// concurrent use; the layers' state (the limits, the sessions, the
// idempotency records) is shared by every handler it wraps.
type Server struct {
	health   *health.Health
	shedder  *degrade.Shedder
	rate     *limit.Rate
	bulkhead *limit.Bulkhead
	timeout  *timeout.Timeout
	sessions *session.Manager
	keeper   *idempotency.Keeper
	layers   []func(http.Handler) http.Handler // outermost first

	closeOnce sync.Once
	closeErr  error
}

// NewServer builds the server stack configured by cfg. It panics with
// cfg.Validate's error if cfg has a bad value.
func NewServer(cfg ServerConfig) *Server {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	s := &Server{}
	if cfg.Health != nil {
		s.health = health.New(*cfg.Health)
		s.layers = append(s.layers, s.health.Handler)
	}
	if cfg.Shed != nil {
		sc := *cfg.Shed
		fill(&sc.Name, &sc.MeterProvider, cfg.Name, cfg.MeterProvider)
		s.shedder = degrade.NewShedder(sc)
		s.layers = append(s.layers, s.shedder.Handler)
	}
	if cfg.Rate != nil {
		rc := *cfg.Rate
		fill(&rc.Name, &rc.MeterProvider, cfg.Name, cfg.MeterProvider)
		s.rate = limit.NewRate(rc)
		s.layers = append(s.layers, s.rate.Handler)
	}
	if cfg.Bulkhead != nil {
		bc := *cfg.Bulkhead
		fill(&bc.Name, &bc.MeterProvider, cfg.Name, cfg.MeterProvider)
		s.bulkhead = limit.NewBulkhead(bc)
		s.layers = append(s.layers, s.bulkhead.Handler)
	}
	if cfg.Timeout != nil {
		tc := *cfg.Timeout
		fill(&tc.Name, &tc.MeterProvider, cfg.Name, cfg.MeterProvider)
		s.timeout = timeout.New(tc)
		s.layers = append(s.layers, s.timeout.Handler)
	}
	if cfg.Session != nil {
		sc := *cfg.Session
		fill(&sc.Name, &sc.MeterProvider, cfg.Name, cfg.MeterProvider)
		s.sessions = session.New(sc)
		s.layers = append(s.layers, s.sessions.Handler)
	}
	if cfg.Idempotency != nil {
		ic := *cfg.Idempotency
		fill(&ic.Name, &ic.MeterProvider, cfg.Name, cfg.MeterProvider)
		s.keeper = idempotency.New(ic)
		s.layers = append(s.layers, s.keeper.Handler)
	}
	return s
}

// fill gives a layer the stack's name and MeterProvider where its own
// Config left them empty.
func fill(name *string, mp *metric.MeterProvider, stackName string, stackMP metric.MeterProvider) {
	if *name == "" {
		*name = stackName
	}
	if *mp == nil {
		*mp = stackMP
	}
}

// Health returns the health layer, to add checks to it (health.Health.Add),
// or nil without ServerConfig.Health.
func (s *Server) Health() *health.Health { return s.health }

// Handler returns next behind the stack's layers, outermost first: health
// probes, load shedding, rate limit, concurrency limit, timeout, session,
// idempotency. With no layer
// configured it returns next itself. A nil next panics.
func (s *Server) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("stack: Server.Handler called with a nil next")
	}
	return bulwark.ChainHandler(next, s.layers...)
}

// Close releases what the stack holds: the layers' metric registrations,
// the health layer's background checks,
// and the memory stores the session and idempotency layers made for
// themselves (a Store given in their Config is the caller's to close).
// Call it once the HTTP server has stopped: the handlers keep working after
// Close, unobserved, but sessions and idempotency records kept in a memory
// store are no longer swept. It is safe to call more than once and from
// several goroutines; calls after the first return nil.
func (s *Server) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		var errs []error
		if s.health != nil {
			errs = append(errs, s.health.Close())
		}
		if s.shedder != nil {
			errs = append(errs, s.shedder.Close())
		}
		if s.rate != nil {
			errs = append(errs, s.rate.Close())
		}
		if s.bulkhead != nil {
			errs = append(errs, s.bulkhead.Close())
		}
		if s.timeout != nil {
			errs = append(errs, s.timeout.Close())
		}
		if s.sessions != nil {
			errs = append(errs, s.sessions.Close())
		}
		if s.keeper != nil {
			errs = append(errs, s.keeper.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	if !first {
		return nil
	}
	return s.closeErr
}
