package degrade

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Criticality ranks a request for shedding: under overload Sheddable
// requests are rejected first and Critical ones last.
type Criticality uint8

// The criticalities, lowest first. The zero value is Default.
const (
	// Default is the criticality of a request nothing else ranks.
	Default Criticality = iota
	// Sheddable requests (prefetches, analytics, batch work) go first.
	Sheddable
	// Critical requests (checkout, login) go last.
	Critical
	numCriticalities
)

var criticalityNames = [...]string{"default", "sheddable", "critical"}

// String returns "default", "sheddable" or "critical".
func (c Criticality) String() string {
	if c < numCriticalities {
		return criticalityNames[c]
	}
	return fmt.Sprintf("Criticality(%d)", uint8(c))
}

// ParseCriticality parses "critical", "default" or "sheddable" (ASCII
// case-insensitive, surrounding spaces ignored), as sent in the
// criticality header; it reports false for anything else.
func ParseCriticality(s string) (Criticality, bool) {
	s = strings.TrimSpace(s)
	for c, n := range criticalityNames {
		if strings.EqualFold(s, n) {
			return Criticality(c), true
		}
	}
	return Default, false
}

// Route gives the requests whose URL path starts with Prefix (for gRPC,
// whose full method name does) a criticality.
type Route struct {
	// Prefix is matched against the start of the path.
	Prefix string
	// Criticality is the matching requests' criticality.
	Criticality Criticality
}

// ShedderConfig configures a [Shedder]. The zero ShedderConfig is useful:
// see each field's default and the package doc for the algorithm.
type ShedderConfig struct {
	// Name names the shedder in telemetry (bulwark.name). Default "".
	Name string
	// Window is the span of recent history the capacity estimate looks
	// at. Default 5 s (go-zero's adaptive shedder's window); in
	// [100 ms, 1 h].
	Window time.Duration
	// Buckets is the number of buckets the window is kept in; the
	// estimate is refreshed once per bucket. Default 50 (go-zero's), so
	// 100 ms buckets; at most MaxBuckets.
	Buckets int
	// LatencyFactor is the queueing signal: the server counts as
	// overloaded while the mean latency of the last full bucket, or the
	// latency of a request since, is at least LatencyFactor times the
	// baseline latency (requests are waiting, not working; see the
	// package doc for the baseline), and at least QueueDelay over it.
	// Default 2; in [1.1, 100].
	LatencyFactor float64
	// QueueDelay is the least queueing delay that counts as overload: a
	// latency is a queueing signal only when it is also at least the
	// baseline plus QueueDelay, so that the jitter of a fast service
	// (a 100 µs GC pause against 20 µs requests) is not taken for a queue.
	// Default 5 ms (DefaultQueueDelay, CoDel's target); at most 1 min; a
	// negative value turns the floor off (LatencyFactor alone decides).
	QueueDelay time.Duration
	// CoolOff keeps the shedder rejecting Sheddable and Default requests
	// over their limits for this long after it last shed on evidence of
	// queueing, so it does not flap as latency recovers (the "hot" period
	// of go-zero and kratos). Sheds during the cool-off do not renew it:
	// they would keep the shedder hot for good, in flight held under the
	// estimate and the estimate at what was in flight. It is also the
	// Retry-After of a shed request. Default 1 s; at most 1 min.
	CoolOff time.Duration
	// Headroom multiplies the estimated capacity to give each
	// criticality's in-flight limit under overload, each counted over the
	// requests of that criticality or higher, so that lower tiers' work
	// never counts against a higher tier: a Sheddable request is rejected
	// when all the requests in flight are at or over capacity × 1; a
	// Default one when the Default and Critical ones are at or over
	// capacity × (1 + Headroom) (× 1 while the shedder probes, see the
	// package doc); a Critical one when the Critical ones alone are at or
	// over capacity × (1 + 2·Headroom), and only while the last two full
	// buckets queued. No limit is under MinInFlight. Default 1; in
	// [0.1, 10].
	Headroom float64
	// MinInFlight is the least in-flight limit of every criticality: no
	// request is shed while fewer than MinInFlight requests of its
	// criticality or higher are in flight, whatever the estimate says (a
	// tiny estimate must not shed a burst), so that nothing is shed below
	// MinInFlight in flight in all. The window needs 2 × MinInFlight
	// completions before the shedder estimates anything (before, it is
	// cold and sheds nothing). Default 4; at most MaxMinInFlight.
	MinInFlight int

	// RejectStatus is the HTTP status of a shed request: 503 Service
	// Unavailable or 429 Too Many Requests. Default 503 (the server is
	// overloaded, not the client over a quota). gRPC rejections are
	// codes.Unavailable either way.
	RejectStatus int

	// Header is the request header a client (or an upstream service)
	// states its criticality in: "critical", "default" or "sheddable"
	// (gRPC: the same name as lower-case metadata). Default
	// "Bulwark-Criticality"; it must be a header field name (an RFC 9110
	// token). Honour it only from trusted callers: set
	// IgnoreHeader at an edge that faces the internet.
	Header string
	// IgnoreHeader ignores the criticality header.
	IgnoreHeader bool
	// Routes rank requests by path prefix (the longest match wins); a
	// route's criticality overrides the header. Default none.
	Routes []Route
	// Criticality, if set, ranks every HTTP request and overrides Routes
	// and the header.
	Criticality func(*http.Request) Criticality

	// OnShed, if set, is called for each request shed, in the goroutine
	// of the request, possibly concurrently with itself.
	OnShed func(ctx context.Context, ev ShedEvent)
	// MeterProvider receives the shedder's metrics; nil means the global
	// provider.
	MeterProvider metric.MeterProvider
}

// ShedEvent describes one shed request.
type ShedEvent struct {
	// Criticality is the shed request's criticality.
	Criticality Criticality
	// InFlight is the number of admitted requests in flight at the time.
	InFlight int64
	// Capacity is the estimated in-flight capacity at the time.
	Capacity float64
	// Wait is the Retry-After (or pushback) the request was given.
	Wait time.Duration
}

// Defaults and bounds, see ShedderConfig.
const (
	DefaultShedWindow     = 5 * time.Second
	DefaultShedBuckets    = 50
	DefaultLatencyFactor  = 2.0
	DefaultQueueDelay     = 5 * time.Millisecond
	DefaultCoolOff        = time.Second
	DefaultHeadroom       = 1.0
	DefaultMinInFlight    = 4
	DefaultCriticalityHdr = "Bulwark-Criticality"
	MaxBuckets            = 1000
	MaxMinInFlight        = 1 << 20
	MaxRoutes             = 1024
)

// Validate reports the first bad value of c as a *bulwark.ConfigError.
func (c ShedderConfig) Validate() error {
	v := validate.New("degrade")
	v.Check(c.Window == 0 || (c.Window >= 100*time.Millisecond && c.Window <= time.Hour), "ShedderConfig.Window", c.Window, "0 (default) or a duration in [100ms, 1h]")
	v.Size("ShedderConfig.Buckets", c.Buckets, MaxBuckets)
	v.Float("ShedderConfig.LatencyFactor", c.LatencyFactor, 1.1, 100)
	v.DurationOrOff("ShedderConfig.QueueDelay", c.QueueDelay, time.Minute)
	v.Duration("ShedderConfig.CoolOff", c.CoolOff, time.Minute)
	v.Float("ShedderConfig.Headroom", c.Headroom, 0.1, 10)
	v.Size("ShedderConfig.MinInFlight", c.MinInFlight, MaxMinInFlight)
	v.Check(c.RejectStatus == 0 || c.RejectStatus == 503 || c.RejectStatus == 429, "ShedderConfig.RejectStatus", c.RejectStatus, "0 (default), 503 or 429")
	v.Check(c.Header == "" || httpx.IsToken(c.Header), "ShedderConfig.Header", c.Header, "a header field name (an RFC 9110 token)")
	v.Check(len(c.Routes) <= MaxRoutes, "ShedderConfig.Routes", len(c.Routes), fmt.Sprintf("at most %d routes", MaxRoutes))
	for i, r := range c.Routes {
		v.Check(r.Criticality < numCriticalities, fmt.Sprintf("ShedderConfig.Routes[%d].Criticality", i), r.Criticality, "Default, Sheddable or Critical")
	}
	return v.Err()
}

// Shedder rejects requests when the server is overloaded, lowest
// criticality first. Create one with [NewShedder]; the zero Shedder is not
// usable. It is safe for concurrent use; its hot path takes no lock and
// allocates nothing. Call Close to unregister its metrics.
//
// See the package doc for the algorithm.
type Shedder struct {
	cfg      ShedderConfig
	clk      clock.Clock
	bucketNs int64
	inflight [numCriticalities]atomic.Int64 // admitted and not Done, by criticality
	buckets  []shedBucket

	// The estimate, refreshed once per bucket by whichever request
	// crosses into a new bucket (CAS on cur).
	cur        atomic.Int64  // index (epoch) of the current bucket
	capBits    atomic.Uint64 // float64: estimated in-flight capacity; 0: unknown
	inflated   atomic.Bool   // queueing seen: in the last full bucket, or in a request since
	queued     atomic.Bool   // queueing seen in the last two full buckets (Critical's overload)
	baseNs     atomic.Int64  // the baseline latency (see baseline), ns; 0: unknown
	queueNs    atomic.Int64  // the latency that signals queueing, ns; 0: unknown
	hotUntil   atomic.Int64  // Nanotime until which the shedder is hot
	probing    atomic.Bool   // the whole window queued: Default has no headroom
	refreshing atomic.Bool   // a refresh is running: it owns scratch and probeSince
	scratch    []shedSample  // refresh's workspace, len(buckets)
	probeSince int64         // the epoch the probe began, while probing

	shed   [numCriticalities]atomic.Int64
	passed atomic.Int64
	tel    *shedTelemetry
	closed sync.Once
}

type shedBucket struct {
	epoch  atomic.Int64
	n      atomic.Int64 // completions
	rtNs   atomic.Int64 // sum of their latencies
	workNs atomic.Int64 // sum of their latencies, each at most the baseline
	shed   atomic.Int64 // requests shed
}

// shedSample is one full bucket, as refresh sees it.
type shedSample struct {
	mean float64 // mean latency, ns
	work float64 // workNs
}

// baselineShare is the share of a window's work (see baseline) whose
// latency sets the baseline.
const baselineShare = 0.1

// ShedTicket is the admission Allow gives; hand it to Done. The zero
// ShedTicket is not an admission.
type ShedTicket struct {
	start int64
	c     Criticality
}

// NewShedder returns a shedder configured by cfg. It panics with a
// *bulwark.ConfigError if cfg is not valid.
func NewShedder(cfg ShedderConfig) *Shedder {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultShedWindow
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = DefaultShedBuckets
	}
	if cfg.LatencyFactor == 0 {
		cfg.LatencyFactor = DefaultLatencyFactor
	}
	if cfg.CoolOff == 0 {
		cfg.CoolOff = DefaultCoolOff
	}
	if cfg.QueueDelay == 0 {
		cfg.QueueDelay = DefaultQueueDelay
	}
	if cfg.QueueDelay < 0 {
		cfg.QueueDelay = 0
	}
	if cfg.Headroom == 0 {
		cfg.Headroom = DefaultHeadroom
	}
	if cfg.MinInFlight == 0 {
		cfg.MinInFlight = DefaultMinInFlight
	}
	if cfg.Header == "" {
		cfg.Header = DefaultCriticalityHdr
	}
	cfg.Header = textproto.CanonicalMIMEHeaderKey(cfg.Header) // looked up directly per request
	cfg.Routes = append([]Route(nil), cfg.Routes...)
	s := &Shedder{cfg: cfg, clk: clock.Real, buckets: make([]shedBucket, cfg.Buckets), scratch: make([]shedSample, 0, cfg.Buckets)}
	s.bucketNs = max(int64(cfg.Window)/int64(cfg.Buckets), 1)
	s.cur.Store(s.clk.Nanotime() / s.bucketNs)
	s.hotUntil.Store(math.MinInt64) // not zero: inside a synctest bubble Nanotime can be negative
	s.tel = newShedTelemetry(s, cfg.MeterProvider)
	return s
}

// limit returns the in-flight limit of criticality c for capacity cp:
// capacity × c's multiplier, and never under MinInFlight. While probing,
// Default has no headroom.
func (s *Shedder) limit(c Criticality, cp float64, probing bool) float64 {
	switch c {
	case Sheddable:
	case Critical:
		cp *= 1 + 2*s.cfg.Headroom
	default:
		if !probing {
			cp *= 1 + s.cfg.Headroom
		}
	}
	return max(cp, float64(s.cfg.MinInFlight))
}

// overloaded reports whether requests of criticality c may be shed at
// now. Sheddable and Default requests are, as soon as one request has
// queued and for CoolOff after the last shed on that evidence, so that
// the shedder reacts at once; Critical ones only while the last two full
// buckets as a whole queued: by then the capacity estimate holds a whole
// bucket of the server's work under load, not only what a lighter load
// showed (a low bound).
func (s *Shedder) overloaded(c Criticality, now int64) bool {
	if c == Critical {
		return s.queued.Load()
	}
	return s.inflated.Load() || now < s.hotUntil.Load()
}

// inflightFrom returns the number of requests of criticality c or higher
// in flight: every request for Sheddable, Default and Critical ones for
// Default, Critical ones alone for Critical. Work of a lower criticality
// never counts against a higher one, so a higher criticality is shed
// only when its own work (and the work above it) fills its limit.
func (s *Shedder) inflightFrom(c Criticality) int64 {
	n := s.inflight[Critical].Load()
	switch c {
	case Sheddable:
		n += s.inflight[Sheddable].Load()
		fallthrough
	case Default:
		n += s.inflight[Default].Load()
	}
	return n
}

// inflightTotal returns the number of admitted requests not yet Done.
func (s *Shedder) inflightTotal() int64 { return s.inflightFrom(Sheddable) }

// Allow admits a request of criticality c, or rejects it with a
// [*ShedError] when the server is overloaded and the requests in flight
// of criticality c or higher are at or over c's limit (see
// [ShedderConfig.Headroom]). A c that is not one of the three
// criticalities is taken as Default. An admitted request must be handed
// to Done when it ends.
//
// Allow reads the clock once and does a few atomic operations; once per
// bucket one call (of Allow, Done or Stats) also refreshes the estimate
// (O(Buckets·log Buckets), no allocation).
func (s *Shedder) Allow(c Criticality) (ShedTicket, error) {
	if c >= numCriticalities {
		c = Default
	}
	now := s.clk.Nanotime()
	s.refresh(now)
	if in := s.inflightFrom(c); in >= int64(s.cfg.MinInFlight) {
		if cp := math.Float64frombits(s.capBits.Load()); cp > 0 && s.overloaded(c, now) {
			if float64(in) >= s.limit(c, cp, s.probing.Load()) {
				if s.inflated.Load() {
					// Only a shed on evidence of queueing renews the
					// cool-off: sheds during it would keep the shedder
					// hot for good, holding in flight, and so the
					// estimate, at what it was.
					s.hotUntil.Store(now + int64(s.cfg.CoolOff))
				}
				s.shed[c].Add(1)
				s.bucket(now / s.bucketNs).shed.Add(1)
				return ShedTicket{}, &ShedError{Criticality: c, Wait: s.cfg.CoolOff}
			}
		}
	}
	s.inflight[c].Add(1)
	return ShedTicket{start: now, c: c}, nil
}

// Done reports that the request Allow admitted with t has ended.
func (s *Shedder) Done(t ShedTicket) {
	now := s.clk.Nanotime()
	s.refresh(now) // first, so that the work below is clipped at a current baseline
	s.inflight[t.c%numCriticalities].Add(-1)
	s.passed.Add(1)
	b := s.bucket(now / s.bucketNs)
	lat := max(now-t.start, 1)
	b.n.Add(1)
	b.rtNs.Add(lat)
	// The work a request did is its latency up to the baseline: time
	// spent over it is taken for queueing, which is not capacity.
	if base := s.baseNs.Load(); base > 0 && lat > base {
		b.workNs.Add(base)
	} else {
		b.workNs.Add(lat)
	}
	// A request that waited LatencyFactor times the baseline is
	// evidence of queueing now, a bucket before the bucket means show it.
	if q := s.queueNs.Load(); q > 0 && lat >= q && !s.inflated.Load() {
		s.inflated.Store(true)
	}
}

// bucket returns the bucket of epoch e, reset if it held an older epoch.
// Two goroutines may race on the reset; losing one sample to the race is
// harmless.
func (s *Shedder) bucket(e int64) *shedBucket {
	b := &s.buckets[s.slot(e)]
	if old := b.epoch.Load(); old != e && b.epoch.CompareAndSwap(old, e) {
		b.n.Store(0)
		b.rtNs.Store(0)
		b.workNs.Store(0)
		b.shed.Store(0)
	}
	return b
}

// slot returns the bucket index of epoch e. Inside a synctest bubble
// Nanotime may be negative, so the modulo is made non-negative.
func (s *Shedder) slot(e int64) int64 {
	n := int64(len(s.buckets))
	return (e%n + n) % n
}

// refresh recomputes the estimate when now has moved into a new bucket.
func (s *Shedder) refresh(now int64) {
	e := now / s.bucketNs
	cur := s.cur.Load()
	if e <= cur || !s.cur.CompareAndSwap(cur, e) {
		return
	}
	if !s.refreshing.CompareAndSwap(false, true) {
		return // a refresh still running owns scratch; the next bucket's catches up
	}
	defer s.refreshing.Store(false)
	// Over the full buckets of the window (the current one is still
	// filling): each bucket's mean latency and work, the most work in a
	// bucket, and the mean latency of the last full bucket. The buckets
	// the baseline is learned from (see below) are moved to the front.
	qPrev := float64(s.queueNs.Load())
	samples := s.scratch[:0]
	var maxWork int64
	lastRT, prevRT, learn, learnWork, total, count := 0.0, 0.0, 0, 0.0, 0.0, int64(0)
	below, episode := false, false
	for k := int64(1); k <= int64(len(s.buckets)); k++ {
		ep := e - k
		b := &s.buckets[s.slot(ep)]
		if b.epoch.Load() != ep {
			continue
		}
		n := b.n.Load()
		if n == 0 {
			continue
		}
		rt := float64(b.rtNs.Load()) / float64(n)
		w := b.workNs.Load()
		maxWork = max(maxWork, w)
		samples = append(samples, shedSample{mean: rt, work: float64(w)})
		total += float64(w)
		count += n
		unqueued, shed := qPrev == 0 || rt < qPrev, b.shed.Load() > 0
		below = below || unqueued
		episode = episode || (shed && !unqueued)
		if !shed {
			samples[learn], samples[len(samples)-1] = samples[len(samples)-1], samples[learn]
			learn++
			learnWork += float64(w)
		}
		if k == 1 {
			lastRT = rt
		}
		if k == 2 {
			prevRT = rt
		}
	}
	if count < 2*int64(s.cfg.MinInFlight) {
		// Too little history to learn from: a cold window, where
		// nothing is shed.
		s.capBits.Store(0)
		s.baseNs.Store(0)
		s.queueNs.Store(0)
		s.queued.Store(false)
		s.inflated.Store(false)
		s.probing.Store(false)
		return
	}
	// The baseline is learned from the buckets in which nothing was
	// shed. While the window holds a bucket that queued while the shedder
	// shed (an overload episode), it stays as it is: the standing queue
	// that the higher criticalities' headroom lets form, and the buckets
	// of a queue building up again, must not become the yardstick
	// queueing is measured against (the baseline would drift up, and the
	// capacity with it), nor a shift of the mix at the onset pull it down
	// (the capacity would fall with it). When every bucket of the window
	// queued, the shedder probes (Default loses its headroom, so that the
	// queue drains); when it has probed for a whole window in vain, the
	// server has become slower, not overloaded, and the baseline is
	// learned from every bucket.
	base := float64(s.baseNs.Load())
	switch {
	case below:
		if learn > 0 && (!episode || base == 0) {
			base = baseline(samples[:learn], learnWork)
		}
		s.probing.Store(false)
	case !s.probing.Load():
		s.probeSince = e
		s.probing.Store(true)
	case e-s.probeSince >= int64(len(s.buckets)):
		base = baseline(samples, total)
		s.probing.Store(false)
	}
	s.baseNs.Store(max(int64(base), 1))
	q := max(s.cfg.LatencyFactor*base, base+float64(s.cfg.QueueDelay))
	s.queueNs.Store(int64(q))
	// Little's law: the most work done in a bucket (latencies counted up
	// to the baseline: time over it is queueing), per unit of time, is
	// the concurrency the server has sustained without queueing.
	cp := float64(maxWork) / float64(s.bucketNs)
	s.capBits.Store(math.Float64bits(cp))
	s.queued.Store(lastRT >= q && prevRT >= q)
	s.inflated.Store(lastRT >= q)
}

// baseline returns the latency the server shows at its best: the bucket
// means, lowest first, each weighted by the bucket's work (its requests'
// latencies, each at most the baseline of the time), and the mean at
// which baselineShare of total, the samples' work, is reached. Weighting
// by work keeps the baseline to the latency of the requests that occupy
// the server: a bucket holding a few cheap requests (cache hits in a
// lull, a burst of fast rejections) weighs what they cost, next to
// nothing, and cannot pull the baseline down to their latency, which
// would make every ordinary request look queued (the drill's defect: a
// lull of cache hits gave a 100 µs baseline, a capacity of 0.02 and
// critical requests shed at MinInFlight). samples is reordered.
func baseline(samples []shedSample, total float64) float64 {
	slices.SortFunc(samples, func(a, b shedSample) int { return cmp.Compare(a.mean, b.mean) })
	want, acc := baselineShare*total, 0.0
	for _, x := range samples {
		acc += x.work
		if acc >= want {
			return x.mean
		}
	}
	return samples[len(samples)-1].mean
}

// Do runs fn if the shedder admits a request of criticality c, and
// returns its error; otherwise it returns the [*ShedError] without
// running fn. Do panics if ctx or fn is nil.
func (s *Shedder) Do(ctx context.Context, c Criticality, fn func(context.Context) error) error {
	if ctx == nil {
		panic("degrade: Shedder.Do called with a nil ctx")
	}
	if fn == nil {
		panic("degrade: Shedder.Do called with a nil fn")
	}
	t, err := s.Allow(c)
	if err != nil {
		s.onShed(ctx, c, err)
		return err
	}
	defer s.Done(t)
	return fn(ctx)
}

func (s *Shedder) onShed(ctx context.Context, c Criticality, err error) {
	if s.cfg.OnShed == nil {
		return
	}
	se, _ := err.(*ShedError)
	s.cfg.OnShed(ctx, ShedEvent{Criticality: c, InFlight: s.inflightTotal(),
		Capacity: math.Float64frombits(s.capBits.Load()), Wait: se.Wait})
}

// ShedStats is a snapshot of a shedder's state.
type ShedStats struct {
	// InFlight is the number of admitted requests not yet Done.
	InFlight int64
	// Capacity is the estimated in-flight capacity (0: not known yet).
	Capacity float64
	// Overloaded reports whether the shedder is rejecting Sheddable and
	// Default requests over their limits (queueing seen, or the
	// cool-off); Critical ones need more (see ShedderConfig.Headroom).
	Overloaded bool
	// Shed counts the requests shed since New, by criticality.
	Shed [3]int64
	// Passed counts the admitted requests that are Done.
	Passed int64
}

// Stats returns a snapshot of the shedder's state, refreshing the
// estimate first if a bucket has ended since.
func (s *Shedder) Stats() ShedStats {
	now := s.clk.Nanotime()
	s.refresh(now)
	st := ShedStats{InFlight: s.inflightTotal(), Capacity: math.Float64frombits(s.capBits.Load()),
		Overloaded: s.inflated.Load() || now < s.hotUntil.Load(), Passed: s.passed.Load()}
	for c := range st.Shed {
		st.Shed[c] = s.shed[c].Load()
	}
	return st
}

// Close unregisters the shedder's metrics. The shedder keeps working.
// Close is safe to call more than once; it returns nil.
func (s *Shedder) Close() error {
	s.closed.Do(s.tel.close)
	return nil
}

// criticality ranks an HTTP request: Config.Criticality, else the longest
// matching route, else the header, else Default.
func (s *Shedder) criticality(r *http.Request) Criticality {
	if s.cfg.Criticality != nil {
		return s.cfg.Criticality(r)
	}
	if c, ok := s.route(r.URL.Path); ok {
		return c
	}
	if !s.cfg.IgnoreHeader {
		if c, ok := ParseCriticality(headerValue(r.Header, s.cfg.Header)); ok {
			return c
		}
	}
	return Default
}

func (s *Shedder) route(path string) (Criticality, bool) {
	best, found, c := -1, false, Default
	for _, r := range s.cfg.Routes {
		if len(r.Prefix) > best && strings.HasPrefix(path, r.Prefix) {
			best, found, c = len(r.Prefix), true, r.Criticality
		}
	}
	return c, found
}

// headerValue is h.Get(key) for a key already in canonical form, without
// canonicalising it again on every request.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
