package main

import (
	"fmt"
	"html/template"
	"os"
	"time"
)

// writeReport writes a self-contained HTML page with two bar charts (success
// rate and p99 latency per phase, bare beside bulwark) as inline SVG.
func writeReport(path string, cfg config, rows [][2]stats) error {
	type bar struct {
		X, Y, W, H float64
		Fill, Text string
	}
	type chart struct {
		Title  string
		Bars   []bar
		Labels []bar
	}
	const w, h, pad = 640.0, 220.0, 30.0
	group := (w - 2*pad) / float64(len(rows))
	mk := func(title string, val func(stats) float64, maxV float64, fmtV func(float64) string) chart {
		c := chart{Title: title}
		for i, row := range rows {
			for j, s := range row {
				v := val(s)
				bh := 0.0
				if maxV > 0 {
					bh = (h - 2*pad) * v / maxV
				}
				fill := "#b0b0b0"
				if j == 1 {
					fill = "#2a7ab9"
				}
				x := pad + float64(i)*group + 10 + float64(j)*(group-20)/2
				c.Bars = append(c.Bars, bar{X: x, Y: h - pad - bh, W: (group-20)/2 - 4, H: bh, Fill: fill, Text: fmtV(v)})
			}
			c.Labels = append(c.Labels, bar{X: pad + float64(i)*group + group/2, Y: h - 10, Text: phases[i].name})
		}
		return c
	}
	maxP99 := 0.0
	for _, row := range rows {
		for _, s := range row {
			maxP99 = max(maxP99, float64(s.p99)/float64(time.Millisecond))
		}
	}
	charts := []chart{
		mk("Success rate (%)", stats.rate, 100, func(v float64) string { return fmt.Sprintf("%.1f%%", v) }),
		mk("p99 latency (ms)", func(s stats) float64 { return float64(s.p99) / float64(time.Millisecond) }, maxP99,
			func(v float64) string { return fmt.Sprintf("%.1fms", v) }),
	}
	type line struct{ Phase, BareOK, BareP50, BareP99, OK, P50, P99 string }
	var lines []line
	for i, r := range rows {
		b, g := r[0], r[1]
		lines = append(lines, line{phases[i].name,
			fmt.Sprintf("%.1f%%", b.rate()), round(b.p50).String(), round(b.p99).String(),
			fmt.Sprintf("%.1f%%", g.rate()), round(g.p50).String(), round(g.p99).String()})
	}
	head := fmt.Sprintf("%d requests per phase and client, %d workers, %v deadline per request.",
		cfg.requests, cfg.concurrency, cfg.deadline)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = reportTmpl.Execute(f, map[string]any{"Head": head, "Charts": charts, "W": w, "H": h, "Lines": lines})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var reportTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>bulwark drill</title>
<style>body{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;color:#222}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.bare{color:#777}.bulwark{color:#2a7ab9}</style></head>
<body><h1>bulwark drill</h1>
<p>{{.Head}}
<span class="bare">■ bare net/http</span> &nbsp; <span class="bulwark">■ bulwark</span></p>
{{range .Charts}}<h2>{{.Title}}</h2>
<svg width="{{$.W}}" height="{{$.H}}" role="img">
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Fill}}"/><text x="{{.X}}" y="{{.Y}}" dy="-3" font-size="10">{{.Text}}</text>
{{end}}{{range .Labels}}<text x="{{.X}}" y="{{.Y}}" font-size="12" text-anchor="middle">{{.Text}}</text>
{{end}}</svg>
{{end}}
<h2>Numbers</h2><table><tr><th>phase</th><th>bare ok</th><th>p50</th><th>p99</th><th>bulwark ok</th><th>p50</th><th>p99</th></tr>
{{range .Lines}}<tr><td>{{.Phase}}</td><td>{{.BareOK}}</td><td>{{.BareP50}}</td><td>{{.BareP99}}</td><td>{{.OK}}</td><td>{{.P50}}</td><td>{{.P99}}</td></tr>
{{end}}</table></body></html>
`))
