package cache

import (
	"bytes"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []record{
		{freshUntil: 1 << 62, delta: 12345, payload: []byte(`"v"`)},
		{negative: true, freshUntil: -5, delta: 0},
		{freshUntil: 7, payload: []byte{}},
	} {
		got, err := parseRecord(appendRecord(nil, r))
		if err != nil {
			t.Fatalf("parse(%+v): %v", r, err)
		}
		if got.negative != r.negative || got.freshUntil != r.freshUntil || got.delta != r.delta || !bytes.Equal(got.payload, r.payload) {
			t.Fatalf("round trip %+v -> %+v", r, got)
		}
	}
	for _, bad := range [][]byte{nil, {recMagic}, {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, append(appendRecord(nil, record{negative: true}), 'x')} {
		if _, err := parseRecord(bad); err == nil {
			t.Fatalf("parse(%x) accepted a malformed record", bad)
		}
	}
}

// FuzzParseRecord: records come from a shared Redis, so they are untrusted
// input. Parsing never panics, and whatever parses re-encodes to the same
// bytes.
func FuzzParseRecord(f *testing.F) {
	f.Add(appendRecord(nil, record{freshUntil: 99, delta: 3, payload: []byte(`{"a":1}`)}))
	f.Add(appendRecord(nil, record{negative: true, freshUntil: 1}))
	f.Add([]byte{recMagic, recVersion, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if again := appendRecord(nil, r); !bytes.Equal(again, b) {
			t.Fatalf("parse/append changed %x into %x", b, again)
		}
	})
}
