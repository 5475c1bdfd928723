package idempotency

import (
	"errors"
	"fmt"
	"time"
)

// Errors. Each HTTP answer the Handler writes for one of them is a problem
// details document (RFC 9457) whose "type" is the sentinel's address in
// this package's documentation.
var (
	// ErrKeyMissing: the request needs an Idempotency-Key (Config.Required)
	// and has none. HTTP 400.
	ErrKeyMissing = errors.New("idempotency: Idempotency-Key header required")
	// ErrKeyMalformed: the Idempotency-Key is not a valid key (see
	// ParseKey), or the header appears more than once. HTTP 400.
	ErrKeyMalformed = errors.New("idempotency: malformed Idempotency-Key")
	// ErrInProgress: a request with the same key is still being processed.
	// HTTP 409 with Retry-After. The error is an [*InProgressError].
	ErrInProgress = errors.New("idempotency: a request with this key is in progress")
	// ErrMismatch: the key was used before with a different payload
	// (method, path or body; see Config.Fingerprint). HTTP 422.
	ErrMismatch = errors.New("idempotency: key reused with a different request")
	// ErrStoreUnavailable: the store could not be reached (Redis down, a
	// timeout). The request is not run, so it can never run twice. HTTP 503
	// with Retry-After. The error wraps the store's error.
	ErrStoreUnavailable = errors.New("idempotency: store unavailable")
	// ErrTooLarge: the request body is larger than Config.MaxRequestBytes.
	// HTTP 413.
	ErrTooLarge = errors.New("idempotency: request body too large to fingerprint")
	// ErrLostClaim is returned by a Store's Renew, Complete and Release when
	// the claim named by the token is no longer held (its lease expired
	// and another request claimed the key, or it was completed or
	// released).
	ErrLostClaim = errors.New("idempotency: claim no longer held")
	// ErrStoreFull is returned by a MemoryStore's Claim when it holds
	// MaxKeys live records and none has expired. The Handler answers it
	// like ErrStoreUnavailable.
	ErrStoreFull = errors.New("idempotency: store full")
)

func malformed(reason string) error { return fmt.Errorf("%w: %s", ErrKeyMalformed, reason) }

// InProgressError is the error for a key whose first request is still
// running. It matches [ErrInProgress].
type InProgressError struct {
	// Wait is the suggested wait before trying again.
	Wait time.Duration
}

// Error returns ErrInProgress's message.
func (e *InProgressError) Error() string { return ErrInProgress.Error() }

// Is reports whether target is ErrInProgress.
func (e *InProgressError) Is(target error) bool { return target == ErrInProgress }

// RetryAfter returns Wait, so that bulwark's retry waits for the first
// request to finish before trying again.
func (e *InProgressError) RetryAfter() time.Duration { return e.Wait }
