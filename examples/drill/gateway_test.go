package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark/degrade"
)

// startService starts the drill's Redis, three instances and the gateway,
// as run does, and stops them when the test ends.
func startService(t *testing.T) (*gateway, []*backend, *ledger) {
	t.Helper()
	rc, err := startRedis("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.stop)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	l := newLedger()
	var bs []*backend
	var addrs []string
	for _, name := range []string{"a", "b", "c"} {
		b, err := startBackend(name, rc.client, l, mp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.close)
		bs = append(bs, b)
		addrs = append(addrs, b.addr)
	}
	gw, err := startGateway(addrs, fullConfig(), rc.client, mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.close)
	return gw, bs, l
}

func hits(bs []*backend) int64 {
	var n int64
	for _, b := range bs {
		n += b.hits.Load()
	}
	return n
}

// do sends one request to the gateway and returns the response with its
// body read.
func do(t *testing.T, gw *gateway, method, path, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+gw.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Transport: gw.transport, Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestGateway checks the gateway's wiring over real servers: its own
// health probe, the cache in front of the instances, the session that any
// instance serves, and an order retried under one key placed once.
func TestGateway(t *testing.T) {
	gw, bs, l := startService(t)

	// The health layer answers the gateway's probes itself.
	before := hits(bs)
	if resp, _ := do(t, gw, "GET", "/readyz", "", nil); resp.StatusCode != 200 {
		t.Errorf("/readyz: %d, want 200", resp.StatusCode)
	}
	// The catalogue is cacheable: the second GET is served by the
	// gateway's cache, with an Age, without reaching an instance.
	resp, body := do(t, gw, "GET", "/catalog/7", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "item 7") || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("GET /catalog/7: %d %q, Cache-Control %q", resp.StatusCode, body, resp.Header.Get("Cache-Control"))
	}
	if got := hits(bs) - before; got != 1 {
		t.Errorf("the probe and the first catalogue GET reached the instances %d times, want 1", got)
	}
	resp, body2 := do(t, gw, "GET", "/catalog/7", "", nil)
	if resp.StatusCode != 200 || body2 != body || resp.Header.Get("Age") == "" {
		t.Errorf("second GET /catalog/7: %d %q (first %q), Age %q: not from the cache", resp.StatusCode, body2, body, resp.Header.Get("Age"))
	}
	if got := hits(bs) - before; got != 1 {
		t.Errorf("the second catalogue GET reached an instance (%d hits)", got)
	}

	// The cart lives in the session, in Redis: whichever instance each
	// request lands on, the count goes on.
	var cookie string
	for want := 1; want <= 6; want++ {
		h := http.Header{"Idempotency-Key": {newKey()}}
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		resp, body := do(t, gw, "POST", "/cart", "cart:test/"+string(rune('0'+want)), h)
		if resp.StatusCode != 201 || !strings.HasPrefix(body, string(rune('0'+want))+" items") {
			t.Fatalf("POST /cart #%d: %d %q", want, resp.StatusCode, body)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie {
				cookie = ck.Name + "=" + ck.Value
			}
		}
		if cookie == "" {
			t.Fatal("no session cookie set")
		}
	}
	if resp, body := do(t, gw, "GET", "/cart", "", http.Header{"Cookie": {cookie}}); resp.StatusCode != 200 || !strings.HasPrefix(body, "6 items") {
		t.Errorf("GET /cart: %d %q, want 6 items", resp.StatusCode, body)
	}

	// One order sent twice under one key is placed once; the second
	// answer is the first one replayed.
	h := http.Header{"Idempotency-Key": {newKey()}}
	_, first := do(t, gw, "POST", "/orders", "test/order-1", h)
	resp, second := do(t, gw, "POST", "/orders", "test/order-1", h)
	if resp.StatusCode != 201 || second != first {
		t.Errorf("the order's second POST: %d %q, want the first answer %q replayed", resp.StatusCode, second, first)
	}
	if n := l.duplicates("test/"); n != 0 {
		t.Errorf("%d orders placed twice", n)
	}
	// A request stating its criticality is admitted when the gateway
	// is not overloaded.
	if resp, _ := do(t, gw, "GET", "/catalog/8", "", http.Header{criticalityHeader: {"sheddable"}}); resp.StatusCode != 200 {
		t.Errorf("a sheddable GET with no overload: %d, want 200", resp.StatusCode)
	}
	if n := gw.shedCounts(); n != [3]int64{} {
		t.Errorf("shed %v with no overload", n)
	}
}

// TestGatewayInstanceDown stops an instance and checks that the gateway
// still serves every request: the balancer picks again on a refused
// connection, and a retry lands elsewhere.
func TestGatewayInstanceDown(t *testing.T) {
	gw, bs, _ := startService(t)
	bs[1].down()
	var failed []string
	for i := range 30 {
		h := http.Header{"Idempotency-Key": {newKey()}}
		resp, body := do(t, gw, "POST", "/orders", "down/"+string(rune('a'+i)), h)
		if resp.StatusCode != 201 {
			failed = append(failed, fmt.Sprintf("order %d: %d %q", i, resp.StatusCode, body))
		}
	}
	// A refused connection never fails an order. One order may still
	// fail on a machine so loaded (under -race) that its three attempts
	// each outlast the 500ms attempt timeout: that is not b's doing.
	if len(failed) > 1 || len(failed) == 1 && !strings.Contains(failed[0], "timed out") {
		t.Errorf("with b down, %d of 30 orders failed: %s", len(failed), strings.Join(failed, "; "))
	}
}

// TestOverloadTarget judges the overload burst on made-up rows: critical
// requests at least 99% served (requests not sent count against it), with
// a p99 at most half the deadline, while sheddable ones are shed; a burst
// that shed nothing showed nothing and misses too.
func TestOverloadTarget(t *testing.T) {
	const deadline = time.Second
	mk := func(critOK, critN, notSent int, critLatency time.Duration, shedSheddable int64) stats {
		var rs []result
		for i := range critN {
			r := result{crit: degrade.Critical, ok: i < critOK, latency: critLatency}
			if !r.ok {
				r.cause = causeDeadline
				if i >= critN-notSent {
					r.cause, r.latency = causeNotSent, 0
				}
			}
			rs = append(rs, r)
		}
		for i := range 1000 {
			r := result{crit: degrade.Sheddable, ok: int64(i) >= shedSheddable, latency: time.Millisecond}
			if !r.ok {
				r.cause = causeShed
			}
			rs = append(rs, r)
		}
		s := summarise(rs, 0)
		s.shed[degrade.Sheddable] = shedSheddable
		return s
	}
	for _, tc := range []struct {
		name string
		s    stats
		met  bool
	}{
		{"critical served in time, sheddable shed", mk(995, 1000, 0, 50*time.Millisecond, 700), true},
		{"exactly 99%", mk(990, 1000, 0, 50*time.Millisecond, 700), true},
		{"critical under 99%", mk(989, 1000, 0, 50*time.Millisecond, 700), false},
		{"critical not sent count as failed", mk(989, 1000, 11, 50*time.Millisecond, 700), false},
		{"critical served, but late", mk(1000, 1000, 0, 600*time.Millisecond, 700), false},
		{"p99 exactly half the deadline", mk(1000, 1000, 0, deadline/2, 700), true},
		{"nothing shed", mk(1000, 1000, 0, 50*time.Millisecond, 0), false},
		{"no critical request", mk(0, 0, 0, 0, 700), false},
	} {
		got := overloadTarget(tc.s, deadline)
		if got.met != tc.met {
			t.Errorf("%s: met %v, want %v (%s)", tc.name, got.met, tc.met, got.text)
		}
		for _, want := range []string{"critical requests", "p99", "shed"} {
			if !strings.Contains(got.text, want) {
				t.Errorf("%s: text %q does not say what was judged (%q)", tc.name, got.text, want)
			}
		}
	}
}

// TestSpikeTarget judges the latency spike on made-up rows: the settled
// p99 against twice the steady p99, with the hedge delay as a floor, and
// the count of requests that took the hedge delay or more in the text.
func TestSpikeTarget(t *testing.T) {
	settle := phases[phaseIndex(phaseSpike)].settle
	spike := func(p99 time.Duration, slow int) stats {
		s := stats{p99Settled: p99, settled: 1000, n: 1200}
		for i := range 1000 {
			lat := 10 * time.Millisecond
			if i < slow {
				lat = hedgeDelay + 10*time.Millisecond
			}
			s.results = append(s.results, result{ok: true, start: settle + time.Duration(i)*time.Millisecond, latency: lat})
		}
		// Sent before the settle time: never counted.
		s.results = append(s.results, result{ok: true, latency: time.Second})
		return s
	}
	for _, tc := range []struct {
		name      string
		steadyP99 time.Duration
		spike     stats
		met       bool
		slow      string
	}{
		{"within twice the steady p99", 40 * time.Millisecond, spike(70*time.Millisecond, 0), true, "0 of the 1000"},
		{"over twice a small steady p99, under the hedge delay", 20 * time.Millisecond, spike(60*time.Millisecond, 3), true, "3 of the 1000"},
		{"over both", 20 * time.Millisecond, spike(110*time.Millisecond, 20), false, "20 of the 1000"},
		{"over the hedge delay, under twice a large steady p99", 80 * time.Millisecond, spike(150*time.Millisecond, 20), true, "20 of the 1000"},
		{"nothing settled", 20 * time.Millisecond, stats{}, false, "0 of the 0"},
	} {
		got := spikeTarget(stats{p99: tc.steadyP99}, tc.spike)
		if got.met != tc.met || !strings.Contains(got.text, tc.slow) {
			t.Errorf("%s: met %v, want %v; text %q should count %q", tc.name, got.met, tc.met, got.text, tc.slow)
		}
	}
}
