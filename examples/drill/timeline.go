package main

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// timelinePoints bounds the points drawn per series and kind (succeeded,
// failed), so that a long drill's report stays small: past it, every k-th
// request is drawn.
const timelinePoints = 6000

// timelineChart draws every request of both runs: when it was sent (since
// the drill began) on x, its latency on a logarithmic y, a dot per request
// (a red ring for one that failed), the phases as shaded bands with their
// numbers, and their boundaries as lines.
func timelineChart(o *outcome) template.HTML {
	end := time.Duration(0)
	for i := range o.rows {
		if i < len(o.began) && i < len(o.took) {
			end = max(end, o.began[i]+o.took[i])
		}
	}
	if end <= 0 {
		end = time.Second
	}
	lo, hi := math.Inf(1), 0.0
	for _, row := range o.rows {
		for _, s := range row {
			for _, r := range s.results {
				d := float64(max(r.latency, 10*time.Microsecond))
				lo, hi = min(lo, d), max(hi, d)
			}
		}
	}
	if hi == 0 {
		lo, hi = float64(time.Millisecond), float64(time.Second)
	}
	l0, l1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if l1 <= l0 {
		l1 = l0 + 1
	}
	yAt := func(d time.Duration) float64 {
		v := (math.Log10(float64(max(d, 10*time.Microsecond))) - l0) / (l1 - l0)
		return plotBottom - v*(plotBottom-plotTop)
	}
	xAt := func(t time.Duration) float64 {
		return plotLeft + float64(t)/float64(end)*(plotRight-plotLeft)
	}

	var c chart
	c.open("timeline", "Every request's latency over time, log scale", "latency (log scale)")
	// The phases: shaded bands, numbered, with a line at each boundary.
	c.printf(`<g class="phases">` + "\n")
	for i := range o.rows {
		if i >= len(o.began) || i >= len(o.took) {
			break
		}
		x0, x1 := xAt(o.began[i]), xAt(o.began[i]+o.took[i])
		fill := "#f4f4f4"
		if i%2 == 1 {
			fill = "#ffffff"
		}
		name := phases[i].name
		c.printf(`<rect class="phase-band" data-phase="%s" x="%.1f" y="%g" width="%.1f" height="%g" fill="%s"><title>%d. %s</title></rect>`+"\n",
			esc(name), x0, plotTop, max(x1-x0, 0.5), plotBottom-plotTop, fill, i+1, esc(name))
		c.printf(`<line class="phase-boundary" data-phase="%s" x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#999" stroke-dasharray="4 3"/>`+"\n",
			esc(name), x0, x0, plotTop-6, plotBottom)
		c.printf(`<text class="phase-number" x="%.1f" y="%g" text-anchor="middle">%d</text>`+"\n", (x0+x1)/2, plotTop+14, i+1)
	}
	c.printf("</g>\n")
	var ticks []tick
	for e := l0; e <= l1; e++ {
		d := math.Pow(10, e)
		at := (e - l0) / (l1 - l0)
		ticks = append(ticks, tick{at, formatDuration(time.Duration(d))})
		if e < l1 {
			ticks = append(ticks, tick{(math.Log10(2*d) - l0) / (l1 - l0), ""}, tick{(math.Log10(5*d) - l0) / (l1 - l0), ""})
		}
	}
	c.yAxis(ticks)
	// The time axis: a tick every 1, 2, 5 or 10 s, ten or fewer.
	step := time.Second
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute} {
		step = s
		if end/s <= 10 {
			break
		}
	}
	c.printf(`<g class="axis" data-axis="x">` + "\n")
	c.printf(`<line class="domain" x1="%g" x2="%g" y1="%g" y2="%g" stroke="#333"/>`+"\n", plotLeft, plotRight, plotBottom, plotBottom)
	for t := time.Duration(0); t <= end; t += step {
		x := xAt(t)
		c.printf(`<g class="tick"><line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#333"/><text x="%.1f" y="%g" text-anchor="middle">%s</text></g>`+"\n",
			x, x, plotBottom, plotBottom+5, x, plotBottom+20, fmt.Sprintf("%gs", t.Seconds()))
	}
	c.printf(`<text class="axis-title" x="%g" y="%g" text-anchor="middle">time since the drill began (phases numbered as in the table)</text>`+"\n", (plotLeft+plotRight)/2, plotBottom+40)
	c.printf("</g>\n")
	// The requests: one path of dots per series for the ones that
	// succeeded, one of red rings for the ones that failed.
	for j := range 2 {
		var ok, failed []string
		nOK, nFailed := 0, 0
		for i, row := range o.rows {
			if i >= len(o.began) {
				break
			}
			s := row[j]
			for _, r := range s.results {
				if r.cause == causeNotSent {
					continue // never sent: no latency to plot
				}
				p := fmt.Sprintf("M%.1f %.1fh0", xAt(o.began[i]+s.offset+r.start), yAt(r.latency))
				if r.ok {
					ok = append(ok, p)
					nOK++
				} else {
					failed = append(failed, p)
					nFailed++
				}
			}
		}
		c.printf(`<g class="series" data-series="%s" data-requests="%d" data-failed="%d">`+"\n", seriesName[j], nOK+nFailed, nFailed)
		c.printf(`<path class="ok" d="%s" stroke="%s" stroke-width="3" stroke-linecap="round" stroke-opacity="0.55" fill="none"/>`+"\n", strings.Join(thin(ok), ""), seriesColor[j])
		c.printf(`<path class="failed" d="%s" stroke="#d62728" stroke-width="4" stroke-linecap="round" fill="none"/>`+"\n", strings.Join(thin(failed), ""))
		c.printf("</g>\n")
	}
	c.printf(`<g class="legend-failed" transform="translate(%g,32)"><circle cx="7" cy="7" r="3" fill="#d62728"/><text x="20" y="11.5">failed</text></g>`+"\n", plotRight-460)
	return c.close()
}

// thin keeps at most timelinePoints of ps, evenly spread.
func thin(ps []string) []string {
	if len(ps) <= timelinePoints {
		return ps
	}
	out := make([]string, 0, timelinePoints)
	for i := range timelinePoints {
		out = append(out, ps[i*len(ps)/timelinePoints])
	}
	return out
}
