package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
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
	numKinds
)

var kindNames = [numKinds]string{"catalogue GETs", "order POSTs", "cart GETs", "cart POSTs"}

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

// maxWorkers bounds the workers of any phase.
const maxWorkers = 128

// result is what one request did.
type result struct {
	ok     bool
	kind   kind
	crit   degrade.Criticality
	status int // the response's status; 0 for none
	// throttled: refused before it was sent, by the caller's adaptive
	// throttling, or by the gateway's rate limit (429)
	throttled bool
	start     time.Duration // since the phase began
	latency   time.Duration
}

func (r result) post() bool { return r.kind == orderPost || r.kind == cartPost }

// mix is the request the i-th request of a phase is: in ordinary phases
// the four kinds in turn (half GETs, half POSTs), every one of default
// criticality (no header); in the overload burst a flash crowd, mostly
// browsing the catalogue (sheddable), some carts (default) and some
// orders (critical).
func mix(i int, burst bool) (kind, degrade.Criticality, bool) {
	if !burst {
		return kind(i % int(numKinds)), degrade.Default, false
	}
	switch j := i % 10; {
	case j < 6:
		return catalogGet, degrade.Sheddable, true
	case j == 6:
		return cartGet, degrade.Default, true
	case j == 7:
		return cartPost, degrade.Default, true
	default:
		return orderPost, degrade.Critical, true
	}
}

// load runs one phase's load through c and returns what each request did,
// in the order they were sent: n requests from workers workers, and more
// until the phase has lasted hold; a worker with a pace sends at most one
// request per pace (an open-ended crowd of callers, each at its own
// rhythm, rather than callers that come back the instant they are
// refused). The loop is bounded by the count, the hold and the phase's
// time limit; each request by its deadline. The POSTs name their side
// effects prefix and the request's number.
func load(c *client, cfg config, ph phase, prefix string, step func()) []result {
	began := time.Now()
	n, workers := cfg.requests, cfg.concurrency
	if ph.burst {
		n, workers = cfg.burstRequests, cfg.burstWorkers
	}
	workers = min(workers, maxWorkers)
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
			tick := time.Now()
			for {
				i := int(next.Add(1) - 1)
				if i >= n && time.Since(began) >= ph.hold || time.Since(began) >= phaseLimit {
					return
				}
				if ph.pace > 0 {
					if d := time.Until(tick); d > 0 {
						time.Sleep(d) // the caller's own rhythm, not a wait for an effect
					}
					tick = time.Now().Add(ph.pace)
				}
				k, crit, stated := mix(i, ph.burst)
				r := one(c, cfg.deadline, request{kind: k, crit: crit, statesCrit: stated, name: prefix + strconv.Itoa(i), item: i % catalogItems}, &c.users[w], began)
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
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		res.latency = time.Since(start)
		return res
	}
	if rq.statesCrit {
		req.Header.Set(criticalityHeader, rq.crit.String())
	}
	if c.keys && method == http.MethodPost {
		req.Header.Set("Idempotency-Key", newKey())
	}
	if *cookie != "" {
		req.Header.Set("Cookie", *cookie)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		res.latency = time.Since(start)
		res.throttled = errors.Is(err, degrade.ErrThrottled)
		return res
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	res.latency = time.Since(start)
	res.status = resp.StatusCode
	res.ok = err == nil && resp.StatusCode == want
	res.throttled = resp.StatusCode == http.StatusTooManyRequests
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

// newKey returns a fresh Idempotency-Key.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
