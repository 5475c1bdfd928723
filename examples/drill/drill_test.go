package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/degrade"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDrill runs a small drill end to end over real loopback servers and
// checks what the demo claims: with an instance down, the bare client loses
// exactly the requests sent to it, and bulwark's gateway loses fewer; no
// side effect is done twice through bulwark; while Redis is down the
// catalogue is still served and the POSTs are refused (fail closed); the
// overload burst sends every criticality; and that, without a terminal,
// progress is one line per phase, in order.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers for a few seconds")
	}
	var out, prog bytes.Buffer
	o, err := run(&out, &progress{w: &prog, phase: -1}, config{requests: 32, concurrency: 4, burstRate: 400, burstFor: time.Second, burstPool: 200, deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rows := o.rows
	if len(rows) != len(phases) || len(o.took) != len(phases) || len(o.began) != len(phases) {
		t.Fatalf("%d rows, %d phase times and %d starts for %d phases", len(rows), len(o.took), len(o.began), len(phases))
	}
	steady, down, dropped := rows[0], rows[1], rows[phaseIndex(phaseDropped)]
	// Real servers on a shared machine: allow a slow request or two in the
	// healthy phase, but not the loss of a whole instance.
	if steady[0].ok < 29 || steady[1].ok < 29 {
		t.Errorf("steady phase: bare %d, bulwark %d of %d ok", steady[0].ok, steady[1].ok, steady[0].n)
	}
	if down[0].ok > 22 {
		t.Errorf("instance down: bare %d of 32 ok, want at most 22 (round-robin over 3, one refusing)", down[0].ok)
	}
	if down[1].ok <= down[0].ok {
		t.Errorf("instance down: bulwark %d ok, not better than bare %d", down[1].ok, down[0].ok)
	}
	// Instance b did the work of every request it got, then dropped the
	// response: the bare client loses a third of its requests; the
	// gateway retries them elsewhere, and the instances' idempotency
	// records make the retried POSTs act once.
	if dropped[0].ok > 22 {
		t.Errorf("responses dropped: bare %d of 32 ok, want at most 22", dropped[0].ok)
	}
	// A retry goes to an instance the request's earlier attempts did not
	// use (lb's previous-hosts rule), so a POST whose response b dropped
	// is answered by another instance on its second attempt: allow one
	// loss in 32 for an attempt timeout on a loaded machine (the drill's
	// own target, over 300 requests, is 99%).
	if dropped[1].ok < 31 || dropped[1].ok <= dropped[0].ok {
		t.Errorf("responses dropped: bulwark %d of 32 ok (bare %d), want all but one at worst; failed: %s", dropped[1].ok, dropped[0].ok, failures(dropped[1]))
	}
	for i, row := range rows {
		if row[1].dups != 0 {
			t.Errorf("phase %q: bulwark did %d side effects twice", phases[i].name, row[1].dups)
		}
	}
	spike := rows[phaseIndex(phaseSpike)]
	if spike[1].settled == 0 || spike[1].n <= 32 {
		t.Errorf("latency spike: bulwark sent %d requests, %d after the settle time: the phase's hold did not keep it sending", spike[1].n, spike[1].settled)
	}
	// The burst sends all three criticalities, through both clients.
	burst := rows[phaseIndex(phaseOverload)]
	for j, s := range burst {
		for c, tl := range s.crits {
			if tl.n == 0 {
				t.Errorf("overload burst: %s sent no %s request", seriesName[j], degrade.Criticality(c))
			}
		}
	}
	// Each client's burst runs alone, bare first: bulwark's starts after
	// the last of bare's requests ended.
	end := time.Duration(0)
	for _, r := range burst[0].results {
		end = max(end, burst[0].offset+r.start+r.latency)
	}
	if burst[1].offset < end {
		t.Errorf("overload burst: bulwark's load began at %v, before bare's ended (%v): not one after the other", burst[1].offset, end)
	}
	// Open loop: both runs got the same schedule, every arrival
	// accounted for, sent or not.
	want := len(burstSchedule(burstSeed, 400, time.Second))
	for j, s := range burst {
		if s.n != want {
			t.Errorf("overload burst: %s has %d requests, want the schedule's %d", seriesName[j], s.n, want)
		}
	}
	// Redis down: the catalogue is served (L1, origin), the keyed POSTs
	// are refused (fail closed); then everything recovers.
	redis, recovered := rows[phaseIndex(phaseRedis)], rows[len(rows)-1]
	g := redis[1]
	if !o.redisStops { // REDIS_ADDR: a real Redis, left running
		if g.ok < g.n-1 {
			t.Errorf("Redis outage with a real Redis left running: bulwark %d of %d ok, want all but one at worst", g.ok, g.n)
		}
	} else {
		if cat := g.kinds[catalogGet]; cat.ok != cat.n || cat.n == 0 {
			t.Errorf("Redis outage: bulwark served %d of %d catalogue GETs, want every one", cat.ok, cat.n)
		}
		if n := g.kinds[orderPost].ok + g.kinds[cartPost].ok; n != 0 {
			t.Errorf("Redis outage: bulwark ran %d POSTs, want none (idempotency fails closed)", n)
		}
		if g.counts.cacheStoreErrors == 0 && g.counts.cacheMisses > 0 {
			t.Errorf("Redis outage: the cache went to the origin %d times without a Redis error: was Redis down?", g.counts.cacheMisses)
		}
	}
	if recovered[1].ok < recovered[1].n-1 {
		t.Errorf("recovered: bulwark %d of %d ok, want all but one at worst", recovered[1].ok, recovered[1].n)
	}
	if o.panics != 0 {
		t.Errorf("%d panics in the servers", o.panics)
	}
	if n := len(targets(o)); n != 7 {
		t.Errorf("%d targets judged, want 7", n)
	}
	for _, ph := range phases {
		if !strings.Contains(out.String(), ph.name) {
			t.Errorf("output lacks phase %q:\n%s", ph.name, out.String())
		}
	}
	flat := strings.Join(strings.Fields(out.String()), " ") // the lines are wrapped
	// The faults come from package chaos, which counts them.
	wants := []string{"dropped response on b: ", "latency spike on a: "}
	if o.redisStops {
		// What each part did while Redis was down, one line each (a
		// Redis at REDIS_ADDR is left running, and there is nothing to
		// tell).
		wants = append(wants, "cache: ", "sessions: ", "idempotency: ", "panics: ")
	}
	for _, want := range append(wants,
		// The overload burst, by criticality.
		"overload burst, by criticality", "bulwark critical", "bare sheddable", "not sent", "timed out",
		"critical requests that failed, by cause: bare: ") {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "drill finished in ") {
		t.Errorf("output lacks its closing line:\n%s", out.String())
	}
	if !strings.HasSuffix(prog.String(), "\n\n") {
		t.Errorf("progress does not end with a blank line before the results: %q", prog.String())
	}
	lines := strings.Split(strings.TrimSpace(prog.String()), "\n")
	if len(lines) != len(phases) {
		t.Fatalf("progress without a terminal: %d lines for %d phases:\n%s", len(lines), len(phases), prog.String())
	}
	for i, l := range lines {
		want := "drill: phase " + strconv.Itoa(i+1) + "/" + strconv.Itoa(len(phases)) + " " + phases[i].name + " "
		if !strings.HasPrefix(l, want) || strings.Contains(l, "\r") || strings.Contains(l, "\x1b") {
			t.Errorf("progress line %d = %q, want a plain line starting %q", i+1, l, want)
		}
	}
}

// TestProgressOnTerminal checks the live line: phase, elapsed time and an
// estimate, and an estimate for the latency spike that counts the bare
// client's deadlines rather than the requests already done.
func TestProgressOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, tty: true, phase: -1}
	cfg := fullConfig()
	p.start(cfg, 2)
	p.beginPhase(2) // latency spike
	for range 200 { // the bulwark client is nearly done, the bare one not
		p.step(1)
	}
	p.step(0)
	p.mu.Lock()
	left := p.left(p.phaseBegan) // as if no time had passed: no timing in this test
	p.mu.Unlock()
	p.stop()
	p.stop() // a second stop is harmless

	if want := phases[2].least(cfg); left < want-time.Second {
		t.Errorf("estimate at the start of the latency spike = %v, want at least %v (100 requests × 1s deadline / 8 workers)", left, want)
	}
	s := buf.String()
	for _, want := range []string{"3/7 latency spike", "elapsed", "left", "["} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal progress %q lacks %q", s, want)
		}
	}
	for _, l := range strings.Split(s, "\r") {
		if l = strings.TrimSuffix(l, "\x1b[K"); utf8.RuneCountInString(l) > 79 {
			t.Errorf("progress line of %d columns would wrap on an 80-column terminal: %q", utf8.RuneCountInString(l), l)
		}
	}
	if !strings.HasSuffix(s, "\r\x1b[K") {
		t.Errorf("terminal progress does not clear its line when it stops: %q", s)
	}
}

func TestFlags(t *testing.T) {
	t.Run("help describes the drill", func(t *testing.T) {
		var stderr bytes.Buffer
		_, _, err := parseFlags([]string{"-h"}, &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("-h: %v, want flag.ErrHelp", err)
		}
		help := stderr.String()
		for _, want := range []string{"Usage: drill ", "-quick", "-report", "-metrics", "-real-redis", "redis-server", "REDIS_ADDR", "status 1", "bare", "bulwark", "gateway", "127.0.0.1", "latency over time", "critical", "sheddable"} {
			if !strings.Contains(help, want) {
				t.Errorf("help lacks %q:\n%s", want, help)
			}
		}
		for _, ph := range phases {
			if !strings.Contains(help, ph.name) || !strings.Contains(strings.Join(strings.Fields(help), " "), ph.about) {
				t.Errorf("help lacks phase %q:\n%s", ph.name, help)
			}
		}
		if strings.Contains(help, "go-build") || strings.Contains(help, os.TempDir()) {
			t.Errorf("help names a build path:\n%s", help)
		}
	})
	t.Run("stray argument", func(t *testing.T) {
		var stderr bytes.Buffer
		_, _, err := parseFlags([]string{"-quick", "extra"}, &stderr)
		if err == nil || !strings.Contains(stderr.String(), `unexpected argument "extra"`) {
			t.Errorf("stray argument: err %v, stderr %q", err, stderr.String())
		}
	})
	t.Run("real-redis without REDIS_ADDR", func(t *testing.T) {
		t.Setenv("REDIS_ADDR", "")
		var stderr bytes.Buffer
		_, _, err := parseFlags([]string{"-real-redis"}, &stderr)
		if err == nil || !strings.Contains(stderr.String(), "-real-redis needs REDIS_ADDR") {
			t.Errorf("-real-redis without REDIS_ADDR: err %v, stderr %q", err, stderr.String())
		}
	})
	t.Run("real-redis with REDIS_ADDR", func(t *testing.T) {
		t.Setenv("REDIS_ADDR", "127.0.0.1:6390")
		cfg, _, err := parseFlags([]string{"-quick", "-real-redis"}, &bytes.Buffer{})
		if err != nil || cfg.realRedis != "127.0.0.1:6390" || cfg.requests != quickConfig().requests {
			t.Errorf("-quick -real-redis: %+v %v", cfg, err)
		}
	})
	t.Run("quick", func(t *testing.T) {
		cfg, report, err := parseFlags([]string{"-quick", "-report", "r.html"}, &bytes.Buffer{})
		if err != nil || cfg.requests != 60 || report != "r.html" {
			t.Errorf("-quick -report r.html: %+v %q %v", cfg, report, err)
		}
	})
}

// TestCLIExitStatus checks the exit statuses that do not run a drill: a
// stray argument and an unwritable report path are usage errors (2),
// reported before any load is sent.
func TestCLIExitStatus(t *testing.T) {
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	t.Setenv("REDIS_ADDR", "")
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"extra"}, 2},
		{[]string{"-real-redis"}, 2}, // without REDIS_ADDR
		{[]string{"-nosuchflag"}, 2},
		{[]string{"-report", filepath.Join(t.TempDir(), "no", "such", "dir", "r.html")}, 2},
		{[]string{"-help"}, 0},
	} {
		var stdout bytes.Buffer
		if got := cli(tc.args, &stdout, stderr); got != tc.want {
			t.Errorf("drill %v: exit %d, want %d", tc.args, got, tc.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("drill %v ran the drill: %q", tc.args, stdout.String())
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0ns"},
		{850, "850ns"},
		{31 * time.Microsecond, "31µs"},
		{430_400, "430µs"},
		{999_700, "1ms"},
		{time.Millisecond, "1ms"},
		{9_300_000, "9.3ms"},
		{10 * time.Millisecond, "10ms"},
		{251_600_000, "252ms"},
		{time.Second, "1s"},
		{1_005_600_000, "1.01s"},
		{12_340_000_000, "12.3s"},
		{-2 * time.Millisecond, "-2ms"},
	} {
		if got := formatDuration(tc.d); got != tc.want {
			t.Errorf("formatDuration(%d) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// node is any XML element, for walking the report's SVG.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n *node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *node) walk(f func(*node)) {
	f(n)
	for i := range n.Children {
		n.Children[i].walk(f)
	}
}

// text is the element's text with its descendants'.
func (n *node) text() string {
	var b strings.Builder
	n.walk(func(m *node) { b.WriteString(m.Text) })
	return strings.TrimSpace(b.String())
}

// TestReport parses a report of a drill whose latencies span four orders of
// magnitude, as real ones do, and checks its structure: self-contained,
// every chart has both series with a bar for every phase, both axes with
// labelled ticks, every bar tall enough to read, and the same numbers in
// the charts as in the table.
func TestReport(t *testing.T) {
	rows := [][2]stats{
		{{n: 300, ok: 300, p50: 430 * time.Microsecond, p99: 9300 * time.Microsecond}, {n: 300, ok: 300, p50: 420 * time.Microsecond, p99: 8600 * time.Microsecond}},
		{{n: 300, ok: 200, p50: 31 * time.Microsecond, p99: 5100 * time.Microsecond}, {n: 300, ok: 300, p50: 147 * time.Microsecond, p99: 51 * time.Millisecond}},
		{{n: 300, ok: 200, p50: 282 * time.Microsecond, p99: 1005600 * time.Microsecond}, {n: 300, ok: 299, p50: 146 * time.Microsecond, p99: 251600 * time.Microsecond}},
		{{n: 300, ok: 200, p50: 126 * time.Microsecond, p99: 11800 * time.Microsecond}, {n: 300, ok: 300, p50: 769 * time.Microsecond, p99: 27600 * time.Microsecond}},
		{{n: 3000, ok: 3000, p50: 28 * time.Millisecond, p99: 66 * time.Millisecond}, {n: 3000, ok: 1100, p50: 2 * time.Millisecond, p99: 156 * time.Millisecond}},
		{{n: 300, ok: 300, p50: 151 * time.Microsecond, p99: 737 * time.Microsecond}, {n: 300, ok: 150, p50: 201 * time.Millisecond, p99: 229 * time.Millisecond}},
		{{n: 300, ok: 0, p50: 377 * time.Microsecond, p99: 8500 * time.Microsecond}, {n: 300, ok: 300, p50: 406 * time.Microsecond, p99: 6300 * time.Microsecond}},
	}
	// Every request, for the timeline: three per phase and client, one
	// of bare's failed, sent 10ms apart from the client's own start.
	var began, took []time.Duration
	for i := range rows {
		began = append(began, time.Duration(i)*time.Second)
		took = append(took, time.Second)
		for j := range rows[i] {
			rows[i][j].offset = time.Duration(j) * 100 * time.Millisecond
			for k := range 3 {
				rows[i][j].results = append(rows[i][j].results, result{ok: j == 1 || k > 0, start: time.Duration(k) * 10 * time.Millisecond, latency: time.Duration(k+1) * time.Millisecond})
			}
		}
	}
	o := &outcome{
		cfg:    fullConfig(),
		start:  time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC),
		rows:   rows,
		took:   took,
		began:  began,
		total:  15 * time.Second,
		addrs:  []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"},
		abouts: clientsAbout(fullConfig()),
	}
	var buf bytes.Buffer
	if err := writeReport(&buf, o); err != nil {
		t.Fatal(err)
	}
	page := buf.String()

	// Self-contained: nothing fetched from elsewhere.
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url(", " src=", "href="} {
		if strings.Contains(page, bad) {
			t.Errorf("report contains %q: it must not load anything", bad)
		}
	}
	// What ran, where, with what.
	for _, want := range []string{"2026-11-28 14:00:00 UTC", "go1.", "CPUs", o.abouts[0], o.abouts[1], "300 requests (GETs and POSTs in turn)", "15s", "Latency over time", "<th>dup</th>", "<th>breaker</th>", "<th>ejected</th>", "<th>shed</th>", "<th>throttled</th>"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, ph := range phases {
		if !strings.Contains(page, ph.about) {
			t.Errorf("report does not say what phase %q did", ph.name)
		}
	}

	svgs := regexp.MustCompile(`(?s)<svg\b.*?</svg>`).FindAllString(page, -1)
	if len(svgs) != 4 {
		t.Fatalf("%d charts, want 4 (success rate, p50, p99, latency over time)", len(svgs))
	}
	charts := map[string]*node{}
	for _, s := range svgs {
		var root node
		if err := xml.Unmarshal([]byte(s), &root); err != nil {
			t.Fatalf("chart is not well-formed SVG: %v\n%s", err, s)
		}
		charts[root.attr("data-chart")] = &root
	}
	for _, id := range []string{"rate", "p50", "p99"} {
		root := charts[id]
		if root == nil {
			t.Errorf("no %s chart", id)
			continue
		}
		bars := map[string]map[string]*node{} // series -> phase -> bar
		axes := map[string][]string{}         // axis -> tick labels
		legend := 0
		root.walk(func(n *node) {
			switch {
			case n.XMLName.Local == "g" && n.attr("class") == "series":
				bars[n.attr("data-series")] = map[string]*node{}
				for i := range n.Children {
					if b := &n.Children[i]; b.XMLName.Local == "rect" {
						bars[n.attr("data-series")][b.attr("data-phase")] = b
					}
				}
			case n.XMLName.Local == "g" && n.attr("class") == "axis":
				axes[n.attr("data-axis")] = []string{}
				for i := range n.Children {
					if tk := &n.Children[i]; tk.attr("class") == "tick" {
						axes[n.attr("data-axis")] = append(axes[n.attr("data-axis")], tk.text())
					}
				}
			case n.attr("class") == "legend-item":
				legend++
			}
		})
		if legend != 2 {
			t.Errorf("%s chart: %d legend items, want 2", id, legend)
		}
		if len(axes["y"]) < 3 {
			t.Errorf("%s chart: y axis ticks %q, want at least 3 labelled", id, axes["y"])
		}
		var phaseNames []string
		for _, ph := range phases {
			phaseNames = append(phaseNames, ph.name)
		}
		if strings.Join(axes["x"], "|") != strings.Join(phaseNames, "|") {
			t.Errorf("%s chart: x axis labels %q, want the phases %q", id, axes["x"], phaseNames)
		}
		for si, series := range []string{"bare", "bulwark"} {
			if len(bars[series]) != len(phases) {
				t.Errorf("%s chart: series %s has %d bars, want %d", id, series, len(bars[series]), len(phases))
				continue
			}
			for pi, ph := range phases {
				b := bars[series][ph.name]
				if b == nil {
					t.Errorf("%s chart: no %s bar for phase %q", id, series, ph.name)
					continue
				}
				h, err := strconv.ParseFloat(b.attr("height"), 64)
				if err != nil {
					t.Fatalf("%s chart: bar height %q", id, b.attr("height"))
				}
				s := rows[pi][si]
				var want string
				switch id {
				case "rate":
					want = formatRate(s.rate())
				case "p50":
					want = formatDuration(s.p50)
				case "p99":
					want = formatDuration(s.p99)
				}
				if b.attr("data-value") != want {
					t.Errorf("%s chart, %s %s: value %q, want %q as in the table", id, series, ph.name, b.attr("data-value"), want)
				}
				if !strings.Contains(page, "<td>"+want+"</td>") {
					t.Errorf("table lacks %q (the %s %s %s)", want, series, ph.name, id)
				}
				// Every latency bar must be readable: a log scale keeps
				// 31µs and 1s both well above a sliver.
				if id != "rate" && h < 10 {
					t.Errorf("%s chart, %s %s: bar %.1f units tall for %s: unreadable", id, series, ph.name, h, want)
				}
			}
		}
	}
	// The timeline: every request of both series, the failed ones apart,
	// a boundary and a band for every phase, time on x in seconds and a
	// logarithmic latency on y.
	if tl := charts["timeline"]; tl == nil {
		t.Error("no latency-over-time chart")
	} else {
		boundaries, bands := map[string]bool{}, map[string]bool{}
		series := map[string][2]string{}
		axes := map[string][]string{}
		tl.walk(func(n *node) {
			switch n.attr("class") {
			case "phase-boundary":
				boundaries[n.attr("data-phase")] = true
			case "phase-band":
				bands[n.attr("data-phase")] = true
			case "series":
				series[n.attr("data-series")] = [2]string{n.attr("data-requests"), n.attr("data-failed")}
				for i := range n.Children {
					if p := &n.Children[i]; p.XMLName.Local == "path" {
						dots := strings.Count(p.attr("d"), "M")
						want := map[string]int{"ok": 0, "failed": 0}
						for _, row := range rows {
							for _, r := range row[map[string]int{"bare": 0, "bulwark": 1}[n.attr("data-series")]].results {
								if r.ok {
									want["ok"]++
								} else {
									want["failed"]++
								}
							}
						}
						if dots != want[p.attr("class")] {
							t.Errorf("timeline, %s %s: %d dots, want %d", n.attr("data-series"), p.attr("class"), dots, want[p.attr("class")])
						}
					}
				}
			case "axis":
				for i := range n.Children {
					if tk := &n.Children[i]; tk.attr("class") == "tick" {
						axes[n.attr("data-axis")] = append(axes[n.attr("data-axis")], tk.text())
					}
				}
			}
		})
		for _, ph := range phases {
			if !boundaries[ph.name] || !bands[ph.name] {
				t.Errorf("timeline: phase %q has no boundary or band", ph.name)
			}
		}
		if series["bare"] != [2]string{"21", "7"} || series["bulwark"] != [2]string{"21", "0"} {
			t.Errorf("timeline series (requests, failed) = %v, want bare 21/7 and bulwark 21/0", series)
		}
		if len(axes["x"]) < 5 || axes["x"][0] != "0s" || axes["x"][1] != "1s" {
			t.Errorf("timeline x axis ticks %q, want 0s, 1s, ...", axes["x"])
		}
		if len(axes["y"]) < 2 || !strings.HasSuffix(axes["y"][0], "ms") {
			t.Errorf("timeline y axis ticks %q, want decades of latency", axes["y"])
		}
	}
	// The p99 chart is logarithmic: ten times the latency is a constant
	// step in height, so 8.6ms and 51ms differ by far less than 51ms and
	// 1.01s would on a linear scale.
	if p99 := charts["p99"]; p99 != nil {
		ticks := 0
		p99.walk(func(n *node) {
			if n.attr("class") == "tick" && strings.HasSuffix(n.text(), "0ms") {
				ticks++
			}
		})
		if ticks < 2 {
			t.Errorf("p99 chart has no decade ticks (10ms, 100ms): not a log scale?")
		}
	}
}

// failures lists the kind and status of s's failed requests.
func failures(s stats) string {
	var f []string
	for _, r := range s.results {
		if !r.ok {
			f = append(f, fmt.Sprintf("%s %d after %v", kindNames[r.kind], r.status, r.latency))
		}
	}
	return strings.Join(f, ", ")
}
