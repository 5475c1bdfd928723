package cache

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is what a [Loader] returns when the origin has no value
	// for a key; Get returns it too, also while the answer is cached
	// (Config.NegativeTTL).
	ErrNotFound = errors.New("cache: not found")
	// ErrStore matches, with [errors.Is], every error of the second tier
	// that the cache returns (from Set and Delete, and from reads when
	// Config.FailOnStoreError is set).
	ErrStore = errors.New("cache: store error")
	// ErrClosed is returned by Get and GetMany on a closed Cache when the
	// in-process tier cannot answer (they read neither the Store nor the
	// origin after Close), and to the callers waiting for a load that
	// Close cancelled. Set and Delete still write both tiers after Close.
	ErrClosed = errors.New("cache: closed")
)

// StoreError is an error of the second tier. It matches [ErrStore] and
// unwraps to the Store's own error.
type StoreError struct {
	// Op is the operation that failed: "get", "set", "delete", "publish".
	Op string
	// Err is the Store's error.
	Err error
}

// Error returns "cache: store <op>: <cause>".
func (e *StoreError) Error() string { return fmt.Sprintf("cache: store %s: %v", e.Op, e.Err) }

// Is reports whether target is [ErrStore].
func (e *StoreError) Is(target error) bool { return target == ErrStore }

// Unwrap returns the Store's error.
func (e *StoreError) Unwrap() error { return e.Err }

// PanicError is what a caller waiting for a load gets when the loader
// panicked in the detached goroutine that ran it: the panic cannot travel
// to every waiter, so each gets this error (the first caller included),
// and the process survives.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the loader goroutine's stack at the panic.
	Stack []byte
}

// Error returns "cache: loader panicked: <value>".
func (e *PanicError) Error() string { return fmt.Sprintf("cache: loader panicked: %v", e.Value) }
