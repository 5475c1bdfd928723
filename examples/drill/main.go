// Command drill is bulwark's main demo: a scripted failure drill against a
// small service, run twice, once through a bare net/http client and once
// through a client built from bulwark's packages, with the results printed
// side by side, phase by phase.
//
//	go run ./examples/drill            # the full drill, a few seconds
//	go run ./examples/drill -quick     # a short run (used by CI)
//	go run ./examples/drill -report drill-report.html
//
// It needs nothing but Go: the service's instances are real HTTP servers on
// loopback (127.0.0.1), started and broken by the drill itself.
package main

import (
	"context"
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
}

var phases = []phase{
	{"steady", "all three instances healthy", func(bs []*backend) error { return nil }},
	{"instance down", "instance b refuses connections", func(bs []*backend) error {
		bs[1].down()
		return nil
	}},
	{"latency spike", "b is back; instance a answers after 1.5s", func(bs []*backend) error {
		bs[0].delay.Store(int64(1500 * time.Millisecond))
		return bs[1].up()
	}},
	{"recovered", "all healthy again", func(bs []*backend) error {
		bs[0].delay.Store(0)
		return nil
	}},
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

func main() {
	quick := flag.Bool("quick", false, "a short drill (fewer requests per phase)")
	report := flag.String("report", "", "also write an HTML report with charts to this file")
	flag.Parse()

	cfg := config{requests: 300, concurrency: 8, deadline: time.Second}
	if *quick {
		cfg.requests = 60
		cfg.concurrency = 6
	}
	if _, err := run(os.Stdout, cfg, *report); err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
}

// client is one of the two contestants.
type client struct {
	name string
	http *http.Client
	stop func()
}

// run runs the drill, prints its table to out, and returns each phase's
// stats for the bare and the bulwark client.
func run(out io.Writer, cfg config, reportPath string) ([][2]stats, error) {
	var bs []*backend
	for _, name := range []string{"a", "b", "c"} {
		b, err := startBackend(name)
		if err != nil {
			return nil, err
		}
		defer b.close()
		bs = append(bs, b)
	}
	addrs := make([]string, len(bs))
	for i, b := range bs {
		addrs[i] = b.addr
	}
	fmt.Fprintf(out, "bulwark drill: 3 instances on %s, %d requests per phase and client, %d workers, %v deadline per request\n\n",
		strings.Join(addrs, " "), cfg.requests, cfg.concurrency, cfg.deadline)

	bare := newBareClient(addrs, cfg)
	defer bare.stop()
	guarded := newBulwarkClient(addrs, cfg)
	defer guarded.stop()
	clients := []*client{bare, guarded}

	rows := make([][2]stats, 0, len(phases))
	progress := newProgress(os.Stderr, len(phases)*len(clients)*cfg.requests)
	for _, ph := range phases {
		if err := ph.setup(bs); err != nil {
			return nil, err
		}
		var row [2]stats
		// Both clients face the same fault at the same time, side by side.
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				row[i] = summarise(load(c.http, cfg, progress))
			}()
		}
		wg.Wait()
		rows = append(rows, row)
	}
	progress.finish()

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\t\tbare ok\tp50\tp99\t\tbulwark ok\tp50\tp99\t")
	for i, ph := range phases {
		b, g := rows[i][0], rows[i][1]
		fmt.Fprintf(tw, "%s\t\t%.1f%%\t%v\t%v\t\t%.1f%%\t%v\t%v\t\n", ph.name,
			b.rate(), round(b.p50), round(b.p99), g.rate(), round(g.p50), round(g.p99))
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, ph := range phases {
		fmt.Fprintf(out, "  %-14s %s\n", ph.name+":", ph.about)
	}
	fmt.Fprintln(out, "\nbare:    net/http with a round-robin over the instances and a 1s timeout")
	fmt.Fprintln(out, "bulwark: the same, plus retry (budget, hedging after 100ms), a breaker per instance and a 250ms per-attempt timeout")
	fmt.Fprintln(out, "coming in later drills: overload burst (limit, degrade) and Redis outage (session, idempotency)")
	if reportPath != "" {
		if err := writeReport(reportPath, cfg, rows); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "\nreport written to %s\n", reportPath)
	}
	return rows, nil
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// load sends cfg.requests GET requests through c with cfg.concurrency
// workers and returns what each did. The loop is bounded by the count, and
// each request by its deadline.
func load(c *http.Client, cfg config, p *progress) []result {
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
				p.step()
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

// progress draws a bar on a terminal, and nothing elsewhere (CI logs stay
// clean).
type progress struct {
	w     io.Writer
	total int64
	done  atomic.Int64
	tty   bool
	mu    sync.Mutex
	last  int
}

func newProgress(f *os.File, total int) *progress {
	fi, err := f.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return &progress{w: f, total: int64(total), tty: tty}
}

func (p *progress) step() {
	n := p.done.Add(1)
	if !p.tty {
		return
	}
	const width = 40
	filled := int(n * width / p.total)
	p.mu.Lock()
	defer p.mu.Unlock()
	if filled == p.last && n != p.total {
		return
	}
	p.last = filled
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), n*100/p.total)
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", 50)+"\r")
	}
}
