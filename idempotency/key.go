package idempotency

import (
	"strings"

	"github.com/bulwark-go/bulwark/internal/httpx"
)

// MaxKeyLength bounds Config.MaxKeyLength: no key longer than this is ever
// accepted, whatever the Config says.
const MaxKeyLength = 1024

// ParseKey parses the value of an Idempotency-Key header field and returns
// the key, or [ErrKeyMalformed] (wrapped with the reason).
//
// Two forms are accepted:
//
//   - The form of the IETF draft (draft-ietf-httpapi-idempotency-key-header,
//     section 2): an RFC 8941 sf-string, a double-quoted string of
//     printable ASCII (0x20–0x7E) in which `"` and `\` are escaped with a
//     backslash, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324". The key is
//     the unescaped content.
//   - A bare value, as many clients (and Stripe's API) send, e.g.
//     8e03978e-40d5-43e8-bc93-6894a57f9324: one or more characters from the
//     RFC 9110 token set (tchar) plus ':' and '/'. The key is the value as
//     sent; a bare UUID works.
//
// Leading and trailing spaces and tabs (optional whitespace) are ignored.
// Anything else is malformed: an empty key, a key longer than maxLen
// bytes (after unescaping; a maxLen outside [1, MaxKeyLength] means
// MaxKeyLength, so no key longer than MaxKeyLength is ever accepted), a parameter (;...), a list (,), a non-ASCII or control byte, an
// unterminated string or a bad escape. A bare value and the same value
// quoted are the same key.
func ParseKey(value string, maxLen int) (string, error) {
	if maxLen <= 0 || maxLen > MaxKeyLength {
		maxLen = MaxKeyLength
	}
	v := strings.Trim(value, " \t")
	if v == "" {
		return "", malformed("empty key")
	}
	if v[0] == '"' {
		return parseString(v, maxLen)
	}
	if len(v) > maxLen {
		return "", malformed("key longer than the limit")
	}
	for i := 0; i < len(v); i++ {
		if !isBareChar(v[i]) {
			return "", malformed("character not allowed in a bare key (quote it as an sf-string)")
		}
	}
	return v, nil
}

func parseString(v string, maxLen int) (string, error) {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i >= len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", malformed("bad escape in sf-string")
			}
			b.WriteByte(v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", malformed("characters after the closing quote")
			}
			if b.Len() == 0 {
				return "", malformed("empty key")
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", malformed("non-printable or non-ASCII character in sf-string")
		default:
			b.WriteByte(c)
		}
		if b.Len() > maxLen {
			return "", malformed("key longer than the limit")
		}
	}
	return "", malformed("unterminated sf-string")
}

// isBareChar reports whether c may appear in a bare key: an RFC 9110 tchar,
// ':' or '/'.
func isBareChar(c byte) bool { return httpx.IsTchar(c) || c == ':' || c == '/' }
