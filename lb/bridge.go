package lb

import (
	"context"
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

// setReachable marks addr reachable or not, and tells OnStateChange
// when that changes the endpoint's state.
func (b *Balancer) setReachable(addr string, ok bool) {
	b.mu.Lock()
	m := b.byAddr[addr]
	if m == nil || m.down == !ok {
		b.mu.Unlock()
		return
	}
	from := m.state()
	m.down = !ok
	if ok {
		b.startRampLocked(m, b.clk.Nanotime())
	}
	b.rebuildLocked()
	to := m.state()
	ev := StateChangeEvent{Endpoint: m.endpoint(), From: from, To: to, Reason: "connection not ready"}
	if ok {
		ev.Reason = "connection ready"
	}
	b.mu.Unlock()
	if from != to {
		b.notify(context.Background(), ev)
	}
}
