package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// formatDuration is the drill's one way to write a duration, in the
// terminal table, the progress line, the report's table and its charts:
// three significant digits in the largest unit that keeps the number at
// least 1 (µs, ms or s), trailing zeros dropped: 31µs, 9.3ms, 252ms, 1.01s.
func formatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + formatDuration(-d)
	}
	d = round3(d)
	var v float64
	var unit string
	switch {
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		v, unit = float64(d)/float64(time.Microsecond), "µs"
	case d < time.Second:
		v, unit = float64(d)/float64(time.Millisecond), "ms"
	default:
		v, unit = d.Seconds(), "s"
	}
	dec := 0
	switch {
	case v < 10:
		dec = 2
	case v < 100:
		dec = 1
	}
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	}
	return s + unit
}

// round3 rounds d to three significant digits (in nanoseconds), so that
// 999.7µs becomes 1ms rather than "1000µs".
func round3(d time.Duration) time.Duration {
	m := time.Duration(1)
	for x := d; x >= 1000; x /= 10 {
		m *= 10
	}
	return d.Round(m)
}

// formatRate writes a success rate in percent.
func formatRate(pct float64) string {
	return fmt.Sprintf("%.1f%%", pct)
}
