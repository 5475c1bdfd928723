package session

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with [errors.Is].
var (
	// ErrNoSession is returned by the per-request functions (Put, Renew,
	// Destroy, ...) when their context does not come from a request served
	// by [Manager.Handler].
	ErrNoSession = errors.New("session: no session in this context (is the handler wrapped by Manager.Handler?)")
	// ErrTooLarge is returned by Put, and reported by a save, when the
	// session's encoded keys and values would exceed Config.SizeLimit.
	// Nothing is stored: the session keeps its previous contents.
	ErrTooLarge = errors.New("session: session too large")
	// ErrHeadersWritten is returned by Renew, and by Put or SetUser on a
	// request that has no session yet, once the response's headers are
	// written: the new cookie could no longer reach the client.
	ErrHeadersWritten = errors.New("session: response headers already written")
	// ErrNotFound is returned by [Store.Commit] when the session it is
	// asked to change does not exist (it expired, was destroyed or never
	// existed), and when a session to create is tombstoned. Nothing is
	// applied.
	ErrNotFound = errors.New("session: session not found")
	// ErrStore matches every [*StoreError].
	ErrStore = errors.New("session: store failed")
	// ErrFull is returned by the memory store when it holds
	// MemoryConfig.MaxSessions sessions and is asked to create another.
	ErrFull = errors.New("session: memory store full")
	// ErrInvalidUser is returned by SetUser and DestroyAll for an empty
	// user ID or one longer than [MaxUserIDLen] bytes.
	ErrInvalidUser = errors.New("session: invalid user ID")
)

// StoreError reports a store operation that failed (Redis unreachable, a
// timeout, a full Redis, ...). errors.Is(err, ErrStore) holds for it, and
// Unwrap returns the store's error.
type StoreError struct {
	// Op is the operation: "load", "save", "renew", "destroy" or
	// "destroy_all".
	Op string
	// Err is the store's error.
	Err error
}

// Error returns "session: store <op>: <cause>".
func (e *StoreError) Error() string { return fmt.Sprintf("session: store %s: %v", e.Op, e.Err) }

// Is reports whether target is [ErrStore].
func (e *StoreError) Is(target error) bool { return target == ErrStore }

// Unwrap returns the store's error.
func (e *StoreError) Unwrap() error { return e.Err }
