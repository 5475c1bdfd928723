// Package storetest is the conformance suite of session.Store: every store
// (memory, Redis on each flavour) runs it through redistest.Stores, so
// they all behave alike through the interface alone.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/session"
)

// ID returns a fresh store id (43 base64url characters, as a Manager
// makes).
func ID() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Create creates session id with values, bound to user if not "".
func Create(t testing.TB, s session.Store, id, user string, values map[string]string) {
	t.Helper()
	now := time.Now()
	ch := &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: now.Add(2 * time.Hour), User: user, Set: bytesOf(values)}
	if err := s.Commit(context.Background(), id, ch); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
}

func bytesOf(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

func stringsOf(m map[string][]byte) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func load(t testing.TB, s session.Store, id string) *session.Record {
	t.Helper()
	r, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return r
}

func wantValues(t testing.TB, s session.Store, id string, want map[string]string) {
	t.Helper()
	r := load(t, s, id)
	if r == nil {
		t.Fatalf("session %s missing, want %v", id, want)
	}
	got := stringsOf(r.Values)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("session %s values = %v, want %v", id, got, want)
	}
}

func commit(s session.Store, id string, ch *session.Change) error {
	if ch.Now.IsZero() {
		ch.Now = time.Now()
	}
	if ch.Idle == 0 {
		ch.Idle = time.Hour
	}
	return s.Commit(context.Background(), id, ch)
}

// Run is the suite. newStore returns a fresh, empty store for the test it
// is given.
func Run(t *testing.T, newStore func(t *testing.T) session.Store) {
	t.Run("LoadMissing", func(t *testing.T) {
		s := newStore(t)
		if r := load(t, s, ID()); r != nil {
			t.Fatalf("Load of an unknown id = %+v, want nil", r)
		}
	})

	t.Run("CreateAndLoad", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		now := time.Now()
		ch := &session.Change{Create: true, Now: now, Idle: 30 * time.Minute, Deadline: now.Add(2 * time.Hour),
			User: "alice", Set: bytesOf(map[string]string{"a": "1", "b": "", "with space{}": "x\x00y"})}
		if err := s.Commit(context.Background(), id, ch); err != nil {
			t.Fatal(err)
		}
		r := load(t, s, id)
		if r == nil {
			t.Fatal("created session not found")
		}
		if got := stringsOf(r.Values); fmt.Sprint(got) != fmt.Sprint(map[string]string{"a": "1", "b": "", "with space{}": "x\x00y"}) {
			t.Fatalf("values = %q", got)
		}
		if r.User != "alice" {
			t.Fatalf("user = %q, want alice", r.User)
		}
		if d := r.Deadline.Sub(now.Add(2 * time.Hour)); d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("deadline off by %v", d)
		}
		if d := r.IdleDeadline.Sub(now.Add(30 * time.Minute)); d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("idle deadline off by %v", d)
		}
	})

	t.Run("IdleDeadlineCappedByDeadline", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		now := time.Now()
		if err := s.Commit(context.Background(), id, &session.Change{Create: true, Now: now, Idle: time.Hour,
			Deadline: now.Add(10 * time.Minute), Set: bytesOf(map[string]string{"k": "v"})}); err != nil {
			t.Fatal(err)
		}
		r := load(t, s, id)
		if r == nil || !r.IdleDeadline.Equal(r.Deadline) {
			t.Fatalf("record %+v: want the idle deadline capped at the absolute one", r)
		}
	})

	t.Run("CreateTwiceFails", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		Create(t, s, id, "", map[string]string{"a": "1"})
		now := time.Now()
		err := s.Commit(context.Background(), id, &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: now.Add(time.Hour),
			Set: bytesOf(map[string]string{"a": "2"})})
		if !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("second create = %v, want ErrNotFound", err)
		}
		wantValues(t, s, id, map[string]string{"a": "1"})
	})

	t.Run("CommitToMissingCreatesNothing", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		if err := commit(s, id, &session.Change{Set: bytesOf(map[string]string{"a": "1"})}); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("commit to a missing session = %v, want ErrNotFound", err)
		}
		if r := load(t, s, id); r != nil {
			t.Fatalf("a commit to a missing session created %+v", r)
		}
	})

	t.Run("PerKeyMerge", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		Create(t, s, id, "", map[string]string{"a": "1", "b": "1", "c": "1"})
		// Two requests that both loaded {a,b,c}: one sets a, the other
		// sets b and deletes c. Neither overwrites the other.
		if err := commit(s, id, &session.Change{Set: bytesOf(map[string]string{"a": "A"})}); err != nil {
			t.Fatal(err)
		}
		if err := commit(s, id, &session.Change{Set: bytesOf(map[string]string{"b": "B"}), Delete: []string{"c"}}); err != nil {
			t.Fatal(err)
		}
		wantValues(t, s, id, map[string]string{"a": "A", "b": "B"})
		// Same key: the last commit wins.
		if err := commit(s, id, &session.Change{Set: bytesOf(map[string]string{"a": "last"})}); err != nil {
			t.Fatal(err)
		}
		wantValues(t, s, id, map[string]string{"a": "last", "b": "B"})
	})

	t.Run("ClearThenSet", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		Create(t, s, id, "bob", map[string]string{"a": "1", "b": "2"})
		if err := commit(s, id, &session.Change{Clear: true, Set: bytesOf(map[string]string{"c": "3"})}); err != nil {
			t.Fatal(err)
		}
		wantValues(t, s, id, map[string]string{"c": "3"})
		if r := load(t, s, id); r.User != "bob" {
			t.Fatalf("Clear dropped the user binding: %q", r.User)
		}
	})

	t.Run("SizeLimit", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		Create(t, s, id, "", map[string]string{"a": "12345"}) // size 6
		err := commit(s, id, &session.Change{SizeLimit: 10, Set: bytesOf(map[string]string{"b": "12345", "c": "x"})})
		if !errors.Is(err, session.ErrTooLarge) {
			t.Fatalf("commit past the limit = %v, want ErrTooLarge", err)
		}
		wantValues(t, s, id, map[string]string{"a": "12345"})
		// Replacing a value counts the new size, not both.
		if err := commit(s, id, &session.Change{SizeLimit: 10, Set: bytesOf(map[string]string{"a": "123456789"})}); err != nil {
			t.Fatalf("replacing within the limit: %v", err)
		}
		// Deleting frees room.
		if err := commit(s, id, &session.Change{SizeLimit: 10, Delete: []string{"a"}, Set: bytesOf(map[string]string{"b": "123456789"})}); err != nil {
			t.Fatalf("delete and set within the limit: %v", err)
		}
		wantValues(t, s, id, map[string]string{"b": "123456789"})
		// A create past the limit creates nothing.
		id2 := ID()
		now := time.Now()
		err = s.Commit(context.Background(), id2, &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: now.Add(time.Hour),
			SizeLimit: 4, Set: bytesOf(map[string]string{"big": "value"})})
		if !errors.Is(err, session.ErrTooLarge) {
			t.Fatalf("create past the limit = %v, want ErrTooLarge", err)
		}
		if r := load(t, s, id2); r != nil {
			t.Fatal("a refused create left a session")
		}
	})

	t.Run("TakeTombstones", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		Create(t, s, id, "carol", map[string]string{"a": "1"})
		r, err := s.Take(context.Background(), id)
		if err != nil || r == nil || string(r.Values["a"]) != "1" || r.User != "carol" {
			t.Fatalf("Take = %+v, %v; want the session", r, err)
		}
		if r := load(t, s, id); r != nil {
			t.Fatal("taken session still loads")
		}
		// A request that loaded it before cannot bring it back...
		if err := commit(s, id, &session.Change{Set: bytesOf(map[string]string{"a": "2"})}); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("commit after Take = %v, want ErrNotFound", err)
		}
		// ...nor can anything create it again.
		now := time.Now()
		if err := s.Commit(context.Background(), id, &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: now.Add(time.Hour),
			Set: bytesOf(map[string]string{"a": "3"})}); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("create after Take = %v, want ErrNotFound", err)
		}
		if r := load(t, s, id); r != nil {
			t.Fatal("taken session came back")
		}
		if r, err := s.Take(context.Background(), id); r != nil || err != nil {
			t.Fatalf("second Take = %+v, %v; want nil, nil", r, err)
		}
	})

	t.Run("DestroyUser", func(t *testing.T) {
		s := newStore(t)
		var mine []string
		for range 3 {
			id := ID()
			Create(t, s, id, "dave", map[string]string{"k": "v"})
			mine = append(mine, id)
		}
		other := ID()
		Create(t, s, other, "erin", map[string]string{"k": "v"})
		anon := ID()
		Create(t, s, anon, "", map[string]string{"k": "v"})
		// One of dave's sessions is bound later, by a commit.
		late := ID()
		Create(t, s, late, "", map[string]string{"k": "v"})
		if err := commit(s, late, &session.Change{User: "dave"}); err != nil {
			t.Fatal(err)
		}
		mine = append(mine, late)
		n, err := s.DestroyUser(context.Background(), "dave")
		if err != nil || n != len(mine) {
			t.Fatalf("DestroyUser = %d, %v; want %d", n, err, len(mine))
		}
		for _, id := range mine {
			if r := load(t, s, id); r != nil {
				t.Fatalf("dave's session %s survived DestroyUser", id)
			}
		}
		for _, id := range []string{other, anon} {
			if r := load(t, s, id); r == nil {
				t.Fatalf("session %s of someone else was destroyed", id)
			}
		}
		if n, err := s.DestroyUser(context.Background(), "dave"); n != 0 || err != nil {
			t.Fatalf("second DestroyUser = %d, %v; want 0", n, err)
		}
		if n, err := s.DestroyUser(context.Background(), "nobody"); n != 0 || err != nil {
			t.Fatalf("DestroyUser of an unknown user = %d, %v", n, err)
		}
	})

	t.Run("DestroyUserSkipsRebound", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		Create(t, s, id, "frank", map[string]string{"k": "v"})
		if err := commit(s, id, &session.Change{User: "grace"}); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.DestroyUser(context.Background(), "frank"); n != 0 {
			t.Fatalf("DestroyUser(frank) destroyed %d sessions now bound to grace", n)
		}
		if r := load(t, s, id); r == nil || r.User != "grace" {
			t.Fatalf("grace's session = %+v", r)
		}
	})

	t.Run("RenewMovesIndex", func(t *testing.T) {
		s := newStore(t)
		old := ID()
		Create(t, s, old, "heidi", map[string]string{"k": "v"})
		r, err := s.Take(context.Background(), old)
		if err != nil || r == nil {
			t.Fatal(r, err)
		}
		nu := ID()
		now := time.Now()
		if err := s.Commit(context.Background(), nu, &session.Change{Create: true, Now: now, Idle: time.Hour, Deadline: r.Deadline,
			Set: r.Values, User: r.User, Unindex: old}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DestroyUser(context.Background(), "heidi"); n != 1 || err != nil {
			t.Fatalf("DestroyUser after renew = %d, %v; want 1", n, err)
		}
	})

	t.Run("ConcurrentKeys", func(t *testing.T) {
		s := newStore(t)
		id := ID()
		Create(t, s, id, "", nil)
		const n = 16
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- commit(s, id, &session.Change{Set: bytesOf(map[string]string{fmt.Sprint("k", i): "v"})})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if r := load(t, s, id); r == nil || len(r.Values) != n {
			t.Fatalf("after %d concurrent commits of different keys: %+v", n, r)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Load(ctx, ID()); err == nil {
			t.Fatal("Load with a cancelled context succeeded")
		}
	})
}
