package retry

import (
	"net/http"
	"strings"
	"time"
)

// maxRetryAfter bounds a parsed Retry-After: longer values are read as
// this (Config.MaxPushback caps them further), so a hostile header cannot
// overflow a time.Duration.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter parses an HTTP Retry-After value (RFC 9110 §10.2.3):
// delta-seconds, or an HTTP-date read against now (a date in the past means
// no wait). It reports false for a malformed value, which the policy then
// ignores (keeping its own schedule). Results lie in [0, maxRetryAfter].
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		var secs int64
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			if secs < int64(maxRetryAfter/time.Second) {
				secs = secs*10 + int64(c-'0')
			}
		}
		return min(time.Duration(secs)*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return min(d, maxRetryAfter), true
}
