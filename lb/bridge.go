package lb

import (
	"context"
	"time"
	"unsafe"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/tried"
)

func init() {
	bridge.LBWatch = func(b any, notify func()) func() { return b.(*Balancer).watch(notify) }
	bridge.LBConns = func(b any, addr string, conns, ready int) { b.(*Balancer).addConns(addr, conns, ready) }
	bridge.LBClassifier = func(b any) bulwark.Classifier { return b.(*Balancer).classify }
	bridge.LBRecordWait = func(b any, t any, o bulwark.Outcome, wait time.Duration) {
		b.(*Balancer).finish(t.(Ticket), o, wait)
	}
	bridge.LBPickAvoid = func(b any, rec *tried.Record, key string) (any, error) {
		var k uint64
		if key != "" {
			k = hashString(key)
		}
		return b.(*Balancer).pickAvoid(rec, k, key != "")
	}
	bridge.LBTried = func(rec *tried.Record, t any) {
		if m := t.(Ticket).m; m != nil {
			rec.Add(unsafe.Pointer(m))
		}
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

// addConns adds conns to addr's gRPC SubConns and ready to those of them
// READY (several ClientConns may share the balancer): the endpoint is
// unreachable while it has SubConns and none is READY. It tells
// OnStateChange when that changes the endpoint's state.
func (b *Balancer) addConns(addr string, conns, ready int) {
	b.mu.Lock()
	m := b.byAddr[addr]
	if m == nil {
		b.mu.Unlock()
		return
	}
	from, wasDown := m.state(), m.down
	m.conns = max(0, m.conns+conns)
	m.ready = max(0, min(m.ready+ready, m.conns))
	m.down = m.conns > 0 && m.ready == 0
	if m.down == wasDown {
		b.mu.Unlock()
		return
	}
	if !m.down {
		b.startRampLocked(m, b.nanotime())
	}
	b.rebuildLocked()
	to := m.state()
	ev := StateChangeEvent{Endpoint: m.endpoint(), From: from, To: to, Reason: "connection not ready"}
	if !m.down {
		ev.Reason = "connection ready"
	}
	b.mu.Unlock()
	if from != to {
		b.notify(context.Background(), ev)
	}
}
