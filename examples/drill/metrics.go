package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// metricsServer serves the drill's OpenTelemetry metrics (the bulwark
// client's stack and the instances' server stacks) in the Prometheus text
// exposition format, at /metrics, while the drill runs. It is a small
// writer over the SDK's ManualReader, so that the module does not need
// the Prometheus exporter.
type metricsServer struct {
	reader *sdkmetric.ManualReader
	srv    *http.Server
	url    string
}

// loopbackAddr turns ":9464" into "127.0.0.1:9464": the drill listens on
// loopback only.
func loopbackAddr(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "127.0.0.1" + addr
	}
	return addr
}

func startMetrics(addr string, reader *sdkmetric.ManualReader) (*metricsServer, error) {
	ln, err := net.Listen("tcp", loopbackAddr(addr))
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	m := &metricsServer{reader: reader, url: "http://" + ln.Addr().String() + "/metrics"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(r.Context(), &rm); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writePrometheus(w, &rm)
	})
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go m.srv.Serve(ln)
	return m, nil
}

func (m *metricsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
}

// writePrometheus writes rm in the Prometheus text format (version 0.0.4):
// an instrument bulwark.retry.attempts with unit {attempt} becomes the
// counter bulwark_retry_attempts_total; a duration in s gets the suffix
// _seconds; attributes become labels (dots to underscores), plus
// otel_scope_name. Series of one name from several scopes share one
// family.
func writePrometheus(w io.Writer, rm *metricdata.ResourceMetrics) {
	type family struct {
		typ, help string
		lines     []string
	}
	families := map[string]*family{}
	add := func(name, typ, help string, lines ...string) {
		f := families[name]
		if f == nil {
			f = &family{typ: typ, help: help}
			families[name] = f
		}
		f.lines = append(f.lines, lines...)
	}
	for _, sm := range rm.ScopeMetrics {
		scope := attribute.String("otel.scope.name", sm.Scope.Name)
		for _, m := range sm.Metrics {
			base := promName(m.Name)
			switch m.Unit {
			case "s":
				base += "_seconds"
			case "By":
				base += "_bytes"
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				name, typ := sumName(base, d.IsMonotonic)
				for _, p := range d.DataPoints {
					add(name, typ, m.Description, sample(name, p.Attributes, scope, "", float64(p.Value)))
				}
			case metricdata.Sum[float64]:
				name, typ := sumName(base, d.IsMonotonic)
				for _, p := range d.DataPoints {
					add(name, typ, m.Description, sample(name, p.Attributes, scope, "", p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					add(base, "gauge", m.Description, sample(base, p.Attributes, scope, "", float64(p.Value)))
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					add(base, "gauge", m.Description, sample(base, p.Attributes, scope, "", p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					add(base, "histogram", m.Description, histogram(base, p.Attributes, scope, p.Bounds, p.BucketCounts, p.Sum, p.Count)...)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					add(base, "histogram", m.Description, histogram(base, p.Attributes, scope, p.Bounds, p.BucketCounts, float64(p.Sum), p.Count)...)
				}
			}
		}
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	bw := bufio.NewWriter(w)
	for _, n := range names {
		f := families[n]
		if f.help != "" {
			fmt.Fprintf(bw, "# HELP %s %s\n", n, escapeHelp(f.help))
		}
		fmt.Fprintf(bw, "# TYPE %s %s\n", n, f.typ)
		for _, l := range f.lines {
			bw.WriteString(l)
		}
	}
	bw.Flush()
}

func sumName(base string, monotonic bool) (string, string) {
	if monotonic {
		return base + "_total", "counter"
	}
	return base, "gauge"
}

func histogram(base string, attrs attribute.Set, scope attribute.KeyValue, bounds []float64, counts []uint64, sum float64, count uint64) []string {
	var lines []string
	var cum uint64
	for i, b := range bounds {
		if i < len(counts) {
			cum += counts[i]
		}
		lines = append(lines, sample(base+"_bucket", attrs, scope, formatFloat(b), float64(cum)))
	}
	lines = append(lines,
		sample(base+"_bucket", attrs, scope, "+Inf", float64(count)),
		sample(base+"_sum", attrs, scope, "", sum),
		sample(base+"_count", attrs, scope, "", float64(count)))
	return lines
}

// sample writes one line: name{labels} value. le, if set, is the bucket
// label.
func sample(name string, attrs attribute.Set, scope attribute.KeyValue, le string, v float64) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	kvs := append(attrs.ToSlice(), scope)
	for i, kv := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(promName(string(kv.Key)))
		b.WriteString(`="`)
		b.WriteString(escapeLabel(kv.Value.Emit()))
		b.WriteByte('"')
	}
	if le != "" {
		b.WriteString(`,le="` + le + `"`)
	}
	b.WriteString("} ")
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
	return b.String()
}

// promName maps an OpenTelemetry name to a Prometheus one: every
// character outside [a-zA-Z0-9_] becomes '_', and a leading digit gets a
// '_' before it.
func promName(s string) string {
	var b strings.Builder
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok && i == 0 && r >= '0' && r <= '9' {
			b.WriteByte('_')
			b.WriteRune(r)
			continue
		}
		if !ok {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
