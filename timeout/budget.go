package timeout

import (
	"strconv"
	"time"
)

// maxBudgetDigits bounds a budget header's value: 10 digits of
// milliseconds is over 115 days, far past any timeout, and parsing it
// cannot overflow.
const maxBudgetDigits = 10

// maxBudgetMs is the largest budget that can be sent.
const maxBudgetMs = 9_999_999_999

// parseBudget parses a budget header's value: 1 to 10 ASCII digits, the
// budget in whole milliseconds (leading zeros allowed, 0 meaning no time
// left). Anything else (a sign, a unit, a fraction, spaces, an empty or
// longer value) is malformed and reported with ok false.
func parseBudget(v string) (d time.Duration, ok bool) {
	if len(v) == 0 || len(v) > maxBudgetDigits {
		return 0, false
	}
	var ms int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, true
}

// formatBudget formats d as a budget header's value: whole milliseconds,
// rounded down (a hop is never promised time its caller does not have),
// 0 for a d under a millisecond or negative, at most maxBudgetMs.
func formatBudget(d time.Duration) string {
	ms := int64(d / time.Millisecond)
	ms = min(max(ms, 0), maxBudgetMs)
	return strconv.FormatInt(ms, 10)
}
