package timeout

import (
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark/internal/pushback"
)

// maxBudgetDigits bounds a budget header's value: 10 digits of
// milliseconds is over 115 days, and a longer value is malformed.
const maxBudgetDigits = 10

// parseBudget parses a budget header's value: 1 to 10 ASCII digits, the
// budget in whole milliseconds (leading zeros allowed, 0 meaning no time
// left), read as [MaxTimeout] when larger. Anything else (a sign, a unit,
// a fraction, spaces, an empty or longer value) is malformed and
// reported with ok false. The digits are read by the same bounded parser
// as gRPC's grpc-retry-pushback-ms, which has the same grammar.
func parseBudget(v string) (d time.Duration, ok bool) {
	if len(v) > maxBudgetDigits {
		return 0, false
	}
	d, ok = pushback.GRPC(v)
	return min(d, MaxTimeout), ok
}

// formatBudget formats d as a budget header's value: whole milliseconds,
// rounded down (a hop is never promised time its caller does not have),
// 0 for a d under a millisecond or negative, at most MaxTimeout.
func formatBudget(d time.Duration) string {
	d = min(max(d, 0), MaxTimeout)
	return strconv.FormatInt(int64(d/time.Millisecond), 10)
}
