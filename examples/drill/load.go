package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/degrade"
)

// kind is what a request asks of the service.
type kind uint8

const (
	catalogGet kind = iota // GET /catalog/{item}: cacheable, needs no Redis
	orderPost              // POST /orders: a side effect, idempotent under a key
	cartGet                // GET /cart: reads the caller's session
	cartPost               // POST /cart: changes the caller's session, a side effect
	recsGet                // GET /recommendations: personal, never cached; only in the overload burst
	numKinds
)

// ordinaryKinds are the kinds the ordinary phases send, in turn.
const ordinaryKinds = 4

var kindNames = [numKinds]string{"catalogue GETs", "order POSTs", "cart GETs", "cart POSTs", "recommendation GETs"}

// catalogItems is how many catalogue items the drill asks for.
const catalogItems = 16

// criticalityHeader is where a request states its criticality (the
// default of degrade.ShedderConfig.Header).
const criticalityHeader = "Bulwark-Criticality"

// client is one of the two contestants: the HTTP client and where it
// sends its requests.
type client struct {
	name string
	http *http.Client
	base string // the URL its paths are sent to
	keys bool   // its POSTs carry an Idempotency-Key
	gw   *gateway
	stop func()

	// users are the session cookies of the client's users, one per
	// worker: worker w is user w in every phase.
	users [maxWorkers]string
}

// maxWorkers bounds the workers of any phase, the burst's pool included.
const maxWorkers = 2048

// result is what one request did.
type result struct {
	ok     bool
	kind   kind
	crit   degrade.Criticality
	status int // the response's status; 0 for none
	// throttled: refused before it was sent, by the caller's adaptive
	// throttling, or by the gateway's rate limit (429)
	throttled bool
	cause     cause         // why it failed; causeOK if it did not
	detail    string        // for causeUnavailable and causeOther: the status and the start of the body, or the error
	start     time.Duration // since the phase began
	latency   time.Duration
}

func (r result) post() bool { return r.kind == orderPost || r.kind == cartPost }

// cause is why a request failed, as its caller saw it.
type cause uint8

const (
	causeOK             cause = iota
	causeNotSent              // open-loop burst: arrived when every worker of the pool was busy
	causeThrottled            // refused by the caller's own adaptive throttling (degrade.Throttler)
	causeLimited              // 429: the gateway's rate limit
	causeShed                 // 503 from the gateway's shedder (degrade.ErrShed)
	causeDeadline             // the caller's deadline passed before the answer came
	causeGatewayTimeout       // 504: the gateway's timeout or its client stack's attempts ran out of time
	causeUnavailable          // another 503: no instance to send to (breakers open), or a store down
	causeOther                // any other status or transport error
	numCauses
)

var causeNames = [numCauses]string{"ok", "not sent (pool full)", "throttled by the caller", "rate-limited (429)", "shed (503)", "caller's deadline", "gateway timeout (504)", "unavailable (other 503)", "other"}

func (c cause) String() string { return causeNames[c] }

// mix is the request the i-th request of an ordinary phase is: the four
// kinds in turn (half GETs, half POSTs), every one of default criticality
// (no header).
func mix(i int) kind { return kind(i % ordinaryKinds) }

// load runs one phase's load through c and returns what each request did,
// in the order they were sent: n requests from workers workers, and more
// until the phase has lasted hold. It is closed-loop: each worker sends
// its next request when the last one is answered. The loop is bounded by
// the count, the hold and phaseLimit; each request by its deadline. The
// POSTs name their side effects prefix and the request's number. The
// overload burst runs openLoop instead.
func load(c *client, cfg config, ph phase, prefix string, step func()) []result {
	if ph.burst {
		return openLoop(c, cfg, burstSchedule(burstSeed, cfg.burstRate, cfg.burstFor), prefix)
	}
	began := time.Now()
	n, workers := cfg.requests, min(cfg.concurrency, maxWorkers)
	var next atomic.Int64
	type sent struct {
		i int
		r result
	}
	var mu sync.Mutex
	var all []sent
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n && time.Since(began) >= ph.hold || time.Since(began) >= phaseLimit {
					return
				}
				r := one(c, cfg.deadline, request{kind: mix(i), crit: degrade.Default, name: prefix + strconv.Itoa(i), item: i % catalogItems}, &c.users[w], began)
				mu.Lock()
				all = append(all, sent{i, r})
				mu.Unlock()
				if i < n {
					step()
				}
			}
		}()
	}
	wg.Wait()
	sort.Slice(all, func(a, b int) bool { return all[a].i < all[b].i })
	results := make([]result, len(all))
	for k, s := range all {
		results[k] = s.r
	}
	return results
}

// arrival is one request of the overload burst: when it arrives, since
// the burst began, and what it asks.
type arrival struct {
	at   time.Duration
	kind kind
	crit degrade.Criticality
}

// burstSeed seeds the burst's schedule: both runs, and every drill, get
// the same arrivals.
const burstSeed = 16

// burstSchedule returns the overload burst's arrivals, in order: for d,
// at seeded random instants (a Poisson process: a crowd of independent
// users, not a metronome) whose rate rises from nothing to rate a second
// over the first burstRamp (as a flash crowd's does, in a fraction of a
// second) and stays there; and a flash crowd's mix, dealt in shuffled
// decks of ten: six sheddable recommendation GETs (nice to have, and
// never cached, so that each costs an instance its work, as the
// catalogue's would without a cache), two default cart requests (a GET
// and a POST) and two critical orders. The count, rate × (d −
// burstRamp/2), is bounded by maxArrivals.
func burstSchedule(seed uint64, rate int, d time.Duration) []arrival {
	ramp := min(burstRamp, d)
	perSec := float64(rate)
	inRamp := perSec * ramp.Seconds() / 2 // arrivals during the ramp
	n := min(int(inRamp+perSec*(d-ramp).Seconds()), maxArrivals)
	rng := mrand.New(mrand.NewPCG(seed, seed))
	// n uniform points of the cumulative arrival count, mapped back to
	// their instants (the rate's integral inverted).
	at := make([]time.Duration, n)
	for i := range at {
		u := rng.Float64() * float64(n)
		var sec float64
		if u < inRamp {
			sec = math.Sqrt(2 * ramp.Seconds() * u / perSec)
		} else {
			sec = ramp.Seconds() + (u-inRamp)/perSec
		}
		at[i] = min(time.Duration(sec*float64(time.Second)), d)
	}
	slices.Sort(at)
	deck := [10]arrival{
		{kind: recsGet, crit: degrade.Sheddable}, {kind: recsGet, crit: degrade.Sheddable},
		{kind: recsGet, crit: degrade.Sheddable}, {kind: recsGet, crit: degrade.Sheddable},
		{kind: recsGet, crit: degrade.Sheddable}, {kind: recsGet, crit: degrade.Sheddable},
		{kind: cartGet, crit: degrade.Default}, {kind: cartPost, crit: degrade.Default},
		{kind: orderPost, crit: degrade.Critical}, {kind: orderPost, crit: degrade.Critical},
	}
	s := make([]arrival, n)
	for i := range s {
		if i%len(deck) == 0 {
			rng.Shuffle(len(deck), func(a, b int) { deck[a], deck[b] = deck[b], deck[a] })
		}
		s[i] = deck[i%len(deck)]
		s[i].at = at[i]
	}
	return s
}

// burstRamp is how long the burst's arrivals take to reach their rate.
const burstRamp = 500 * time.Millisecond

// maxArrivals bounds a burst's schedule.
const maxArrivals = 20000

// openLoop runs the overload burst through c: each arrival of sched is
// handed, at its time, whatever happened to the ones before it, to an idle
// worker of a pool of cfg.burstPool; one that finds every worker busy is
// not sent, and counts as failed (causeNotSent), as a user whose page
// never loads. Nothing queues in the caller: the pool bounds what is in
// flight, and each request is bounded by the deadline. When the machine
// falls behind the schedule, the late arrivals are sent at once. The
// loop is bounded by the schedule and phaseLimit.
func openLoop(c *client, cfg config, sched []arrival, prefix string) []result {
	began := time.Now()
	results := make([]result, len(sched))
	jobs := make(chan int) // unbuffered: taken only by a worker waiting for one
	var wg sync.WaitGroup
	for w := range min(cfg.burstPool, maxWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				a := sched[i]
				results[i] = one(c, cfg.deadline, request{kind: a.kind, crit: a.crit, statesCrit: true, name: prefix + strconv.Itoa(i), item: i % catalogItems}, &c.users[w], began)
			}
		}()
	}
	for i, a := range sched {
		if d := a.at - time.Since(began); d > 0 {
			time.Sleep(d) // the schedule's own clock, not a wait for an effect
		}
		sent := false
		if time.Since(began) < phaseLimit {
			select {
			case jobs <- i:
				sent = true
			default:
			}
		}
		if !sent {
			results[i] = result{kind: a.kind, crit: a.crit, cause: causeNotSent, start: time.Since(began)}
		}
	}
	close(jobs)
	wg.Wait()
	return results
}

// phaseLimit bounds any phase's load, whatever its count and hold.
const phaseLimit = 20 * time.Second

// request is one request of the load.
type request struct {
	kind       kind
	crit       degrade.Criticality
	statesCrit bool   // send the criticality header
	name       string // the side effect a POST names
	item       int    // the catalogue item a catalogue GET asks for
}

// one sends rq through c as the user whose session cookie is *cookie, and
// keeps the cookie the service sets.
func one(c *client, deadline time.Duration, rq request, cookie *string, phaseBegan time.Time) result {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	res := result{kind: rq.kind, crit: rq.crit, start: start.Sub(phaseBegan)}
	var method, path string
	var body io.Reader
	want := http.StatusOK
	switch rq.kind {
	case catalogGet:
		method, path = http.MethodGet, "/catalog/"+strconv.Itoa(rq.item)
	case orderPost:
		method, path, body, want = http.MethodPost, "/orders", strings.NewReader(rq.name), http.StatusCreated
	case cartGet:
		method, path = http.MethodGet, "/cart"
	case cartPost:
		method, path, body, want = http.MethodPost, "/cart", strings.NewReader("cart:"+rq.name), http.StatusCreated
	case recsGet:
		// Each for its own user, so that no cache or coalescing layer
		// can answer two with one.
		method, path = http.MethodGet, "/recommendations?for="+rq.name
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		res.latency = time.Since(start)
		return res
	}
	if rq.statesCrit {
		req.Header.Set(criticalityHeader, rq.crit.String())
	}
	// The burst's crowd (the requests that state a criticality) sends
	// none: browsers, not API callers; the gateway's retry layer gives
	// each POST its key on the way to the instances all the same. A key
	// sent by the caller would also cost the gateway's idempotency layer
	// two Redis scripts, and the embedded Redis (miniredis) runs each in a
	// fresh Lua interpreter under its one lock: at the burst's rate that,
	// not the instances, became the bottleneck of bulwark's run.
	if c.keys && method == http.MethodPost && !rq.statesCrit {
		req.Header.Set("Idempotency-Key", newKey())
	}
	if *cookie != "" {
		req.Header.Set("Cookie", *cookie)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		res.latency = time.Since(start)
		res.throttled = errors.Is(err, degrade.ErrThrottled)
		res.cause = causeOf(ctx, 0, nil, err)
		if res.cause == causeOther {
			res.detail = err.Error()
		}
		return res
	}
	// The start of the body tells a shed request (the shedder's error
	// message) from the gateway's other 503s.
	head, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	res.latency = time.Since(start)
	res.status = resp.StatusCode
	res.ok = err == nil && resp.StatusCode == want
	res.throttled = resp.StatusCode == http.StatusTooManyRequests
	if !res.ok {
		res.cause = causeOf(ctx, resp.StatusCode, head, err)
		if res.cause == causeUnavailable || res.cause == causeOther {
			res.detail = strconv.Itoa(resp.StatusCode) + " " + strings.TrimSpace(string(head))
		}
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			*cookie = ""
			if ck.MaxAge >= 0 && ck.Value != "" {
				*cookie = ck.Name + "=" + ck.Value
			}
		}
	}
	return res
}

// causeOf says why a request failed: its response's status and the start
// of its body (nil if none), or the error of the exchange, and its context.
func causeOf(ctx context.Context, status int, head []byte, err error) cause {
	switch {
	case errors.Is(err, degrade.ErrThrottled):
		return causeThrottled
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		// The caller's deadline: its context's, or http.Client.Timeout
		// (the same, set on the client), whichever fired first.
		return causeDeadline
	case err != nil:
		return causeOther
	case status == http.StatusTooManyRequests:
		return causeLimited
	case status == http.StatusServiceUnavailable && strings.HasPrefix(string(head), degrade.ErrShed.Error()):
		return causeShed
	case status == http.StatusServiceUnavailable:
		return causeUnavailable
	case status == http.StatusGatewayTimeout:
		return causeGatewayTimeout
	}
	return causeOther
}

// isTimeout reports whether err says it is a timeout (http.Client.Timeout's
// error does).
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// newKey returns a fresh Idempotency-Key.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
