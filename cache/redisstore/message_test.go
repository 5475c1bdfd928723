package redisstore

import (
	"slices"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	for _, keys := range [][]string{{"a"}, {"", "b\nc", "{tag}"}, nil} {
		gotID, got, err := decodeMessage(encodeMessage(id, keys))
		if err != nil || gotID != id || !slices.Equal(got, keys) {
			t.Fatalf("round trip of %q: %q %q %v", keys, gotID, got, err)
		}
	}
	for _, bad := range []string{"", "short", id + "\x05ab", id + "\x81\x00", id + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		if _, _, err := decodeMessage(bad); err == nil {
			t.Fatalf("decodeMessage(%q) accepted a malformed message", bad)
		}
	}
}

// FuzzDecodeMessage: anyone who can publish on the channel writes these
// bytes. Decoding never panics, and what decodes re-encodes identically.
func FuzzDecodeMessage(f *testing.F) {
	id := "0123456789abcdef0123456789abcdef"
	f.Add(encodeMessage(id, []string{"a", "bc"}))
	f.Add(id + "\x80")
	f.Fuzz(func(t *testing.T, p string) {
		gotID, keys, err := decodeMessage(p)
		if err != nil {
			return
		}
		if again := encodeMessage(gotID, keys); again != p {
			t.Fatalf("decode/encode changed %q into %q", p, again)
		}
	})
}
