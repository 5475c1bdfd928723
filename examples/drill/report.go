package main

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// The report is one self-contained HTML page: inline CSS, inline SVG, no
// script, no external asset, so it can be mailed, attached to a ticket or
// opened offline. Its charts are drawn here rather than by a charting
// library, to keep the drill free of dependencies.

// Colours of the two series, in the charts and the legends.
var seriesColor = [2]string{"#8a8a8a", "#1f6fb2"}

var seriesName = [2]string{"bare", "bulwark"}

// Chart geometry, in SVG user units (the page shows them 1:1 up to 1000 px
// wide and scales them down below that).
const (
	chartW      = 1000.0
	chartH      = 350.0
	plotLeft    = 90.0  // room for tick labels and the axis title
	plotRight   = 980.0 //
	plotTop     = 56.0  // room for the legend and the labels over the tallest bars
	plotBottom  = 290.0 // room for the phase names under the axis
	barW        = 64.0
	barGap      = 14.0
	labelOffset = 6.0
)

// writeReport writes o as an HTML page to w.
func writeReport(w io.Writer, o *outcome) error {
	type phaseView struct {
		N           int
		Name, About string
		Took        string
	}
	type line struct {
		Phase string
		Cells [2][5]string // per client: ok, p50, p99, max, dup
		Extra [4]int64     // bulwark: breaker, ejected, shed, throttled
	}
	type clientView struct{ Name, About, Color string }
	v := struct {
		Date, Version, GoVersion, Machine string
		Requests, Workers                 int
		Burst                             string
		Deadline, Took, Instances         string
		Gateway                           string
		Clients                           []clientView
		Phases                            []phaseView
		Charts                            []template.HTML
		Lines                             []line
	}{
		Date:      o.start.UTC().Format("2006-01-02 15:04:05 MST"),
		Version:   bulwarkVersion(),
		GoVersion: runtime.Version(),
		Machine:   fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		Requests:  o.cfg.requests,
		Workers:   o.cfg.concurrency,
		Burst:     burstAbout(o.cfg),
		Gateway:   o.gateway,
		Deadline:  formatDuration(o.cfg.deadline),
		Took:      formatDuration(o.total),
		Instances: strings.Join(o.addrs, ", "),
	}
	for j := range 2 {
		v.Clients = append(v.Clients, clientView{seriesName[j], o.abouts[j], seriesColor[j]})
	}
	for i, ph := range phases[:len(o.rows)] {
		took := ""
		if i < len(o.took) {
			took = formatDuration(o.took[i])
		}
		v.Phases = append(v.Phases, phaseView{i + 1, ph.name, ph.about, took})
		l := line{Phase: ph.name}
		for j, s := range o.rows[i] {
			l.Cells[j] = [5]string{formatRate(s.rate()), formatDuration(s.p50), formatDuration(s.p99), formatDuration(s.max), fmt.Sprint(s.dups)}
		}
		g := o.rows[i][1]
		l.Extra = [4]int64{g.breaker, g.ejections, g.shedTotal(), int64(g.throttled)}
		v.Lines = append(v.Lines, l)
	}
	v.Charts = []template.HTML{
		rateChart(o.rows),
		latencyChart("p50", "Median latency", o.rows, func(s stats) time.Duration { return s.p50 }),
		latencyChart("p99", "99th-percentile latency", o.rows, func(s stats) time.Duration { return s.p99 }),
		timelineChart(o),
	}
	return reportTmpl.Execute(w, v)
}

// bulwarkVersion names the bulwark this drill was built from: a module
// version when run as `go run github.com/bulwark-go/bulwark/examples/drill@v…`,
// "(devel)" from a clone, with the VCS revision when the build recorded it.
func bulwarkVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	version := bi.Main.Version
	if bi.Main.Path != "github.com/bulwark-go/bulwark" {
		for _, d := range bi.Deps {
			if d.Path == "github.com/bulwark-go/bulwark" {
				version = d.Version
			}
		}
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if rev != "" {
		version += " (" + rev + dirty + ")"
	}
	return version
}

// chart collects one SVG chart.
type chart struct {
	b strings.Builder
}

func (c *chart) printf(format string, args ...any) { fmt.Fprintf(&c.b, format, args...) }

// esc escapes text for SVG content and attribute values.
func esc(s string) string { return template.HTMLEscapeString(s) }

// open starts the SVG, with its title, legend and y-axis title.
func (c *chart) open(id, title, yTitle string) {
	c.printf(`<svg class="chart" data-chart="%s" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`+"\n",
		esc(id), chartW, chartH, chartW, chartH, esc(title))
	c.printf("<title>%s</title>\n", esc(title))
	c.printf(`<text class="chart-title" x="%g" y="22">%s</text>`+"\n", plotLeft-80, esc(title))
	// The legend: one group per item, laid out by hand, so it never wraps.
	c.printf(`<g class="legend" transform="translate(%g,10)">`+"\n", plotRight-460)
	x := 0.0
	for j := range 2 {
		c.printf(`<g class="legend-item" data-series="%s" transform="translate(%g,0)"><rect width="14" height="14" fill="%s"/><text x="20" y="11.5">%s</text></g>`+"\n",
			seriesName[j], x, seriesColor[j], esc(seriesName[j]+": "+[2]string{"plain net/http", "through the gateway"}[j]))
		x += 220
	}
	c.printf("</g>\n")
	c.printf(`<text class="axis-title" transform="translate(22,%g) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
		(plotTop+plotBottom)/2, esc(yTitle))
}

// yAxis draws the y axis with its ticks and grid lines; ticks maps a
// value's height (0 at the bottom, 1 at the top) to its label.
type tick struct {
	at    float64 // 0 bottom of the plot, 1 top
	label string  // "" for a minor grid line
}

func (c *chart) yAxis(ticks []tick) {
	c.printf(`<g class="axis" data-axis="y">` + "\n")
	for _, t := range ticks {
		y := plotBottom - t.at*(plotBottom-plotTop)
		if t.label == "" {
			c.printf(`<line class="grid minor" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`+"\n", plotLeft, plotRight, y, y)
			continue
		}
		c.printf(`<g class="tick"><line class="grid" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/><line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#333"/><text x="%g" y="%.1f" dy="0.32em" text-anchor="end">%s</text></g>`+"\n",
			plotLeft, plotRight, y, y, plotLeft-6, plotLeft, y, y, plotLeft-10, y, esc(t.label))
	}
	c.printf(`<line class="domain" x1="%g" x2="%g" y1="%g" y2="%g" stroke="#333"/>`+"\n", plotLeft, plotLeft, plotTop-8, plotBottom)
	c.printf("</g>\n")
}

// groupCenter is the middle of phase i's pair of bars.
func groupCenter(i, n int) float64 {
	g := (plotRight - plotLeft) / float64(n)
	return plotLeft + g*(float64(i)+0.5)
}

// barWidth is the width of each bar when n phases share the plot: at
// most barW, and narrower when the pairs would otherwise touch.
func barWidth(n int) float64 {
	g := (plotRight - plotLeft) / float64(max(n, 1))
	return min(barW, (g-barGap-16)/2)
}

// xAxis draws the baseline and the phase names under each pair of bars.
func (c *chart) xAxis(n int) {
	c.printf(`<g class="axis" data-axis="x">` + "\n")
	c.printf(`<line class="domain" x1="%g" x2="%g" y1="%g" y2="%g" stroke="#333"/>`+"\n", plotLeft, plotRight, plotBottom, plotBottom)
	for i, ph := range phases[:n] {
		cx := groupCenter(i, n)
		// Every other name a line lower, so that long names never run
		// into each other.
		y := plotBottom + 24 + float64(i%2)*18
		c.printf(`<g class="tick" data-phase="%s"><line x1="%.1f" x2="%.1f" y1="%g" y2="%.1f" stroke="#333"/><text x="%.1f" y="%.1f" text-anchor="middle" class="phase">%s</text></g>`+"\n",
			esc(ph.name), cx, cx, plotBottom, y-14, cx, y, esc(ph.name))
	}
	c.printf("</g>\n")
}

// bars draws both series: heights in [0,1] of the plot, labels above.
func (c *chart) bars(rows [][2]stats, height func(stats) float64, label func(stats) string, what string) {
	n := len(rows)
	for j := range 2 {
		c.printf(`<g class="series" data-series="%s" fill="%s">`+"\n", seriesName[j], seriesColor[j])
		for i, row := range rows {
			s := row[j]
			h := height(s) * (plotBottom - plotTop)
			bw := barWidth(n)
			x := groupCenter(i, n) - barGap/2 - bw
			if j == 1 {
				x = groupCenter(i, n) + barGap/2
			}
			y := plotBottom - h
			c.printf(`<rect class="bar" data-phase="%s" data-value="%s" x="%.1f" y="%.1f" width="%g" height="%.1f"><title>%s, %s: %s %s</title></rect>`+"\n",
				esc(phases[i].name), esc(label(s)), x, y, bw, h, seriesName[j], esc(phases[i].name), what, esc(label(s)))
			c.printf(`<text class="value" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x+bw/2, y-labelOffset, esc(label(s)))
		}
		c.printf("</g>\n")
	}
}

func (c *chart) close() template.HTML {
	c.printf("</svg>\n")
	return template.HTML(c.b.String()) // built from escaped parts only
}

// rateChart is the success rate per phase, on a linear 0–100% axis.
func rateChart(rows [][2]stats) template.HTML {
	var c chart
	c.open("rate", "Success rate", "requests that succeeded (%)")
	var ticks []tick
	for p := 0; p <= 100; p += 25 {
		ticks = append(ticks, tick{float64(p) / 100, fmt.Sprintf("%d%%", p)})
	}
	c.yAxis(ticks)
	c.bars(rows, func(s stats) float64 { return s.rate() / 100 }, func(s stats) string { return formatRate(s.rate()) }, "success rate")
	c.xAxis(len(rows))
	return c.close()
}

// latencyChart is one latency percentile per phase on a logarithmic axis,
// so that 30µs, 5ms and 1s are all readable on one chart; every decade is
// a labelled grid line, with lighter lines at 2× and 5×.
func latencyChart(id, what string, rows [][2]stats, val func(stats) time.Duration) template.HTML {
	lo, hi := math.Inf(1), 0.0
	for _, row := range rows {
		for _, s := range row {
			d := float64(max(val(s), time.Microsecond))
			lo, hi = min(lo, d), max(hi, d)
		}
	}
	if hi == 0 { // no rows
		lo, hi = float64(time.Microsecond), float64(time.Second)
	}
	// Whole decades, with the smallest bar at least a sixth of a decade
	// tall so that it reads as a bar, not as the axis.
	l0 := math.Floor(math.Log10(lo))
	if math.Log10(lo)-l0 < 1.0/6 {
		l0--
	}
	// The top is the decade over the largest value, unless that value
	// only just passes a decade (a 1.01s p99 against a 1s deadline): then
	// its bar may rise a little over the top line rather than waste a
	// decade of height on it.
	l1 := math.Ceil(math.Log10(hi))
	if math.Log10(hi)-math.Floor(math.Log10(hi)) < 0.05 {
		l1 = math.Floor(math.Log10(hi))
	}
	if l1 <= l0 {
		l1 = l0 + 1
	}
	at := func(d float64) float64 { return (math.Log10(d) - l0) / (l1 - l0) }
	var c chart
	c.open(id, fmt.Sprintf("%s (%s), log scale", what, id), id+" latency (log scale)")
	var ticks []tick
	for e := l0; e <= l1; e++ {
		d := math.Pow(10, e)
		ticks = append(ticks, tick{at(d), formatDuration(time.Duration(d))})
		if e < l1 {
			ticks = append(ticks, tick{at(2 * d), ""}, tick{at(5 * d), ""})
		}
	}
	c.yAxis(ticks)
	c.bars(rows, func(s stats) float64 { return at(float64(max(val(s), time.Microsecond))) },
		func(s stats) string { return formatDuration(val(s)) }, id)
	c.xAxis(len(rows))
	return c.close()
}

var reportTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bulwark drill report, {{.Date}}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1040px;margin:2em auto;padding:0 20px;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.8em}
.meta{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5em 0}
td,th{padding:4px 12px;border-bottom:1px solid #ddd;text-align:right;vertical-align:top}
td.l,th.l{text-align:left}
th.bare,th.bulwark{text-align:center;border-bottom:2px solid}
th.bare{border-color:#8a8a8a}th.bulwark{border-color:#1f6fb2}
.swatch{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin-right:.35em}
svg.chart{display:block;width:100%;max-width:1000px;height:auto;font-size:14px}
svg.chart .grid{stroke:#d8d8d8}svg.chart .grid.minor{stroke:#eeeeee}
svg.chart .value{font-size:13px;fill:#222}
svg.chart .phase{font-size:14px;font-weight:600}
svg.chart .axis-title{font-size:13px;fill:#555}
svg.chart .legend text{font-size:14px}
svg.chart .chart-title{font-size:17px;font-weight:600}
.note{color:#555;font-size:14px}
</style></head>
<body>
<h1>bulwark drill report</h1>
<p class="meta">Run {{.Date}} · bulwark {{.Version}} · {{.GoVersion}} · {{.Machine}} · the drill took {{.Took}}</p>

<p>Three instances (a, b, c) of a small HTTP service ran on loopback ({{.Instances}}), each behind bulwark's server stack, serving a cacheable catalogue, orders and a cart kept in the session.
Two clients sent the same load, phase by phase, while the drill broke things: the bare one straight to the instances, bulwark's through a gateway ({{.Gateway}}) built from bulwark's server and client stacks.
{{.Requests}} requests (GETs and POSTs in turn) per phase and client, {{.Workers}} workers per client, a {{.Deadline}} deadline per request;
in the overload burst, {{.Burst}}, the two runs one after the other.
A request succeeded when it returned 200 (201 for a POST) within its deadline; latency is measured from the caller's side, failures included.</p>

<h2>The clients</h2>
<table>
{{range .Clients}}<tr><td class="l"><span class="swatch" style="background:{{.Color}}"></span><b>{{.Name}}</b></td><td class="l">{{.About}}</td></tr>
{{end}}</table>

<h2>The phases</h2>
<table>
<tr><th>#</th><th class="l">phase</th><th class="l">what the drill did</th><th>took</th></tr>
{{range .Phases}}<tr><td>{{.N}}</td><td class="l">{{.Name}}</td><td class="l">{{.About}}</td><td>{{.Took}}</td></tr>
{{end}}</table>

<h2>Results</h2>
{{index .Charts 0}}
<p class="note">Latencies are on a logarithmic scale: each labelled line is ten times the one below it.</p>
{{index .Charts 1}}
{{index .Charts 2}}
<h2>Latency over time</h2>
<p class="note">Every request of both runs: when it was sent on the x axis, its latency on a logarithmic y axis; red dots failed. The shaded bands are the phases, numbered as above; the dashed lines their boundaries. In the overload burst the two runs went one after the other.</p>
{{index .Charts 3}}

<h2>Numbers</h2>
<table>
<tr><th></th><th colspan="5" class="bare">bare</th><th colspan="9" class="bulwark">bulwark</th></tr>
<tr><th class="l">phase</th><th>ok</th><th>p50</th><th>p99</th><th>max</th><th>dup</th><th>ok</th><th>p50</th><th>p99</th><th>max</th><th>dup</th><th>breaker</th><th>ejected</th><th>shed</th><th>throttled</th></tr>
{{range .Lines}}<tr><td class="l">{{.Phase}}</td>{{range .Cells}}{{range .}}<td>{{.}}</td>{{end}}{{end}}{{range .Extra}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<p class="note">dup: side effects (orders, cart additions) done more than once. breaker: state changes of the gateway's breakers; ejected: instances its balancer took out of rotation; shed: requests its shedder refused; throttled: requests the caller's adaptive throttling refused before sending them, or the gateway's rate limit (429). The bare client has none of these layers.
Written by <code>go run ./examples/drill -report</code>. Durations: µs, ms and s, three significant digits, the same in the table and the charts.</p>
</body></html>
`))
