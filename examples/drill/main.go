// Command drill is bulwark's main demo: a scripted failure drill against a
// small service, run twice at the same time, once through a bare net/http
// client and once through a gateway built from bulwark's preset stacks
// (package stack), with the results printed side by side, phase by phase,
// and bulwark's targets judged at the end (exit status 1 if one is
// missed).
//
//	go run ./examples/drill            # the full drill: about 35 s once compiled
//	go run ./examples/drill -quick     # a short run (used by CI): about 15 s
//	go run ./examples/drill -report drill-report.html
//	go run ./examples/drill -metrics :9464   # Prometheus text at /metrics while it runs
//	REDIS_ADDR=127.0.0.1:6379 go run ./examples/drill -real-redis
//	go run ./examples/drill -h         # the phases, the clients and the flags
//
// The first `go run` also compiles bulwark and its dependencies: about 15 s
// on a 2-vCPU machine with an empty build cache, 25 s if the modules must be
// downloaded too. Later runs start at once.
//
// It needs nothing but Go. The service's three instances are real HTTP
// servers on loopback (127.0.0.1), each behind bulwark's server stack
// (health, timeout, sessions, idempotency), started and broken by the
// drill itself. They serve a cacheable catalogue (GET), orders (POST, a
// side effect counted in a ledger, so that an order placed twice shows)
// and a cart kept in the caller's session (GET and POST). Sessions and
// idempotency records live in an embedded Redis (miniredis), or in the
// Redis at REDIS_ADDR, shared by the instances, so that any instance
// serves any user.
//
// The bare run sends its requests straight to the instances, round robin.
// bulwark's run sends the same requests to a gateway on loopback: the
// server stack (health, shedding by criticality, a rate limit, a timeout,
// idempotency) in front of the client stack (an HTTP cache with its
// second tier in Redis, retry with a budget, hedging and automatic
// Idempotency-Keys, lb with health checks, outlier ejection, slow start
// and a breaker per instance, per-attempt timeouts). Sessions live in the
// instances, not in the gateway: see gateway.go for why.
//
// Seven phases: steady; an instance down; a latency spike; responses
// dropped after the work was done; an overload burst with mixed
// criticality; a Redis outage; recovery. Each instance serves at most 200
// requests a second (8 cores, 40ms of work per request; a recommendation,
// sent only in the burst, takes 90ms), so that the overload burst exceeds
// the service's capacity, not the machine's. The burst is open-loop:
// requests arrive on a seeded schedule whatever the answers, as users do,
// each with the same deadline, from a bounded pool of workers (an arrival
// that finds every worker busy is not sent, and counts as failed). Most of
// the drill's time goes to the latency spike, where the bare client waits
// out its deadline on every request that lands on the slow instance, and
// to the overload burst, where each client's burst runs alone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark/degrade"
)

// burstAbout describes the overload burst's load.
func burstAbout(cfg config) string {
	return fmt.Sprintf("%d requests a second (reached over the first %s) for %s, %d in all, open loop, from a pool of %d workers per client", cfg.burstRate, formatDuration(burstRamp), formatDuration(cfg.burstFor), len(burstSchedule(burstSeed, cfg.burstRate, cfg.burstFor)), cfg.burstPool)
}

// clientsAbout describes the two clients, for the summary and the report.
// It must follow newBareClient, newBulwarkCaller and startGateway.
func clientsAbout(cfg config) [2]string {
	return [2]string{
		fmt.Sprintf("net/http straight to the instances, round robin, a %s timeout", formatDuration(cfg.deadline)),
		fmt.Sprintf("net/http (the same %s timeout, an Idempotency-Key on each POST outside the burst, adaptive throttling of the default and sheddable requests of the burst, degrade.Throttler) to a gateway built from the preset stacks: stack.NewServer (health, shedding by criticality, a %d/s rate limit, a %s timeout, idempotency in Redis) in front of stack.NewClient (an HTTP cache, L1 in process and L2 in Redis; retry with a budget, hedging after 100ms and automatic Idempotency-Keys; lb: P2C, health checks, outlier ejection, slow start, a breaker per instance; a %s per-attempt timeout)",
			formatDuration(cfg.deadline), gatewayRate, formatDuration(cfg.deadline), formatDuration(attemptTimeout)),
	}
}

type config struct {
	requests    int           // per phase and client
	concurrency int           // workers per client
	burstRate   int           // the overload burst's arrivals a second, per client
	burstFor    time.Duration // how long they keep arriving
	burstPool   int           // the burst's workers, per client (see openLoop)
	deadline    time.Duration // each request's overall deadline, both clients
	metrics     string        // -metrics address, "" for none
	realRedis   string        // -real-redis: REDIS_ADDR, "" without the flag
}

func fullConfig() config {
	return config{requests: 300, concurrency: 8, burstRate: 800, burstFor: 3 * time.Second, burstPool: 800, deadline: time.Second}
}

func quickConfig() config {
	return config{requests: 60, concurrency: 6, burstRate: 800, burstFor: 2 * time.Second, burstPool: 800, deadline: time.Second}
}

// outcome is a whole drill: when it ran, what it did and how long each
// phase took.
type outcome struct {
	cfg     config
	start   time.Time
	rows    [][2]stats      // per phase: bare, bulwark
	took    []time.Duration // per phase
	began   []time.Duration // per phase: when it began, since start
	total   time.Duration
	addrs   []string
	gateway string
	abouts  [2]string
	redis   string // where the shared state was kept
	// redisStops: the drill stopped Redis in the outage phase (the
	// embedded one, or with -real-redis a redis-server of its own); a
	// Redis at REDIS_ADDR without -real-redis is left running.
	redisStops bool
	panics     int64    // panics the servers recovered from (their error logs)
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
	q := quickConfig()
	quick := fs.Bool("quick", false, fmt.Sprintf("a short drill: %d requests per phase and client, %d workers;\nan overload burst of %d requests a second for %s, %d workers (CI runs this)", q.requests, q.concurrency, q.burstRate, formatDuration(q.burstFor), q.burstPool))
	report := fs.String("report", "", "also write a self-contained HTML `file` with charts of the results\n(success rates, latency percentiles, every request's latency over time);\nthe file is created before the drill starts")
	metrics := fs.String("metrics", "", "serve the OpenTelemetry metrics of bulwark's stacks (gateway and instances)\nin the Prometheus text format at http://`addr`/metrics while the drill runs;\n:PORT listens on 127.0.0.1")
	realRedis := fs.Bool("real-redis", false, "use a real Redis and really stop and restart it in the Redis-outage phase:\nneeds REDIS_ADDR and redis-server on PATH. The drill runs redis-server\nitself (a child process, no persistence) at REDIS_ADDR if that port is\nfree on this machine, else on a free loopback port, and says so; it never\nstops a Redis it did not start")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		return config{}, "", err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "drill: unexpected argument %q: the drill takes only flags (see drill -h)\n", fs.Arg(0))
		return config{}, "", errors.New("unexpected argument")
	}
	cfg := fullConfig()
	if *quick {
		cfg = q
	}
	cfg.metrics = *metrics
	if *realRedis {
		addr := os.Getenv("REDIS_ADDR")
		if addr == "" {
			fmt.Fprintln(stderr, "drill: -real-redis needs REDIS_ADDR (host:port of the Redis to use, e.g. REDIS_ADDR=127.0.0.1:6379)")
			return config{}, "", errors.New("-real-redis without REDIS_ADDR")
		}
		cfg.realRedis = addr
	}
	return cfg, *report, nil
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	cfg := fullConfig()
	about := clientsAbout(cfg)
	fmt.Fprintf(w, `Usage: drill [-quick] [-report file] [-metrics addr] [-real-redis]

drill is bulwark's failure drill. It starts three instances (a, b, c) of a
small HTTP service on 127.0.0.1, each behind bulwark's server stack, with
their sessions and idempotency records in Redis (an embedded miniredis, or
the Redis at REDIS_ADDR). They serve a cacheable catalogue (GET /catalog),
orders (POST /orders), a cart kept in the session (GET and POST /cart)
and recommendations (GET /recommendations, never cached); each serves at
most 200 requests a second (8 cores, 40ms of work each, 90ms for a
recommendation). The drill sends the same load, GETs and POSTs in turn,
through two clients at the same time (one after the other in the burst),
phase by phase, while it breaks things (a Redis at REDIS_ADDR is left
running in the outage phase, unless -real-redis):

`)
	for i, ph := range phases {
		fmt.Fprintf(w, "  %d. %-18s %s\n", i+1, ph.name, wrap(ph.about, 52, 24))
	}
	fmt.Fprintf(w, `
The clients:

  bare     %s
  bulwark  %s

Sessions live in the instances (any instance serves any user, through
Redis); the gateway forwards the cookie.

It prints, per phase and client, the success rate, p50, p99 and max latency
and the side effects (orders, cart additions) done more than once; for
bulwark, its breaker changes, lb's ejections, and the requests the gateway
shed and throttled; what the cache, the sessions and the idempotency layers
did while Redis was down; then bulwark's targets, and exits with status 1 if
it missed one: instance down, at least 99.9%% success; latency spike, at
least 99%% success and a p99 after the phase's first second at most twice
the steady p99, or the 100ms hedge delay if that is more (the output says
why); nothing done twice; responses dropped, at least 99%% success;
overload, at least 99%% of the critical requests served (those never sent
count as failed), their p99 at most half the deadline, while sheddable ones
are shed; Redis outage, every catalogue GET served and no panic. A full
drill takes about 35 s, -quick about 15 s. Progress goes to stderr: a
bar on a terminal, one line per finished phase otherwise.

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

// serverPanics counts the panics the drill's HTTP servers recovered from
// (net/http logs each to the server's ErrorLog): the Redis-outage target
// says none happened.
var serverPanics atomic.Int64

// serverLog is the ErrorLog of every server of the drill: it counts panics
// and drops the rest (a dropped response's "broken pipe" is the drill's
// own doing).
var serverLog = log.New(panicCounter{}, "", 0)

type panicCounter struct{}

func (panicCounter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "panic") {
		serverPanics.Add(1)
	}
	return len(p), nil
}

// run runs the drill, prints its table to out and reports progress to p.
func run(out io.Writer, p *progress, cfg config) (*outcome, error) {
	o := &outcome{cfg: cfg, start: time.Now(), abouts: clientsAbout(cfg)}
	panicsBefore := serverPanics.Load()
	rc, err := startRedis(cfg.realRedis)
	if err != nil {
		return nil, err
	}
	defer rc.stop()
	rdb := rc.client
	o.redis = rc.where
	o.redisStops = rc.stops()
	// The metrics feed both -metrics and the drill's own counts (the
	// cache's tiers, the stores' errors).
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	if cfg.metrics != "" {
		ms, err := startMetrics(cfg.metrics, reader)
		if err != nil {
			return nil, err
		}
		defer ms.close()
		fmt.Fprintf(out, "metrics: %s (Prometheus text format)\n", ms.url)
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
	gw, err := startGateway(o.addrs, cfg, rdb, mp)
	if err != nil {
		return nil, err
	}
	defer gw.close()
	o.gateway = gw.addr
	fmt.Fprintf(out, "bulwark drill: 3 instances on %s, a gateway on %s, %s\n%d requests per phase and client (GET and POST in turn), %d workers, %s deadline per request; overload burst: %s\n\n",
		strings.Join(o.addrs, " "), gw.addr, o.redis, cfg.requests, cfg.concurrency, formatDuration(cfg.deadline), burstAbout(cfg))

	bare := newBareClient(o.addrs, cfg)
	defer bare.stop()
	guarded := newBulwarkCaller(gw, cfg, mp)
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
		o.began = append(o.began, began.Sub(o.start))
		brk, ej, shed, cnt := gw.breaker.Load(), gw.ejections.Load(), gw.shedCounts(), readCounts(reader)
		var row [2]stats
		runOne := func(j int, c *client) {
			offset := time.Since(began)
			prefix := fmt.Sprintf("%s/%d/", c.name, i)
			row[j] = summarise(load(c, cfg, ph, prefix, func() { p.step(j) }), ph.settle)
			row[j].offset = offset
			row[j].dups = ledger.duplicates(prefix) + ledger.duplicates("cart:"+prefix)
		}
		if ph.burst {
			// Each client's burst is a flood of its own, on its own:
			// two at once would each measure the other's flood.
			// Bare first: its burst, with the deadline's tail, leaves
			// the gateway idle for longer than its shedder's window,
			// so bulwark's burst meets a shedder that remembers
			// nothing of the ordinary phases (see gatewayShedWindow).
			for j, c := range clients {
				runOne(j, c)
			}
		} else {
			// Both clients face the same fault at the same time, side by
			// side.
			var wg sync.WaitGroup
			for j, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					runOne(j, c)
				}()
			}
			wg.Wait()
		}
		g := &row[1]
		g.breaker, g.ejections = gw.breaker.Load()-brk, gw.ejections.Load()-ej
		for c, n := range gw.shedCounts() {
			g.shed[c] = n - shed[c]
		}
		g.counts = readCounts(reader).minus(cnt)
		o.rows = append(o.rows, row)
		o.took = append(o.took, time.Since(began))
		p.endPhase(i, row)
	}
	p.stop()
	o.total = time.Since(o.start)
	o.panics = serverPanics.Load() - panicsBefore
	o.misses = judge(o)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\t\tbare ok\tp50\tp99\tmax\tdup\t\tbulwark ok\tp50\tp99\tmax\tdup\tbreaker\tejected\tshed\tthrottled\t")
	for i, ph := range phases {
		b, g := o.rows[i][0], o.rows[i][1]
		fmt.Fprintf(tw, "%s\t\t%s\t%s\t%s\t%s\t%d\t\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", ph.name,
			formatRate(b.rate()), formatDuration(b.p50), formatDuration(b.p99), formatDuration(b.max), b.dups,
			formatRate(g.rate()), formatDuration(g.p50), formatDuration(g.p99), formatDuration(g.max), g.dups,
			g.breaker, g.ejections, g.shedTotal(), g.throttled)
	}
	tw.Flush()
	fmt.Fprintln(out)
	fmt.Fprintln(out, "  dup: side effects (orders, cart additions) done more than once; breaker: state changes of the gateway's")
	fmt.Fprintln(out, "  breakers; ejected: instances lb took out of rotation (outlier ejection or failed health checks);")
	fmt.Fprintln(out, "  shed: requests the gateway's shedder refused (503); throttled: refused before they were sent by the")
	fmt.Fprintln(out, "  caller's adaptive throttling, or by the gateway's rate limit (429).")
	fmt.Fprintln(out, "  The bare client has none of these layers.")
	for _, ph := range phases {
		fmt.Fprintf(out, "  %-18s %s\n", ph.name+":", wrap(ph.about, 80, 21))
	}
	fmt.Fprintf(out, "\nbare:    %s\n", wrap(o.abouts[0], 70, 9))
	fmt.Fprintf(out, "bulwark: %s\n", wrap(o.abouts[1], 70, 9))
	fmt.Fprintf(out, "servers: %s\n", wrap("each instance runs bulwark's server stack (stack.NewServer): health probes, a 5s timeout, sessions and idempotency records in Redis. Both fail closed: while Redis is down, a request that needs its session, and a POST with an Idempotency-Key, are answered 503 (problem details) and not run, since no one could tell whether a POST already ran, nor run a cart without its session. The gateway's client counts those 503s as neutral: Redis is shared, so no instance is to blame, and its breakers and ejections stay out of it. Sessions live in the instances, not the gateway, which forwards the cookie: the instances are what uses them, and a session layer in the gateway would put a Redis round trip on every request, the catalogue's too.", 70, 9))
	if !o.redisStops {
		fmt.Fprintln(out, "note:    Redis is the one at REDIS_ADDR, which the drill does not stop without -real-redis: the Redis-outage phase ran with Redis up")
	}
	var injected []string
	for _, b := range bs {
		for name, n := range b.chaos.Injected() {
			injected = append(injected, fmt.Sprintf("%s on %s: %d", name, b.name, n))
		}
	}
	sort.Strings(injected)
	redisStop := "a real miniredis stop"
	if cfg.realRedis != "" {
		redisStop = "a real redis-server SHUTDOWN NOSAVE, then a restart"
	}
	fmt.Fprintf(out, "faults:  %s\n", wrap("injected by package chaos at each instance's edge (instance down is a real server stop, Redis outage "+redisStop+", the overload burst is load): "+strings.Join(injected, ", "), 70, 9))
	if r, ok := rowOf(o.rows, phaseOverload); ok {
		fmt.Fprintf(out, "\noverload burst, by criticality (%s):\n", burstAbout(cfg))
		overloadTable(out, r)
		fmt.Fprintf(out, "  critical requests that failed, by cause: bare: %s; bulwark: %s\n", causeList(causes(r[0], degrade.Critical)), causeList(causes(r[1], degrade.Critical)))
		if ev := gw.lastCritShed.Load(); ev != nil {
			fmt.Fprintf(out, "  the gateway last shed a critical request at %d in flight, against an estimated capacity of %.1f\n", ev.InFlight, ev.Capacity)
		}
		fmt.Fprintf(out, "  %s\n", wrap(overloadNote, 86, 2))
	}
	if r, ok := rowOf(o.rows, phaseRedis); ok {
		fmt.Fprintln(out, "\nRedis outage, what each part of bulwark's run did:")
		for _, l := range redisLines(r[1], o.redisStops, o.panics) {
			fmt.Fprintf(out, "  %s\n", wrap(l, 86, 4))
		}
	}
	fmt.Fprintln(out, "\nbulwark's targets:")
	for _, t := range targets(o) {
		mark := "ok  "
		if !t.met {
			mark = "MISS"
		}
		fmt.Fprintf(out, "  %s %s\n", mark, wrap(t.text, 82, 7))
	}
	fmt.Fprintf(out, "\ndrill finished in %s\n", formatDuration(o.total))
	return o, nil
}

// overloadTable writes, for each run and criticality, what became of the
// burst's requests.
func overloadTable(out io.Writer, r [2]stats) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\t\tarrived\tnot sent\tsent\tok\tshed\tthrottled\ttimed out\tother\tp50 (sent)\tp99 (sent)\t")
	for j, s := range r {
		for _, c := range []degrade.Criticality{degrade.Critical, degrade.Default, degrade.Sheddable} {
			n := causes(s, c)
			arrived := s.crits[c].n
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", seriesName[j], c, arrived, n[causeNotSent], arrived-n[causeNotSent], s.crits[c].ok,
				n[causeShed], n[causeThrottled]+n[causeLimited], n[causeDeadline]+n[causeGatewayTimeout], n[causeUnavailable]+n[causeOther], formatDuration(critPct(s, c, 50)), formatDuration(critPct(s, c, 99)))
		}
	}
	tw.Flush()
}

// overloadNote says what the burst shows.
const overloadNote = "not sent: arrived while every worker of the pool was busy, and counted as failed; shed: refused by the gateway's shedder (503); throttled: by the caller's adaptive throttling, or the gateway's rate limit (429); timed out: the caller's deadline passed, or the gateway answered 504. The bare run has no one to refuse work for it: the instances queue every request they get, the queue grows past what they serve in a deadline, and they spend their time on requests whose callers have given up, critical ones too. bulwark's gateway sheds the sheddable requests first and the default ones next, its callers throttle themselves, and the critical ones find the instances' queues short."

// redisLines say what the cache, the sessions and the idempotency layers
// did in bulwark's run while Redis was down.
func redisLines(g stats, stopped bool, panics int64) []string {
	c := g.counts
	if !stopped {
		return []string{"Redis stayed up (REDIS_ADDR without -real-redis): nothing to show."}
	}
	cat, ord, cg, cp := g.kinds[catalogGet], g.kinds[orderPost], g.kinds[cartGet], g.kinds[cartPost]
	return []string{
		fmt.Sprintf("cache: kept serving: %d of %d catalogue GETs served: %d from L1 (in process), %d from L2 (Redis), %d from the instances (the origin; the cache's %d misses less the %d cart GETs, which it never stores); %d Redis errors skipped, as configured (FailOnStoreError off).",
			cat.ok, cat.n, c.cacheL1, c.cacheL2, max(c.cacheMisses-int64(cg.n), 0), c.cacheMisses, cg.n, c.cacheStoreErrors),
		fmt.Sprintf("sessions: fail closed, as configured: %d of %d cart GETs served (a caller without a session needs no store); the others 503, never an empty cart; %d store errors.",
			cg.ok, cg.n, c.sessionStoreErrors),
		fmt.Sprintf("idempotency: fail closed, as configured: %d of %d POSTs with a key served (orders %d/%d, cart %d/%d); the layers refused %d (503) before they ran, since no one could tell whether they already had; %d store failures after a POST ran.",
			ord.ok+cp.ok, ord.n+cp.n, ord.ok, ord.n, cp.ok, cp.n, c.idemRefused, c.idemStoreErrors),
		fmt.Sprintf("panics: %d (counted from every server's error log).", panics),
	}
}

// critP99 is the p99 latency of s's requests of criticality c that were
// sent.
func critP99(s stats, c degrade.Criticality) time.Duration { return critPct(s, c, 99) }

// critPct is the pct-th percentile latency of s's requests of criticality
// c that were sent.
func critPct(s stats, c degrade.Criticality, pct int) time.Duration {
	var lat []time.Duration
	for _, r := range s.results {
		if r.crit == c && r.cause != causeNotSent {
			lat = append(lat, r.latency)
		}
	}
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, len(lat)*pct/100)]
}

// causes counts s's failed requests of criticality c by cause.
func causes(s stats, c degrade.Criticality) [numCauses]int {
	var n [numCauses]int
	for _, r := range s.results {
		if r.crit == c && !r.ok {
			n[r.cause]++
		}
	}
	return n
}

// causeList writes counts by cause as "3 shed (503), 1 caller's
// deadline", or "none".
func causeList(n [numCauses]int) string {
	var parts []string
	for c, k := range n {
		if k > 0 && cause(c) != causeOK {
			parts = append(parts, fmt.Sprintf("%d %s", k, cause(c)))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
