package idempotency_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/idempotency"
)

func TestParseKey(t *testing.T) {
	good := map[string]string{
		`"8e03978e-40d5-43e8-bc93-6894a57f9324"`: "8e03978e-40d5-43e8-bc93-6894a57f9324",
		`8e03978e-40d5-43e8-bc93-6894a57f9324`:   "8e03978e-40d5-43e8-bc93-6894a57f9324",
		` "a b" `:                                "a b",
		`"q\"uote\\d"`:                           `q"uote\d`,
		`tok:en/x*`:                              "tok:en/x*",
		"\t\"x\"\t":                              "x",
	}
	for in, want := range good {
		got, err := idempotency.ParseKey(in, 255)
		if err != nil || got != want {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		``, ` `, `""`, `"unterminated`, `"a"b`, `"a";p=1`, `a;p=1`, `a,b`, `a b`,
		`"bad\escape"`, "\"ctl\x01\"", "\"caf\u00e9\"", "café", `"` + strings.Repeat("x", 256) + `"`,
		strings.Repeat("x", 256),
	}
	for _, in := range bad {
		if got, err := idempotency.ParseKey(in, 255); !errors.Is(err, idempotency.ErrKeyMalformed) {
			t.Errorf("ParseKey(%q) = %q, %v; want ErrKeyMalformed", in, got, err)
		}
	}
	if _, err := idempotency.ParseKey(strings.Repeat("x", 255), 255); err != nil {
		t.Errorf("a key of exactly MaxKeyLength was refused: %v", err)
	}
}

// FuzzParseKey: any header value either parses to a key within the bounds
// and of printable ASCII, or fails with ErrKeyMalformed; never a panic. A
// bare key and its quoted form are the same key.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `"a\"b"`, `"`, `\`, "", "\xff", `"a" `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := idempotency.ParseKey(s, 64)
		if err != nil {
			if !errors.Is(err, idempotency.ErrKeyMalformed) {
				t.Fatalf("ParseKey(%q) error %v does not match ErrKeyMalformed", s, err)
			}
			return
		}
		if k == "" || len(k) > 64 {
			t.Fatalf("ParseKey(%q) = %q: empty or over the bound", s, k)
		}
		for i := 0; i < len(k); i++ {
			if k[i] < 0x20 || k[i] > 0x7e {
				t.Fatalf("ParseKey(%q) = %q: non-printable byte", s, k)
			}
		}
		quoted := strconv.Quote(k) // for printable ASCII, Go's quoting is the sf-string escaping of " and \
		if again, err := idempotency.ParseKey(quoted, 64); err != nil || again != k {
			t.Fatalf("the quoted form %s of %q parsed to %q, %v", quoted, k, again, err)
		}
	})
}
