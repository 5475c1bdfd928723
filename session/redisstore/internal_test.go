package redisstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/session"
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

// TestDestroyUserRacesBinding replays, step by step, a login that binds a
// session while DestroyUser runs: the index is written first, DestroyUser
// then sees the id and tombstones it, so the binding commit that follows
// fails and leaves no bound session behind.
func TestDestroyUserRacesBinding(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		s := New(h.Client, Config{Prefix: h.Prefix})
		ctx := t.Context()
		now := time.Now()

		// A new session being created for "uma": index written, hash not yet.
		fresh := "freshID"
		if err := indexScript.Run(ctx, h.Client, []string{s.userKey("uma")}, fresh, ms(now.Add(time.Hour)), ms(now), "").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DestroyUser(ctx, "uma"); err != nil {
			t.Fatal(err)
		}
		err := s.Commit(ctx, fresh, &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: now.Add(time.Hour), User: "uma",
			Set: map[string][]byte{"k": []byte("v")}})
		if !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("creating a session DestroyUser saw in the index = %v, want ErrNotFound", err)
		}
		if r, _ := s.Load(ctx, fresh); r != nil {
			t.Fatal("the racing session was created")
		}

		// An existing anonymous session being bound to "uma".
		anon := "anonID"
		if err := s.Commit(ctx, anon, &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: now.Add(time.Hour),
			Set: map[string][]byte{"k": []byte("v")}}); err != nil {
			t.Fatal(err)
		}
		if err := indexScript.Run(ctx, h.Client, []string{s.userKey("uma")}, anon, ms(now.Add(time.Hour)), ms(now), "").Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DestroyUser(ctx, "uma"); err != nil || n != 0 {
			t.Fatalf("DestroyUser = %d, %v; want 0 (the session is not bound yet)", n, err)
		}
		err = s.Commit(ctx, anon, &session.Change{Now: now, Idle: time.Hour, Deadline: now.Add(time.Hour), User: "uma"})
		if !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("binding after DestroyUser tombstoned the id = %v, want ErrNotFound", err)
		}
		if r, _ := s.Load(ctx, anon); r != nil {
			t.Fatalf("the session survived as %+v", r)
		}
	})
}
