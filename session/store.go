package session

import (
	"context"
	"time"
)

// Store keeps sessions for a [Manager]. The memory store ([MemoryStore])
// and the Redis store (package session/redisstore) implement it; both pass
// the same conformance suite.
//
// A store never sees a token: ids are the SHA-256 of the token in
// unpadded base64url (43 characters from [A-Za-z0-9_-]). Values are
// stored per key, so that [Store.Commit] applies one request's changes
// key by key, atomically, over whatever other requests committed
// meanwhile.
//
// Implementations must be safe for concurrent use, must take ctx's
// deadline as the bound of any wait, and must return a store failure
// (unreachable, timed out, full) as an error, never a panic.
type Store interface {
	// Load returns the session id, or nil and no error if there is none
	// (never created, expired, or destroyed). The Record is the caller's.
	Load(ctx context.Context, id string) (*Record, error)

	// Commit applies ch to the session id, atomically: either all of ch
	// is applied or none of it is. With ch.Create it creates the session
	// and returns ErrNotFound if id exists or was destroyed (tombstoned);
	// without, it returns ErrNotFound if the session does not exist (so a
	// request that started before a Destroy can never bring the session
	// back). It returns ErrTooLarge, applying nothing, if the session's
	// size would pass ch.SizeLimit.
	//
	// On success the session's idle deadline becomes
	// min(ch.Now+ch.Idle, its absolute deadline), and the session expires
	// at that deadline unless a later Commit moves it.
	Commit(ctx context.Context, id string, ch *Change) error

	// Take deletes the session id and returns what it held, atomically,
	// or nil and no error if it did not exist. The id of a session it
	// deleted is tombstoned for TombstoneTTL: a later Commit with Create
	// on it fails. Destroy and Renew use it.
	Take(ctx context.Context, id string) (*Record, error)

	// DestroyUser deletes every session bound to user (see Change.User)
	// and returns how many it deleted, in time proportional to that
	// user's sessions. A session bound to user by a Commit that runs
	// concurrently with DestroyUser is deleted or never created.
	DestroyUser(ctx context.Context, user string) (int, error)
}

// Record is a session as a [Store] holds it.
type Record struct {
	// Values holds the encoded value of every key.
	Values map[string][]byte
	// User is the user the session is bound to, or "".
	User string
	// IdleDeadline is when the session expires unless it is used (and
	// touched) again. It is never after Deadline.
	IdleDeadline time.Time
	// Deadline is the absolute end of the session, fixed at creation.
	Deadline time.Time
}

// Change is what one request changes in a session, for [Store.Commit].
// Clear is applied first, then Delete, then Set; a key is never in both
// Set and Delete.
type Change struct {
	// Create asks for a new session.
	Create bool
	// Deadline is the session's absolute deadline: required with Create,
	// and set when known otherwise (a store may bound its user index by
	// it).
	Deadline time.Time
	// Now is the committing request's time, and Idle the idle timeout.
	Now  time.Time
	Idle time.Duration
	// Clear removes every key.
	Clear bool
	// Delete removes these keys.
	Delete []string
	// Set stores these encoded values.
	Set map[string][]byte
	// User, if not "", binds the session to this user, for
	// [Store.DestroyUser].
	User string
	// Unindex, if not "", is the id of a session that this one replaces
	// (Renew): it is removed from User's index.
	Unindex string
	// SizeLimit bounds the sum of len(key)+len(value) over the session's
	// keys after the change; 0 means no bound.
	SizeLimit int
}

// Size returns the size of a session's values as Change.SizeLimit counts
// it: the sum of len(key)+len(value).
func Size(values map[string][]byte) int {
	n := 0
	for k, v := range values {
		n += len(k) + len(v)
	}
	return n
}
