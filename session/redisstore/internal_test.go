package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// TestKeysShareSlot: the keys one script touches share a hash tag, so
// scripts run on Cluster (checked here on every flavour, before a Cluster
// run would report CROSSSLOT).
func TestKeysShareSlot(t *testing.T) {
	s := &Store{prefix: "p:"}
	for _, id := range []string{"abc", "R2N1_-x", strings.Repeat("z", 43)} {
		if redistest.Slot(s.sessionKey(id)) != redistest.Slot(s.tombKey(id)) {
			t.Fatalf("session and tombstone keys of %q are on different slots", id)
		}
	}
	// Different sessions spread over slots.
	if redistest.Slot(s.sessionKey("a1")) == redistest.Slot(s.sessionKey("b2")) &&
		redistest.Slot(s.sessionKey("c3")) == redistest.Slot(s.sessionKey("d4")) {
		t.Fatal("every session on one slot: the tag is not per session")
	}
}

func FuzzUserKey(f *testing.F) {
	f.Add("alice")
	f.Add("}{")
	f.Add("x{y}z")
	s := &Store{prefix: "p:"}
	f.Fuzz(func(t *testing.T, user string) {
		k := s.userKey(user)
		tag := k[strings.IndexByte(k, '{')+1 : strings.IndexByte(k, '}')]
		if strings.ContainsAny(tag, "{}") || !strings.HasSuffix(k, "}") || strings.Count(k, "{") != 1 {
			t.Fatalf("user %q moved the hash tag: %q", user, k)
		}
	})
}

// FuzzDecodeRecord feeds the stored-record decoder arbitrary hashes
// (fields and values separated by NUL): it never panics, and a record it
// accepts is consistent.
func FuzzDecodeRecord(f *testing.F) {
	f.Add("_a\x001700000000000\x00_e\x001699999999000\x00_u\x00bob\x00v:k\x00val")
	f.Add("_a\x00-1\x00_e\x00x")
	f.Add("v:only\x00x")
	f.Add("")
	f.Fuzz(func(t *testing.T, flat string) {
		parts := strings.Split(flat, "\x00")
		m := map[string]string{}
		for i := 0; i+1 < len(parts); i += 2 {
			m[parts[i]] = parts[i+1]
		}
		rec, ok := decodeRecord(m)
		if ok != (rec != nil) {
			t.Fatalf("ok %v with record %v", ok, rec)
		}
		if rec == nil {
			return
		}
		if rec.IdleDeadline.After(rec.Deadline) || !rec.Deadline.After(time.UnixMilli(0)) {
			t.Fatalf("accepted inconsistent deadlines %v / %v", rec.IdleDeadline, rec.Deadline)
		}
		for k, v := range rec.Values {
			if m[valuePrefix+k] != string(v) {
				t.Fatalf("value of %q = %q, stored %q", k, v, m[valuePrefix+k])
			}
		}
	})
}
