package cache

import (
	"net/http"
	"net/textproto"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/httpx"
)

func TestParseCacheControl(t *testing.T) {
	h := http.Header{}
	h.Add("Cache-Control", `max-age=60, No-Cache="Set-Cookie, X-A", private`)
	h.Add("Cache-Control", `s-maxage=5, max-age=1, stale-if-error="30", bad header, =x`)
	d := parseCacheControl(h)
	if got, ok := d.seconds("max-age"); !ok || got != time.Minute {
		t.Fatalf("max-age = %v %v (first occurrence wins)", got, ok)
	}
	if d["no-cache"] != "Set-Cookie, X-A" || !d.has("private") {
		t.Fatalf("directives %v", d)
	}
	if got, ok := d.seconds("stale-if-error"); !ok || got != 30*time.Second {
		t.Fatalf("stale-if-error = %v", got)
	}
	if d.has("bad header") || d.has("") {
		t.Fatalf("malformed names kept: %v", d)
	}
	for _, bad := range []string{"max-age=-1", "max-age=1.5", "max-age=", "max-age=abc"} {
		h := http.Header{"Cache-Control": {bad}}
		if _, ok := parseCacheControl(h).seconds("max-age"); ok {
			t.Errorf("%q parsed as a delta", bad)
		}
	}
	huge := http.Header{"Cache-Control": {"max-age=99999999999999999999999"}}
	if got, ok := parseCacheControl(huge).seconds("max-age"); !ok || got != (1<<31)*time.Second {
		t.Fatalf("an overflowing max-age = %v, want 2^31 s (RFC 9111 1.2.2)", got)
	}
}

// FuzzParseCacheControl: the header comes from the network. Parsing never
// panics, keeps at most maxDirectives, and every name is a lower-case
// token; a delta, when accepted, is within [0, 2^31] seconds.
func FuzzParseCacheControl(f *testing.F) {
	f.Add(`max-age=60, no-cache="a,b", private`)
	f.Add(`s-maxage="5", stale-while-revalidate=10,,,`)
	f.Add(`"unterminated, max-age=3`)
	f.Fuzz(func(t *testing.T, v string) {
		d := parseCacheControl(http.Header{"Cache-Control": {v}})
		if len(d) > maxDirectives {
			t.Fatalf("%d directives kept", len(d))
		}
		for name := range d {
			if !httpx.IsToken(name) || name != strings.ToLower(name) {
				t.Fatalf("bad name %q", name)
			}
			if s, ok := d.seconds(name); ok && (s < 0 || s > (1<<31)*time.Second) {
				t.Fatalf("%s = %v", name, s)
			}
		}
	})
}

// get and direct indexing skip net/http's canonicalization of the header
// name, so every name this package looks up that way must already be
// canonical: a name that is not would never match what net/http stored.
func TestHeaderNamesAreCanonical(t *testing.T) {
	lookup := regexp.MustCompile(`(?:get\([^,()]+, |Header\[|\bh\[)"([^"]+)"`)
	found := 0
	for _, file := range []string{"http.go", "httpdirectives.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lookup.FindAllSubmatch(src, -1) {
			found++
			if name := string(m[1]); textproto.CanonicalMIMEHeaderKey(name) != name {
				t.Errorf("%s: header name %q looked up as is, but its canonical form is %q", file, name, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	if found < 10 {
		t.Fatalf("found %d lookups, want the dozen or more in http.go and httpdirectives.go: is the pattern stale?", found)
	}
	h := http.Header{}
	h.Set("etag", `"v1"`)
	if get(h, "Etag") != h.Get("Etag") || get(h, "Etag") != `"v1"` || get(h, "Expires") != "" || get(nil, "Etag") != "" {
		t.Fatalf("get disagrees with Header.Get")
	}
}
