// Command drill is bulwark's main demo: a scripted failure drill against a
// small service, run twice at the same time, once through a bare net/http
// client and once through a client built from bulwark's packages, with the
// results printed side by side, phase by phase.
//
//	go run ./examples/drill            # the full drill: about 13 s once compiled
//	go run ./examples/drill -quick     # a short run (used by CI): about 5 s
//	go run ./examples/drill -report drill-report.html
//	go run ./examples/drill -h         # the phases, the clients and the flags
//
// The first `go run` also compiles bulwark and its dependencies: about 15 s
// on a 2-vCPU machine with an empty build cache, 25 s if the modules must be
// downloaded too. Later runs start at once.
//
// It needs nothing but Go: the service's instances are real HTTP servers on
// loopback (127.0.0.1), started and broken by the drill itself. Most of its
// time goes to the latency-spike phase, where the bare client waits out its
// deadline on every request that lands on the slow instance.
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
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// phase is one step of the drill: a fault switched on before the load runs
// and off after it.
type phase struct {
	name  string
	about string
	setup func(bs []*backend) error
	// least is the least time the phase's fault forces on the bare
	// client (the slowest of the two), for the progress estimate; zero
	// for a phase that runs at the speed of loopback.
	least func(cfg config) time.Duration
}

var phases = []phase{
	{"steady", "all three instances healthy", func(bs []*backend) error { return nil }, nil},
	{"instance down", "instance b refuses connections", func(bs []*backend) error {
		bs[1].down()
		return nil
	}, nil},
	{"latency spike", "b is back; instance a answers after 1.5s", func(bs []*backend) error {
		bs[0].delay.Store(int64(1500 * time.Millisecond))
		return bs[1].up()
	}, func(cfg config) time.Duration {
		// Round-robin sends a third of the bare client's requests to a,
		// and each holds a worker until its deadline.
		return time.Duration(cfg.requests/3) * min(cfg.deadline, 1500*time.Millisecond) / time.Duration(cfg.concurrency)
	}},
	{"recovered", "all healthy again", func(bs []*backend) error {
		bs[0].delay.Store(0)
		return nil
	}, nil},
}

// clientsAbout describes the two clients, for the summary and the report.
// It must follow newBareClient and newBulwarkClient in stack.go.
func clientsAbout(cfg config) [2]string {
	return [2]string{
		fmt.Sprintf("net/http with a round-robin over the instances and a %s timeout", formatDuration(cfg.deadline)),
		"the same, plus retry (budget, hedging after 100ms), a breaker per instance and a 250ms per-attempt timeout",
	}
}

// result is what one request did.
type result struct {
	ok      bool
	latency time.Duration
}

// stats summarise one phase for one client.
type stats struct {
	n, ok         int
	p50, p99, max time.Duration
}

func summarise(rs []result) stats {
	s := stats{n: len(rs)}
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.ok {
			s.ok++
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
	return 0
}

// parseFlags parses the command line. It prints its own errors and usage
// to stderr; flag.ErrHelp means -h was asked for.
func parseFlags(args []string, stderr io.Writer) (config, string, error) {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a short drill: 60 requests per phase and client, 6 workers (CI runs this)")
	report := fs.String("report", "", "also write a self-contained HTML `file` with charts of the results;\nthe file is created before the drill starts")
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
	return cfg, *report, nil
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	cfg := config{requests: 300, concurrency: 8, deadline: time.Second}
	about := clientsAbout(cfg)
	fmt.Fprintf(w, `Usage: drill [-quick] [-report file]

drill is bulwark's failure drill. It starts three instances (a, b, c) of a
small HTTP service on 127.0.0.1, then sends the same load through two clients
at the same time, phase by phase, while it breaks the instances:

`)
	for i, ph := range phases {
		fmt.Fprintf(w, "  %d. %-14s %s\n", i+1, ph.name, ph.about)
	}
	fmt.Fprintf(w, `
The clients:

  bare     %s
  bulwark  %s

It prints each client's success rate and p50/p99 latency per phase. A full
drill takes about 13 s (mostly the latency spike, where the bare client waits
out its deadline); -quick about 5 s. Progress goes to stderr: a bar on a
terminal, one line per finished phase otherwise.

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
	name string
	http *http.Client
	stop func()
}

// run runs the drill, prints its table to out and reports progress to p.
func run(out io.Writer, p *progress, cfg config) (*outcome, error) {
	o := &outcome{cfg: cfg, start: time.Now(), abouts: clientsAbout(cfg)}
	var bs []*backend
	for _, name := range []string{"a", "b", "c"} {
		b, err := startBackend(name)
		if err != nil {
			return nil, err
		}
		defer b.close()
		bs = append(bs, b)
	}
	for _, b := range bs {
		o.addrs = append(o.addrs, b.addr)
	}
	fmt.Fprintf(out, "bulwark drill: 3 instances on %s, %d requests per phase and client, %d workers, %s deadline per request\n\n",
		strings.Join(o.addrs, " "), cfg.requests, cfg.concurrency, formatDuration(cfg.deadline))

	bare := newBareClient(o.addrs, cfg)
	defer bare.stop()
	guarded := newBulwarkClient(o.addrs, cfg)
	defer guarded.stop()
	clients := []*client{bare, guarded}

	p.start(cfg, len(clients))
	defer p.stop()
	for i, ph := range phases {
		if err := ph.setup(bs); err != nil {
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
				row[j] = summarise(load(c.http, cfg, func() { p.step(j) }))
			}()
		}
		wg.Wait()
		o.rows = append(o.rows, row)
		o.took = append(o.took, time.Since(began))
		p.endPhase(i, row)
	}
	p.stop()
	o.total = time.Since(o.start)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\t\tbare ok\tp50\tp99\t\tbulwark ok\tp50\tp99\t")
	for i, ph := range phases {
		b, g := o.rows[i][0], o.rows[i][1]
		fmt.Fprintf(tw, "%s\t\t%s\t%s\t%s\t\t%s\t%s\t%s\t\n", ph.name,
			formatRate(b.rate()), formatDuration(b.p50), formatDuration(b.p99),
			formatRate(g.rate()), formatDuration(g.p50), formatDuration(g.p99))
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, ph := range phases {
		fmt.Fprintf(out, "  %-14s %s\n", ph.name+":", ph.about)
	}
	fmt.Fprintf(out, "\nbare:    %s\n", wrap(o.abouts[0], 72, 9))
	fmt.Fprintf(out, "bulwark: %s\n", wrap(o.abouts[1], 72, 9))
	fmt.Fprintln(out, "coming in later drills: overload burst (limit, degrade) and Redis outage (session, idempotency)")
	fmt.Fprintf(out, "\ndrill finished in %s\n", formatDuration(o.total))
	return o, nil
}

// load sends cfg.requests GET requests through c with cfg.concurrency
// workers and returns what each did. The loop is bounded by the count, and
// each request by its deadline.
func load(c *http.Client, cfg config, step func()) []result {
	results := make([]result, cfg.requests)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.requests {
					return
				}
				results[i] = one(c, cfg.deadline)
				step()
			}
		}()
	}
	wg.Wait()
	return results
}

func one(c *http.Client, deadline time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://service/hello", nil)
	if err != nil {
		return result{latency: time.Since(start)}
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{latency: time.Since(start)}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return result{ok: err == nil && resp.StatusCode == http.StatusOK, latency: time.Since(start)}
}
