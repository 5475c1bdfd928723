package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDrill runs a small drill end to end over real loopback servers and
// checks what the demo claims: with an instance down, the bare client loses
// exactly the requests sent to it, and bulwark's client loses fewer; and
// that, without a terminal, progress is one line per phase, in order.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers for a few seconds")
	}
	var out, prog bytes.Buffer
	o, err := run(&out, &progress{w: &prog, phase: -1}, config{requests: 30, concurrency: 3, deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rows := o.rows
	if len(rows) != len(phases) || len(o.took) != len(phases) {
		t.Fatalf("%d rows and %d phase times for %d phases", len(rows), len(o.took), len(phases))
	}
	steady, down, dropped := rows[0], rows[1], rows[phaseIndex(phaseDropped)]
	// Real servers on a shared machine: allow a slow request or two in the
	// healthy phase, but not the loss of a whole instance.
	if steady[0].ok < 27 || steady[1].ok < 27 {
		t.Errorf("steady phase: bare %d, bulwark %d of 30 ok", steady[0].ok, steady[1].ok)
	}
	if down[0].ok > 20 {
		t.Errorf("instance down: bare %d of 30 ok, want at most 20 (round-robin over 3, one refusing)", down[0].ok)
	}
	if down[1].ok <= down[0].ok {
		t.Errorf("instance down: bulwark %d ok, not better than bare %d", down[1].ok, down[0].ok)
	}
	// Instance b did the work of every request it got, then dropped the
	// response: the bare client loses a third of its requests; bulwark's
	// retries them elsewhere, and the servers' idempotency records make
	// the retried POSTs place their orders once.
	if dropped[0].ok > 20 {
		t.Errorf("responses dropped: bare %d of 30 ok, want at most 20", dropped[0].ok)
	}
	if dropped[1].ok < 29 {
		t.Errorf("responses dropped: bulwark %d of 30 ok, want all but one at worst", dropped[1].ok)
	}
	for i, row := range rows {
		if row[1].dups != 0 {
			t.Errorf("phase %q: bulwark placed %d orders twice", phases[i].name, row[1].dups)
		}
	}
	// Whether b's breaker opens in this short run depends on how many of
	// its 30 requests P2C still sends b once b's failures weigh on its
	// score (the breaker judges 10 calls): the drill's own run shows it,
	// this test does not require it.
	spike := rows[phaseIndex(phaseSpike)]
	if spike[1].settled == 0 || spike[1].n <= 30 {
		t.Errorf("latency spike: bulwark sent %d requests, %d after the settle time: the phase's hold did not keep it sending", spike[1].n, spike[1].settled)
	}
	// Redis down: the keyed POSTs are refused (fail closed), the GETs
	// served; then everything recovers.
	redis, recovered := rows[phaseIndex(phaseRedis)], rows[len(rows)-1]
	if !o.redisStops { // REDIS_ADDR: a real Redis, left running
		if redis[1].ok < 29 {
			t.Errorf("Redis outage with a real Redis left running: bulwark %d of 30 ok, want all but one at worst", redis[1].ok)
		}
	} else if redis[1].getsOK != redis[1].gets || redis[1].ok != redis[1].getsOK {
		t.Errorf("Redis outage: bulwark served %d of %d GETs and %d of %d POSTs, want every GET and no POST",
			redis[1].getsOK, redis[1].gets, redis[1].ok-redis[1].getsOK, redis[1].n-redis[1].gets)
	}
	if recovered[1].ok < 29 {
		t.Errorf("recovered: bulwark %d of 30 ok, want all but one at worst", recovered[1].ok)
	}
	if n, want := len(targets(rows, o.redisStops)), map[bool]int{true: 6, false: 5}[o.redisStops]; n != want {
		t.Errorf("%d targets judged, want %d", n, want)
	}
	for _, ph := range phases {
		if !strings.Contains(out.String(), ph.name) {
			t.Errorf("output lacks phase %q:\n%s", ph.name, out.String())
		}
	}
	// The faults come from package chaos, which counts them.
	flat := strings.Join(strings.Fields(out.String()), " ") // the lines are wrapped
	for _, want := range []string{"dropped response on b: ", "latency spike on a: "} {
		if !strings.Contains(flat, want) {
			t.Errorf("output does not count the chaos fault %q:\n%s", want, out.String())
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
	cfg := config{requests: 300, concurrency: 8, deadline: time.Second}
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
	for _, want := range []string{"3/6 latency spike", "elapsed", "left", "["} {
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
		for _, want := range []string{"Usage: drill ", "-quick", "-report", "-metrics", "REDIS_ADDR", "status 1", "bare", "bulwark", "127.0.0.1"} {
			if !strings.Contains(help, want) {
				t.Errorf("help lacks %q:\n%s", want, help)
			}
		}
		for _, ph := range phases {
			if !strings.Contains(help, ph.name) || !strings.Contains(help, ph.about) {
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
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"extra"}, 2},
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
		{{n: 300, ok: 300, p50: 151 * time.Microsecond, p99: 737 * time.Microsecond}, {n: 300, ok: 150, p50: 201 * time.Millisecond, p99: 229 * time.Millisecond}},
		{{n: 300, ok: 0, p50: 377 * time.Microsecond, p99: 8500 * time.Microsecond}, {n: 300, ok: 300, p50: 406 * time.Microsecond, p99: 6300 * time.Microsecond}},
	}
	o := &outcome{
		cfg:    config{requests: 300, concurrency: 8, deadline: time.Second},
		start:  time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC),
		rows:   rows,
		took:   []time.Duration{time.Second, time.Second, 12 * time.Second, time.Second, time.Second, time.Second},
		total:  15 * time.Second,
		addrs:  []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"},
		abouts: clientsAbout(config{deadline: time.Second}),
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
	for _, want := range []string{"2026-11-28 14:00:00 UTC", "go1.", "CPUs", o.abouts[0], o.abouts[1], "300 requests (GET and POST alternately)", "15s"} {
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
	if len(svgs) != 3 {
		t.Fatalf("%d charts, want 3 (success rate, p50, p99)", len(svgs))
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
