package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/internal/httpx"
)

// maxDirectives bounds how many Cache-Control directives are read from one
// message; the rest are ignored.
const maxDirectives = 64

// directives are parsed Cache-Control directives: lower-cased names, with
// their argument ("" when there is none).
type directives map[string]string

// parseCacheControl parses every Cache-Control field of h (RFC 9111
// section 5.2): comma-separated directives, each a token, optionally "="
// and a token or a quoted string. Headers come from the network: anything
// malformed is skipped, never a panic.
func parseCacheControl(h http.Header) directives {
	var d directives
	for _, field := range h["Cache-Control"] {
		for len(field) > 0 {
			var part string
			part, field = nextDirective(field)
			name, arg, _ := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if !httpx.IsToken(name) {
				continue
			}
			arg = strings.TrimSpace(arg)
			if len(arg) >= 2 && arg[0] == '"' && arg[len(arg)-1] == '"' {
				arg = strings.ReplaceAll(arg[1:len(arg)-1], `\`, "")
			}
			if d == nil {
				d = make(directives, 4)
			}
			if len(d) >= maxDirectives {
				return d
			}
			if _, dup := d[name]; !dup { // the first occurrence wins
				d[name] = arg
			}
		}
	}
	return d
}

// nextDirective splits off the first directive of s, honouring quoted
// strings (a comma inside quotes does not end a directive).
func nextDirective(s string) (part, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

func (d directives) has(name string) bool {
	_, ok := d[name]
	return ok
}

// seconds returns the delta-seconds argument of name (RFC 9111 section
// 1.2.2): a non-negative integer, capped at 2^31 seconds.
func (d directives) seconds(name string) (time.Duration, bool) {
	arg, ok := d[name]
	if !ok || arg == "" {
		return 0, false
	}
	for i := 0; i < len(arg); i++ {
		if arg[i] < '0' || arg[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n > 1<<31 {
		n = 1 << 31
	}
	return time.Duration(n) * time.Second, true
}
