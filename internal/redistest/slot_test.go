package redistest

import (
	"strings"
	"testing"
)

// FuzzSlot: every key maps into 0..16383, and a key with a non-empty first
// tag maps where the tag alone does.
func FuzzSlot(f *testing.F) {
	for _, s := range []string{"", "a", "{a}b", "{}{a}", "{{a}}", "a{b", "}{a}", "bwt:x:00:{t}k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		s := Slot(key)
		if s < 0 || s >= 16384 {
			t.Fatalf("Slot(%q) = %d, out of 0..16383", key, s)
		}
		i := strings.IndexByte(key, '{')
		if i < 0 {
			return
		}
		j := strings.IndexByte(key[i+1:], '}')
		if j <= 0 {
			return
		}
		tag := key[i+1 : i+1+j]
		if got := Slot(tag); got != s && !strings.ContainsAny(tag, "{") {
			t.Fatalf("Slot(%q) = %d, but its tag %q is in slot %d", key, s, tag, got)
		}
	})
}
