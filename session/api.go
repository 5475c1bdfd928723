package session

import (
	"context"
	"fmt"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// The functions below work on the session of the request whose context
// they are given: the context of a request served by [Manager.Handler]
// (r.Context(), or a context derived from it). Outside such a request
// they do nothing and report ErrNoSession (or false, or nil). A nil ctx
// panics. They are safe for concurrent use by the handler's goroutines.
//
// The session is loaded from the store on first use, not before: a
// request that calls none of them costs no store call. A Put, Remove or
// Clear alone does not load it either: changes are sent to the store in
// one atomic commit when the response's headers are about to be written
// (the first WriteHeader, Write or Flush), or when the handler returns if
// it wrote nothing. Changes made after the headers are written are
// committed when the handler returns. If the handler panics, nothing is
// committed.

// Get returns the value stored under key, decoded as a T, and whether
// there was one. It reports false when the key is absent, when the
// stored value does not decode as a T, when the session could not be
// loaded (see Err), and outside a session. A value Put by this request
// is returned as it was put when it is a T.
//
// With the default gob codec, T must be the concrete type that was put
// (Put a User, Get[User]); Get[any] only returns values put by this
// request.
func Get[T any](ctx context.Context, key string) (T, bool) {
	var zero T
	s := from(ctx)
	if s == nil {
		return zero, false
	}
	s.mu.Lock()
	raw, val, ok := s.get(key)
	s.mu.Unlock()
	if !ok {
		return zero, false
	}
	if t, ok := val.(T); ok {
		return t, true
	}
	var t T
	if err := s.m.codec.Decode(raw, &t); err != nil {
		return zero, false
	}
	return t, true
}

// Has reports whether the session holds key.
func Has(ctx context.Context, key string) bool {
	s := from(ctx)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, ok := s.get(key)
	return ok
}

// Put stores v under key, replacing what was there. It encodes v at once
// with the Manager's codec and returns the codec's error, or ErrTooLarge
// if the session would pass Config.SizeLimit. Two overlapping requests
// that put different keys both keep their values; for one key, the
// request that commits last wins.
//
// Put on a request without a session creates one (and its cookie) when
// the changes are committed; once the response's headers are written,
// that is too late and Put returns ErrHeadersWritten.
func Put(ctx context.Context, key string, v any) error {
	s := from(ctx)
	if s == nil {
		return ErrNoSession
	}
	data, err := s.m.codec.Encode(v)
	if err != nil {
		return fmt.Errorf("session: encode %q: %w", key, err)
	}
	if len(key)+len(data) > s.m.sizeLimit {
		return fmt.Errorf("%w: key %q needs %d bytes (Config.SizeLimit %d)", ErrTooLarge, key, len(key)+len(data), s.m.sizeLimit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if s.loaded || s.clear {
		// The whole session is known: check its size now rather than at
		// commit.
		size := len(key) + len(data)
		if !s.clear {
			for k, v := range s.values {
				if _, d := s.del[k]; !d && k != key {
					if _, p := s.set[k]; !p {
						size += len(k) + len(v)
					}
				}
			}
		}
		for k, v := range s.set {
			if k != key {
				size += len(k) + len(v)
			}
		}
		if size > s.m.sizeLimit {
			return fmt.Errorf("%w: %d bytes after putting %q (Config.SizeLimit %d)", ErrTooLarge, size, key, s.m.sizeLimit)
		}
	}
	if s.set == nil {
		s.set = make(map[string][]byte)
		s.decoded = make(map[string]any)
	}
	s.set[key] = data
	s.decoded[key] = v
	delete(s.del, key)
	return nil
}

// Remove deletes key from the session, leaving the other keys alone.
func Remove(ctx context.Context, key string) error {
	s := from(ctx)
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	delete(s.set, key)
	delete(s.decoded, key)
	if !s.clear {
		if s.del == nil {
			s.del = make(map[string]struct{})
		}
		s.del[key] = struct{}{}
	}
	return nil
}

// Clear deletes every key of the session, keeping the session itself (its
// token, user and deadlines). Keys put after Clear by the same request
// are kept.
func Clear(ctx context.Context) error {
	s := from(ctx)
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.set, s.decoded, s.del, s.clear = nil, nil, nil, true
	return nil
}

// Keys returns the session's keys, sorted.
func Keys(ctx context.Context) []string {
	s := from(ctx)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys()
}

// SetUser binds the session to userID (at most MaxUserIDLen bytes), so
// that Manager.DestroyAll(userID) ends it. Call Renew at the same time
// when the user logs in. The binding is committed with the request's other
// changes.
func SetUser(ctx context.Context, userID string) error {
	s := from(ctx)
	if s == nil {
		return ErrNoSession
	}
	if !validUser(userID) {
		return ErrInvalidUser
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load() // for the absolute deadline, which bounds the user's index
	if err := s.writable(); err != nil {
		return err
	}
	s.user, s.userDirty = userID, true
	return nil
}

// User returns the user the session is bound to, or "".
func User(ctx context.Context) string {
	s := from(ctx)
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.userDirty {
		s.load()
	}
	return s.user
}

// Renew gives the session a new token and ends the old one, keeping the
// data, the user and the absolute deadline (so renewing never extends a
// session's lifetime): call it at login and at every change of privilege,
// so that a token planted or seen before cannot ride on the new rights
// (session fixation).
//
// It runs at once: it atomically takes the session from the store under
// its old token (so a concurrent Destroy or Renew wins or loses as a
// whole, and the data carried over includes what overlapping requests
// committed) and stores it under the new one; the new cookie goes out with
// the response. A request still using the old token afterwards finds no
// session and its changes are dropped. If the session was already gone,
// Renew leaves the request without a session (a later Put starts a fresh
// one). On a request without a session it does nothing. It returns
// ErrHeadersWritten once the response's headers are written, and a
// *StoreError if the store fails (the old token may then be dead already).
func Renew(ctx context.Context) error {
	s := from(ctx)
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.wrote {
		return ErrHeadersWritten
	}
	if s.id == "" {
		return nil
	}
	rec, err := s.m.store.Take(s.ctx, s.id)
	if err != nil {
		s.fail(opRenew, err)
		return s.err
	}
	old := s.id
	s.token, s.id, s.loaded, s.touch = "", "", true, false
	now := clock.Real.Now()
	if rec == nil || !now.Before(rec.IdleDeadline) || !now.Before(rec.Deadline) {
		s.live, s.values = false, nil
		if !s.userDirty {
			s.user = ""
		}
		s.delCookie = s.hadCookie
		return nil
	}
	user := rec.User
	if s.userDirty {
		user = s.user
	}
	token, id := newToken()
	ch := &Change{Create: true, Deadline: rec.Deadline, Now: now, Idle: s.m.idle, Set: rec.Values, User: user}
	if user != "" {
		ch.Unindex = old
	}
	if err := s.m.store.Commit(s.ctx, id, ch); err != nil {
		s.live, s.values = false, nil
		s.fail(opRenew, err)
		return s.err
	}
	s.m.saves.Add(1)
	s.token, s.id, s.live = token, id, true
	s.values, s.user, s.userDirty, s.deadline = rec.Values, user, false, rec.Deadline
	s.setCookie, s.delCookie = true, false
	return nil
}

// Destroy ends the session at once (logout): the store deletes it and
// tombstones its id, so that no request that started before — and commits
// after — can bring it back, and the response deletes the cookie. Changes
// this request has not committed are dropped; keys put afterwards start a
// fresh session with a new token. It returns a *StoreError if the store
// fails (the session may then still be live: answer accordingly).
func Destroy(ctx context.Context) error {
	s := from(ctx)
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" {
		if _, err := s.m.store.Take(s.ctx, s.id); err != nil {
			serr := &StoreError{Op: opNames[opDestroy], Err: err}
			s.m.storeError(s.ctx, opDestroy, serr, s.wrote)
			return serr
		}
	}
	s.token, s.id, s.loaded, s.live, s.touch = "", "", true, false, false
	s.values, s.user = nil, ""
	s.set, s.decoded, s.del, s.clear, s.userDirty = nil, nil, nil, false, false
	s.setCookie, s.delCookie = false, s.hadCookie
	s.err = nil
	return nil
}

// Err returns why the request's session is unusable: a *StoreError when
// the store failed to load or save it (the ErrorHandler then answers the
// request, if its headers are not written yet), an error matching
// ErrTooLarge when a commit was refused, ErrNoSession outside a session,
// or nil.
func Err(ctx context.Context) error {
	s := from(ctx)
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
