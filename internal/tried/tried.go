// Package tried carries, through a call's context, the endpoints that the
// call's attempts have been sent to, so that a retry or a hedge avoids them
// (Envoy's previous-hosts retry predicate): the balancers (lb, and through
// it grpcx/balancer) read and fill a [Record]; the retry layer installs one
// in the context of the attempts it makes. Neither side imports the other.
//
// The first attempt of a call costs nothing: no layer installs a Record
// before it (that would allocate on the success path). A balancer that
// finds no Record and sees its attempt fail hands one back with the
// result instead, through an [Error] wrapping the attempt's error, or a
// response body with a TriedRecord method ([OfBody]), which the retry
// layer adopts for the attempts that follow.
package tried

import (
	"context"
	"errors"
	"sync/atomic"
	"unsafe"
)

// Max is how many distinct endpoints a Record holds; endpoints tried after
// that are not recorded (a call with more attempts than that is rare, and
// its later attempts avoid the first Max endpoints).
const Max = 16

// Record lists the endpoints of one call's attempts, as opaque pointers
// (lb's endpoint records). It is safe for concurrent use: the attempts of
// a hedged call add to it concurrently. The zero Record is empty.
type Record struct {
	n   atomic.Int32
	eps [Max]unsafe.Pointer
}

// Add records p, unless it is already recorded or the Record is full.
// Concurrent Adds of the same p may record it twice, which is harmless.
func (r *Record) Add(p unsafe.Pointer) {
	if p == nil || r.Has(p) {
		return
	}
	i := r.n.Add(1) - 1
	if i >= Max {
		r.n.Add(-1)
		return
	}
	atomic.StorePointer(&r.eps[i], p)
}

// Has reports whether p is recorded.
func (r *Record) Has(p unsafe.Pointer) bool {
	n := min(int(r.n.Load()), Max)
	for i := range n {
		if atomic.LoadPointer(&r.eps[i]) == p {
			return true
		}
	}
	return false
}

// Len returns how many endpoints are recorded (a slot being filled by a
// concurrent Add counts, and matches nothing yet).
func (r *Record) Len() int { return min(int(r.n.Load()), Max) }

// Merge adds o's endpoints to r.
func (r *Record) Merge(o *Record) {
	if o == nil || o == r {
		return
	}
	for i := range o.Len() {
		r.Add(atomic.LoadPointer(&o.eps[i]))
	}
}

type key struct{}

// From returns the Record in ctx, or nil. It costs a context lookup: no
// allocation, no atomic operation.
func From(ctx context.Context) *Record {
	r, _ := ctx.Value(key{}).(*Record)
	return r
}

// With returns a context carrying r.
func With(ctx context.Context, r *Record) context.Context {
	return context.WithValue(ctx, key{}, r)
}

// Error is the error of an attempt that a balancer sent without a Record
// in its context: it carries the Record of the endpoints the attempt went
// to. It prints as its cause and unwraps to it; the retry layer takes it
// off (see Strip) before the caller sees an error.
type Error struct {
	Err error
	Rec *Record
	rec Record // Rec's memory, when made by NewError
}

// NewError returns an Error wrapping err with a new, empty Record, in one
// allocation.
func NewError(err error) *Error {
	e := &Error{Err: err}
	e.Rec = &e.rec
	return e
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Timeout forwards the cause's Timeout method, which url.Error.Timeout
// and os.IsTimeout look for without unwrapping.
func (e *Error) Timeout() bool {
	t, ok := e.Err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// Of returns the Record that err carries, or nil.
func Of(err error) *Record {
	if e, ok := err.(*Error); ok { // the usual place: no allocation
		return e.Rec
	}
	var e *Error
	if err != nil && errors.As(err, &e) {
		return e.Rec
	}
	return nil
}

// Strip removes an Error at the top of err.
func Strip(err error) error {
	if e, ok := err.(*Error); ok {
		return e.Err
	}
	return err
}

// Tagged is implemented by a balancer's response body when the attempt it
// belongs to failed and had no Record in its context.
type Tagged interface {
	TriedRecord() *Record
}

// OfBody returns the Record that a response body carries, or nil.
func OfBody(body any) *Record {
	if t, ok := body.(Tagged); ok {
		return t.TriedRecord()
	}
	return nil
}
