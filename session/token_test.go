package session

import (
	"encoding/base64"
	"testing"
)

// FuzzParseToken: only canonical 43-character base64url encodings of 32
// bytes are accepted, and the store ID never holds a hash-tag brace.
func FuzzParseToken(f *testing.F) {
	tok, _ := newToken()
	f.Add(tok)
	f.Add(tok[:42] + "B")
	f.Add("")
	f.Add("{abc}")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseToken(s)
		raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
		want := err == nil && len(raw) == 32 && len(s) == TokenLen && base64.RawURLEncoding.EncodeToString(raw) == s
		if ok != want {
			t.Fatalf("parseToken(%q) ok = %v, want %v", s, ok, want)
		}
		if ok && (len(id) != 43 || id == s) {
			t.Fatalf("parseToken(%q) id = %q", s, id)
		}
		for i := 0; i < len(id); i++ {
			if id[i] == '{' || id[i] == '}' {
				t.Fatalf("id %q holds a brace", id)
			}
		}
	})
}

func TestNewTokenUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, id := newToken()
		if seen[tok] || len(tok) != TokenLen {
			t.Fatalf("token %q repeated or malformed", tok)
		}
		seen[tok] = true
		if id2, ok := parseToken(tok); !ok || id2 != id {
			t.Fatalf("a fresh token does not parse to its id")
		}
	}
}
