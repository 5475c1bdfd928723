package clock

import (
	"time"
	_ "unsafe" // for go:linkname
)

// Real is the wall clock, backed by package time.
var Real Clock = realClock{}

type realClock struct{}

// runtimeNano is the runtime's monotonic clock. It is what time.Now reads
// for its monotonic part, without the wall-clock read; on hot paths that
// only measure intervals it halves the cost of a clock reading. It is one of
// the runtime symbols the Go team keeps linkable for this purpose.
//
//go:linkname runtimeNano runtime.nanotime
func runtimeNano() int64

func (realClock) Now() time.Time  { return time.Now() }
func (realClock) Nanotime() int64 { return runtimeNano() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
