package lb

import (
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

func init() {
	bridge.LBWatch = func(b any, notify func()) func() { return b.(*Balancer).watch(notify) }
	bridge.LBSetReachable = func(b any, addr string, ok bool) { b.(*Balancer).setReachable(addr, ok) }
	bridge.LBClassifier = func(b any) bulwark.Classifier { return b.(*Balancer).classify }
	bridge.LBRecordWait = func(b any, t any, o bulwark.Outcome, wait time.Duration) {
		b.(*Balancer).finish(t.(Ticket), o, wait)
	}
}

// watch calls notify after every change of the endpoint set, until the
// returned function is called.
func (b *Balancer) watch(notify func()) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watchSeq++
	id := b.watchSeq
	if b.watchers == nil {
		b.watchers = map[uint64]func(){}
	}
	b.watchers[id] = notify
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.watchers, id)
	}
}

// notifyWatchers calls the watchers registered when it was called; the
// caller must not hold b.mu.
func (b *Balancer) notifyWatchers() {
	b.mu.Lock()
	fns := make([]func(), 0, len(b.watchers))
	for _, fn := range b.watchers {
		fns = append(fns, fn)
	}
	b.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// setReachable marks addr reachable or not.
func (b *Balancer) setReachable(addr string, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.byAddr[addr]
	if m == nil || m.down == !ok {
		return
	}
	m.down = !ok
	if ok {
		b.startRampLocked(m, b.clk.Nanotime())
	}
	b.rebuildLocked()
}
