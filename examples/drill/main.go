// Command drill is bulwark's main demo: a scripted failure drill against a
// small service, run twice at the same time, once through a bare net/http
// client and once through bulwark's preset client stack (package stack),
// with the results printed side by side, phase by phase, and bulwark's
// targets judged at the end (exit status 1 if one is missed).
//
//	go run ./examples/drill            # the full drill: about 20 s once compiled
//	go run ./examples/drill -quick     # a short run (used by CI): about 7 s
//	go run ./examples/drill -report drill-report.html
//	go run ./examples/drill -metrics :9464   # Prometheus text at /metrics while it runs
//	go run ./examples/drill -h         # the phases, the clients and the flags
//
// The first `go run` also compiles bulwark and its dependencies: about 15 s
// on a 2-vCPU machine with an empty build cache, 25 s if the modules must be
// downloaded too. Later runs start at once.
//
// It needs nothing but Go: the service's instances are real HTTP servers on
// loopback (127.0.0.1), each behind bulwark's server stack, started and
// broken by the drill itself; their idempotency records live in an
// embedded Redis (miniredis), or in the Redis at REDIS_ADDR. Half the
// requests are POSTs that place an order, and every placement is counted,
// so an order placed twice shows. Most of the drill's time goes to the
// latency-spike phase, where the bare client waits out its deadline on
// every request that lands on the slow instance.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark/chaos"
)

// phase is one step of the drill: a fault switched on before the load runs
// and off after it.
type phase struct {
	name  string
	about string
	setup func(e *env) error
	// least is the least time the phase's fault forces on the bare
	// client (the slowest of the two), for the progress estimate; zero
	// for a phase that runs at the speed of loopback.
	least func(cfg config) time.Duration
	// hold, if set, keeps both clients sending past their requests
	// until the phase has lasted that long, and settle is when the
	// phase's settled p99 starts (see stats.p99Settled).
	hold, settle time.Duration
}

var phases = []phase{
	// The steady phase lasts a second at least, so that its p99, the
	// latency spike's yardstick, is taken over as many requests.
	{"steady", "all three instances healthy", func(e *env) error { return nil }, nil, time.Second, 0},
	{"instance down", "instance b refuses connections", func(e *env) error {
		e.bs[1].down()
		return nil
	}, nil, 0, 0},
	{"latency spike", "b is back; instance a answers after 1.5s", func(e *env) error {
		if err := e.bs[0].chaos.SetFaults([]chaos.Fault{{Name: "latency spike", AllTraffic: true,
			Latency: chaos.Latency{Delay: 1500 * time.Millisecond}}}); err != nil {
			return err
		}
		return e.bs[1].up()
	}, func(cfg config) time.Duration {
		// Round-robin sends a third of the bare client's requests to a,
		// and each holds a worker until its deadline.
		return time.Duration(cfg.requests/3) * min(cfg.deadline, 1500*time.Millisecond) / time.Duration(cfg.concurrency)
	}, 2 * time.Second, time.Second},
	{"responses dropped", "a fast again; b does the work, then drops the response", func(e *env) error {
		if err := e.bs[0].chaos.SetFaults(nil); err != nil {
			return err
		}
		return e.bs[1].chaos.SetFaults([]chaos.Fault{{Name: "dropped response", AllTraffic: true, Action: chaos.Drop}})
	}, nil, 0, 0},
	{phaseRedis, "b answers again; Redis is down: POSTs with a key are refused (503)", func(e *env) error {
		if err := e.bs[1].chaos.SetFaults(nil); err != nil {
			return err
		}
		return e.redis.down()
	}, nil, 0, 0},
	{"recovered", "all healthy again, Redis back", func(e *env) error {
		return e.redis.up()
	}, nil, 0, 0},
}

// env is what the phases act on.
type env struct {
	bs    []*backend
	redis *redisCtl
}

// The phases the targets are judged on, by name.
const (
	phaseSteady  = "steady"
	phaseDown    = "instance down"
	phaseSpike   = "latency spike"
	phaseDropped = "responses dropped"
	phaseRedis   = "Redis outage"
)

// clientsAbout describes the two clients, for the summary and the report.
// It must follow newBareClient and newBulwarkClient in stack.go.
func clientsAbout(cfg config) [2]string {
	return [2]string{
		fmt.Sprintf("net/http with a round-robin over the instances and a %s timeout", formatDuration(cfg.deadline)),
		"the preset client stack, stack.NewClient: the same deadline, retry (budget, hedging after 100ms, an Idempotency-Key on each POST), lb (P2C, outlier ejection, slow start, a breaker per instance) and a 250ms per-attempt timeout",
	}
}

// result is what one request did.
type result struct {
	ok      bool
	post    bool
	start   time.Duration // since the phase began
	latency time.Duration
}

// stats summarise one phase for one client.
type stats struct {
	n, ok         int
	p50, p99, max time.Duration
	// p99Settled is the p99 of the requests sent after the phase's
	// settle time, once the client has had time to learn of the
	// phase's fault (a breaker needs a few calls, and the first slow
	// calls their time, before it opens); settled counts them. Zero
	// for a phase without a settle time.
	p99Settled   time.Duration
	settled      int
	dups         int   // orders placed more than once (extra placements)
	gets, getsOK int   // the GETs among n and ok
	breaker      int64 // breaker state changes during the phase
}

func summarise(rs []result, settle time.Duration) stats {
	s := stats{n: len(rs)}
	if settle > 0 {
		var late []result
		for _, r := range rs {
			if r.start >= settle {
				late = append(late, r)
			}
		}
		s.p99Settled, s.settled = p99(late), len(late)
	}
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.ok {
			s.ok++
		}
		if !r.post {
			s.gets++
			if r.ok {
				s.getsOK++
			}
		}
		lat = append(lat, r.latency)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		s.p50 = lat[len(lat)*50/100]
		s.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		s.max = lat[len(lat)-1]
	}
	return s
}

// p99 is the 99th-percentile latency of rs.
func p99(rs []result) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	lat := make([]time.Duration, len(rs))
	for i, r := range rs {
		lat[i] = r.latency
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[min(len(lat)-1, len(lat)*99/100)]
}

func (s stats) rate() float64 {
	if s.n == 0 {
		return 0
	}
	return 100 * float64(s.ok) / float64(s.n)
}

type config struct {
	requests    int           // per phase and client
	concurrency int           // workers per client
	deadline    time.Duration // each request's overall deadline, both clients
	metrics     string        // -metrics address, "" for none
}

// outcome is a whole drill: when it ran, what it did and how long each
// phase took.
type outcome struct {
	cfg    config
	start  time.Time
	rows   [][2]stats      // per phase: bare, bulwark
	took   []time.Duration // per phase
	total  time.Duration
	addrs  []string
	abouts [2]string
	redis  string // where the idempotency records were kept
	// redisStops: the drill stopped Redis in the outage phase (the
	// embedded one); a real Redis (REDIS_ADDR) is left running.
	redisStops bool
	misses     []string // the targets bulwark missed
}

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the drill as the command line asks and returns the exit
// status: 0 done, 1 the drill failed, 2 bad usage.
func cli(args []string, stdout io.Writer, stderr *os.File) int {
	cfg, reportPath, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	// Open the report first, so that a path we cannot write fails now and
	// not after a full drill.
	var report *os.File
	if reportPath != "" {
		report, err = os.Create(reportPath)
		if err != nil {
			fmt.Fprintf(stderr, "drill: -report: %v\n", err)
			return 2
		}
	}
	o, err := run(stdout, newProgress(stderr), cfg)
	if err == nil && report != nil {
		err = writeReport(report, o)
		if cerr := report.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			fmt.Fprintf(stdout, "\nreport written to %s\n", reportPath)
		}
	}
	if err != nil {
		if report != nil {
			report.Close()
			os.Remove(reportPath) // an empty or partial report helps nobody
		}
		fmt.Fprintln(stderr, "drill:", err)
		return 1
	}
	if len(o.misses) > 0 {
		fmt.Fprintf(stderr, "drill: bulwark missed %d of its targets\n", len(o.misses))
		return 1
	}
	return 0
}

// parseFlags parses the command line. It prints its own errors and usage
// to stderr; flag.ErrHelp means -h was asked for.
func parseFlags(args []string, stderr io.Writer) (config, string, error) {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a short drill: 60 requests per phase and client, 6 workers (CI runs this)")
	report := fs.String("report", "", "also write a self-contained HTML `file` with charts of the results;\nthe file is created before the drill starts")
	metrics := fs.String("metrics", "", "serve the OpenTelemetry metrics of bulwark's stacks (client and servers)\nin the Prometheus text format at http://`addr`/metrics while the drill runs;\n:PORT listens on 127.0.0.1")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		return config{}, "", err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "drill: unexpected argument %q: the drill takes only flags (see drill -h)\n", fs.Arg(0))
		return config{}, "", errors.New("unexpected argument")
	}
	cfg := config{requests: 300, concurrency: 8, deadline: time.Second}
	if *quick {
		cfg.requests = 60
		cfg.concurrency = 6
	}
	cfg.metrics = *metrics
	return cfg, *report, nil
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	cfg := config{requests: 300, concurrency: 8, deadline: time.Second}
	about := clientsAbout(cfg)
	fmt.Fprintf(w, `Usage: drill [-quick] [-report file] [-metrics addr]

drill is bulwark's failure drill. It starts three instances (a, b, c) of a
small HTTP service on 127.0.0.1, each behind bulwark's server stack with its
idempotency records in Redis (an embedded miniredis, or the Redis at
REDIS_ADDR), then sends the same load, GET and POST (placing orders)
alternately, through two clients at the same time, phase by phase, while it
breaks the instances:

`)
	for i, ph := range phases {
		fmt.Fprintf(w, "  %d. %-18s %s\n", i+1, ph.name, ph.about)
	}
	fmt.Fprintf(w, `
The clients:

  bare     %s
  bulwark  %s

It prints, per phase and client, the success rate, p50, p99 and max latency,
the orders placed more than once, and bulwark's breaker and ejection
changes; then bulwark's targets, and exits with status 1 if it missed one:
instance down, at least 99.9%% success; latency spike, at least 99%% success
and a p99 after the phase's first second at most twice the steady p99; no
order placed twice; responses dropped, at least 95%% success; Redis outage,
every GET served. A full drill takes about 20 s (mostly the latency spike,
where the bare client waits out its deadline); -quick about 7 s. Progress
goes to stderr: a bar on a terminal, one line per finished phase otherwise.

Flags:
`, wrap(about[0], 66, 11), wrap(about[1], 66, 11))
	fs.PrintDefaults()
}

// wrap breaks text into lines of at most width characters, indenting every
// line after the first by indent spaces.
func wrap(text string, width, indent int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(text) {
		if i > 0 && n+1+len(word) > width {
			b.WriteString("\n" + strings.Repeat(" ", indent))
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// client is one of the two contestants.
type client struct {
	name    string
	http    *http.Client
	stop    func()
	breaker *atomic.Int64 // breaker state changes so far; nil for none
}

// run runs the drill, prints its table to out and reports progress to p.
func run(out io.Writer, p *progress, cfg config) (*outcome, error) {
	o := &outcome{cfg: cfg, start: time.Now(), abouts: clientsAbout(cfg)}
	rc, err := startRedis()
	if err != nil {
		return nil, err
	}
	defer rc.stop()
	rdb := rc.client
	o.redis = rc.where
	o.redisStops = rc.mr != nil
	var mp metric.MeterProvider // nil: the global provider, a no-op
	if cfg.metrics != "" {
		reader := sdkmetric.NewManualReader()
		provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer provider.Shutdown(context.Background())
		ms, err := startMetrics(cfg.metrics, reader)
		if err != nil {
			return nil, err
		}
		defer ms.close()
		fmt.Fprintf(out, "metrics: %s (Prometheus text format)\n", ms.url)
		mp = provider
	}
	ledger := newLedger()
	var bs []*backend
	for _, name := range []string{"a", "b", "c"} {
		b, err := startBackend(name, rdb, ledger, mp)
		if err != nil {
			return nil, err
		}
		defer b.close()
		bs = append(bs, b)
	}
	for _, b := range bs {
		o.addrs = append(o.addrs, b.addr)
	}
	fmt.Fprintf(out, "bulwark drill: 3 instances on %s, %s, %d requests per phase and client (GET and POST alternately), %d workers, %s deadline per request\n\n",
		strings.Join(o.addrs, " "), o.redis, cfg.requests, cfg.concurrency, formatDuration(cfg.deadline))

	bare := newBareClient(o.addrs, cfg)
	defer bare.stop()
	guarded := newBulwarkClient(o.addrs, cfg, mp)
	defer guarded.stop()
	clients := []*client{bare, guarded}

	p.start(cfg, len(clients))
	defer p.stop()
	for i, ph := range phases {
		if err := ph.setup(&env{bs, rc}); err != nil {
			return nil, err
		}
		p.beginPhase(i)
		began := time.Now()
		var row [2]stats
		// Both clients face the same fault at the same time, side by side.
		var wg sync.WaitGroup
		for j, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var before int64
				if c.breaker != nil {
					before = c.breaker.Load()
				}
				prefix := fmt.Sprintf("%s/%d/", c.name, i)
				row[j] = summarise(load(c.http, cfg, ph.hold, prefix, func() { p.step(j) }), ph.settle)
				row[j].dups = ledger.duplicates(prefix)
				if c.breaker != nil {
					row[j].breaker = c.breaker.Load() - before
				}
			}()
		}
		wg.Wait()
		o.rows = append(o.rows, row)
		o.took = append(o.took, time.Since(began))
		p.endPhase(i, row)
	}
	p.stop()
	o.total = time.Since(o.start)
	o.misses = judge(o.rows, o.redisStops)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\t\tbare ok\tp50\tp99\tmax\tdup\t\tbulwark ok\tp50\tp99\tmax\tdup\tbreaker\t")
	for i, ph := range phases {
		b, g := o.rows[i][0], o.rows[i][1]
		fmt.Fprintf(tw, "%s\t\t%s\t%s\t%s\t%s\t%d\t\t%s\t%s\t%s\t%s\t%d\t%d\t\n", ph.name,
			formatRate(b.rate()), formatDuration(b.p50), formatDuration(b.p99), formatDuration(b.max), b.dups,
			formatRate(g.rate()), formatDuration(g.p50), formatDuration(g.p99), formatDuration(g.max), g.dups, g.breaker)
	}
	tw.Flush()
	fmt.Fprintln(out)
	fmt.Fprintln(out, "  dup: orders placed more than once; breaker: state changes of bulwark's breakers and lb's ejections and returns")
	for _, ph := range phases {
		fmt.Fprintf(out, "  %-18s %s\n", ph.name+":", ph.about)
	}
	fmt.Fprintf(out, "\nbare:    %s\n", wrap(o.abouts[0], 70, 9))
	fmt.Fprintf(out, "bulwark: %s\n", wrap(o.abouts[1], 70, 9))
	fmt.Fprintf(out, "servers: %s\n", wrap("bulwark's server stack (stack.NewServer): a 5s timeout, and idempotency keys kept in Redis, which fail closed: while Redis is down, a POST with a key is answered 503 and not run, since no one could tell whether it already ran. bulwark's client counts those 503s (problem details) as neutral: Redis is shared, so no instance is to blame, and its breakers and ejections stay out of it. The bare client's POSTs carry no key, so they run unchecked, and cost the servers none of the two Redis calls (claim, complete) each of bulwark's makes.", 70, 9))
	if !o.redisStops {
		fmt.Fprintln(out, "note:    Redis is the one at REDIS_ADDR, which the drill does not stop: the Redis-outage phase ran with Redis up")
	}
	var injected []string
	for _, b := range bs {
		for name, n := range b.chaos.Injected() {
			injected = append(injected, fmt.Sprintf("%s on %s: %d", name, b.name, n))
		}
	}
	sort.Strings(injected)
	fmt.Fprintf(out, "faults:  %s\n", wrap("injected by package chaos at each instance's edge (instance down is a real server stop, Redis outage a real miniredis stop): "+strings.Join(injected, ", "), 70, 9))
	fmt.Fprintf(out, "not yet: %s\n", wrap("an overload burst with mixed criticality (package degrade), a gateway built from both stacks", 70, 9))
	fmt.Fprintln(out, "\nbulwark's targets:")
	for _, t := range targets(o.rows, o.redisStops) {
		mark := "ok  "
		if !t.met {
			mark = "MISS"
		}
		fmt.Fprintf(out, "  %s %s\n", mark, t.text)
	}
	fmt.Fprintf(out, "\ndrill finished in %s\n", formatDuration(o.total))
	return o, nil
}

// target is one of bulwark's stated targets, judged on a drill's rows.
type target struct {
	text string
	met  bool
}

func phaseIndex(name string) int {
	for i, ph := range phases {
		if ph.name == name {
			return i
		}
	}
	panic("drill: no phase " + name)
}

func rowOf(rows [][2]stats, name string) ([2]stats, bool) {
	for i, ph := range phases {
		if ph.name == name && i < len(rows) {
			return rows[i], true
		}
	}
	return [2]stats{}, false
}

// targets judges bulwark's run against the targets of issue 16 that the
// drill's phases can show today; redisStopped says whether Redis was
// really down in the Redis-outage phase.
func targets(rows [][2]stats, redisStopped bool) []target {
	var ts []target
	if r, ok := rowOf(rows, phaseDown); ok {
		g := r[1]
		ts = append(ts, target{fmt.Sprintf("instance down: success %s, target at least 99.9%%", formatRate(g.rate())), g.rate() >= 99.9})
	}
	if r, ok := rowOf(rows, phaseSpike); ok {
		g := r[1]
		ts = append(ts, target{fmt.Sprintf("latency spike: success %s, target at least 99%%", formatRate(g.rate())), g.rate() >= 99})
	}
	steady, ok1 := rowOf(rows, phaseSteady)
	spike, ok2 := rowOf(rows, phaseSpike)
	if ok1 && ok2 {
		s, g := steady[1].p99, spike[1].p99Settled
		settle := phases[phaseIndex(phaseSpike)].settle
		ts = append(ts, target{fmt.Sprintf("latency spike: p99 %s over the %d requests sent after its first %s (%s over all %d, counting those sent before a's breaker opened), target at most 2 × steady p99 = %s",
			formatDuration(g), spike[1].settled, formatDuration(settle), formatDuration(spike[1].p99), spike[1].n, formatDuration(2*s)), spike[1].settled > 0 && g <= 2*s})
	}
	dups := 0
	for _, r := range rows {
		dups += r[1].dups
	}
	ts = append(ts, target{fmt.Sprintf("duplicate side effects: %d, target 0", dups), dups == 0})
	if r, ok := rowOf(rows, phaseDropped); ok {
		g := r[1]
		ts = append(ts, target{fmt.Sprintf("responses dropped: success %s, target at least 95%% (a retry may land on b again before b is ejected)", formatRate(g.rate())), g.rate() >= 95})
	}
	if r, ok := rowOf(rows, phaseRedis); ok && redisStopped {
		g := r[1]
		rate := 0.0
		if g.gets > 0 {
			rate = 100 * float64(g.getsOK) / float64(g.gets)
		}
		ts = append(ts, target{fmt.Sprintf("Redis outage: GETs (no Redis needed) %s served, target at least 99.9%%; POSTs refused as configured (%d of %d served)",
			formatRate(rate), g.ok-g.getsOK, g.n-g.gets), rate >= 99.9})
	}
	return ts
}

// judge returns the targets bulwark missed.
func judge(rows [][2]stats, redisStopped bool) []string {
	var misses []string
	for _, t := range targets(rows, redisStopped) {
		if !t.met {
			misses = append(misses, t.text)
		}
	}
	return misses
}

// load sends cfg.requests requests through c with cfg.concurrency
// workers, and more until the phase has lasted hold, GET and POST
// alternately (the POSTs place orders named prefix and the request's
// number), and returns what each did, in the order they were sent. The
// loop is bounded by the count and the hold time, each request by its
// deadline.
func load(c *http.Client, cfg config, hold time.Duration, prefix string, step func()) []result {
	began := time.Now()
	var next atomic.Int64
	type sent struct {
		i int
		r result
	}
	var mu sync.Mutex
	var all []sent
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.requests && time.Since(began) >= hold {
					return
				}
				order := ""
				if i%2 == 1 {
					order = prefix + strconv.Itoa(i)
				}
				r := one(c, cfg.deadline, order, began)
				mu.Lock()
				all = append(all, sent{i, r})
				mu.Unlock()
				if i < cfg.requests {
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

// one sends a GET, or a POST placing order if it is not empty.
func one(c *http.Client, deadline time.Duration, order string, phaseBegan time.Time) result {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	at := start.Sub(phaseBegan)
	method, path, want, body := http.MethodGet, "/hello", http.StatusOK, io.Reader(nil)
	if order != "" {
		method, path, want, body = http.MethodPost, "/orders", http.StatusCreated, strings.NewReader(order)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://service"+path, body)
	if err != nil {
		return result{post: order != "", start: at, latency: time.Since(start)}
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{post: order != "", start: at, latency: time.Since(start)}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return result{ok: err == nil && resp.StatusCode == want, post: order != "", start: at, latency: time.Since(start)}
}
