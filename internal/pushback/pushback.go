// Package pushback parses the delays that servers ask clients to wait
// before trying again: HTTP's Retry-After header and gRPC's
// grpc-retry-pushback-ms trailer. Both are untrusted input, so every result
// lies in [0, Max] and nothing panics (both parsers are fuzzed).
package pushback

import (
	"net/http"
	"strings"
	"time"
)

// Max bounds every parsed delay: longer values are read as Max (callers
// cap them further), so a hostile value cannot overflow a time.Duration.
const Max = 24 * time.Hour

// HTTP parses a Retry-After value (RFC 9110 §10.2.3): delta-seconds, or an
// HTTP-date read against now (a date in the past means no wait). Leading
// and trailing spaces are ignored. It reports false for a malformed value.
func HTTP(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, ok := decimal(v, int64(Max/time.Second))
		if !ok {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), Max), true
}

// GRPC parses a grpc-retry-pushback-ms value: a non-negative decimal
// integer of milliseconds, nothing else. It reports false for anything else
// (negative, malformed, empty), which per gRFC A6 means "do not retry".
func GRPC(v string) (time.Duration, bool) {
	ms, ok := decimal(v, int64(Max/time.Millisecond))
	if !ok {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// decimal parses v, which must be a non-empty run of ASCII digits, as a
// non-negative integer, saturating at limit.
func decimal(v string, limit int64) (int64, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < limit {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, limit), true
}
