package retry

import (
	"math"
	"slices"
	"sync"

	"github.com/bulwark-go/bulwark/internal/clock"
)

const budgetSlots = 10

// Budget bounds the retries made by every policy that shares it, as a
// fraction of the calls they make, in the spirit of gRPC retry throttling
// and Finagle's RetryBudget. Every call deposits (its first attempt counts
// as one call); every retry and every hedge withdraws one token; a retry
// is allowed while, over the last Window,
//
//	retries + 1 ≤ Ratio·calls + MinPerSecond·Window
//
// (The window is a ring of ten slots, so it covers between 90% and 100% of
// Window.)
// When a dependency fails hard, retries therefore stop growing the load it
// sees beyond (1+Ratio) times the normal traffic, instead of multiplying it
// by MaxAttempts: the retry storm that turns a blip into an outage.
//
// Deposits are lock-free: a call adds one to a striped counter of its
// Policy, which is also the attempts metric, so the success path costs one
// uncontended atomic add. The budget reads those counters only when a
// retry asks for a token (under a mutex: retries are the rare path), and
// spreads the calls made since the last such reading evenly over the time
// elapsed, so a long quiet spell of successes cannot build a large reserve
// of tokens. Calls are thus counted exactly, and placed in time exactly
// when traffic is steady.
//
// A Budget is safe for concurrent use; share one between the policies of
// one client (or of one dependency) to bound their retries together.
type Budget struct {
	unlimited    bool
	ratio        float64
	floor        float64 // MinPerSecond·Window
	window, slot int64   // ns
	clock        clock.Clock

	mu        sync.Mutex
	sources   []*counter
	retired   uint64 // deposits of sources removed by Policy.Close
	lastTotal uint64
	lastNano  int64
	slots     [budgetSlots]budgetSlot
}

type budgetSlot struct {
	epoch       int64 // slot number (nanotime/slot); stale slots are zeroed on reuse
	deposits    float64
	withdrawals float64
}

// NewBudget returns a Budget configured by cfg (zero fields take the
// defaults documented on [BudgetConfig]). It panics with the
// *[bulwark.ConfigError] of [BudgetConfig.Validate] if cfg has a bad value
// (a NaN Ratio would otherwise switch the budget off).
func NewBudget(cfg BudgetConfig) *Budget {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Ratio == 0 {
		cfg.Ratio = DefaultBudgetRatio
	}
	if cfg.MinPerSecond == 0 {
		cfg.MinPerSecond = DefaultBudgetMinPerSecond
	}
	if cfg.MinPerSecond < 0 {
		cfg.MinPerSecond = 0
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultBudgetWindow
	}
	b := &Budget{
		ratio:  cfg.Ratio,
		floor:  cfg.MinPerSecond * cfg.Window.Seconds(),
		window: int64(cfg.Window),
		slot:   max(int64(cfg.Window)/budgetSlots, 1),
		clock:  clock.Or(cfg.clock),
	}
	b.lastNano = b.clock.Nanotime()
	for i := range b.slots {
		b.slots[i].epoch = math.MinInt64
	}
	return b
}

// UnlimitedBudget returns a Budget that allows every retry. Use it only
// when something else bounds the retries (a caller that makes one call at
// a time, a test); without a budget, MaxAttempts multiplies the load on a
// failing dependency.
func UnlimitedBudget() *Budget { return &Budget{unlimited: true} }

func (b *Budget) register(c *counter) {
	if b.unlimited {
		return
	}
	b.mu.Lock()
	b.sources = append(b.sources, c)
	b.mu.Unlock()
}

func (b *Budget) unregister(c *counter) {
	if b.unlimited {
		return
	}
	b.mu.Lock()
	if i := slices.Index(b.sources, c); i >= 0 {
		b.retired += c.Load()
		b.sources = slices.Delete(b.sources, i, i+1)
	}
	b.mu.Unlock()
}

// withdraw takes one token for a retry or a hedge; it reports false, and
// takes nothing, when the budget is exhausted.
func (b *Budget) withdraw() bool {
	if b.unlimited {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Nanotime()
	b.collect(now)
	cur := now / b.slot
	var deposits, withdrawals float64
	for i := range b.slots {
		s := &b.slots[i]
		if s.epoch > cur-budgetSlots && s.epoch <= cur {
			deposits += s.deposits
			withdrawals += s.withdrawals
		}
	}
	if withdrawals+1 > b.ratio*deposits+b.floor {
		return false
	}
	b.at(cur).withdrawals++
	return true
}

// at returns the slot for slot number n, zeroing it if it held an older
// slot.
func (b *Budget) at(n int64) *budgetSlot {
	s := &b.slots[int(uint64(n)%budgetSlots)]
	if s.epoch != n {
		*s = budgetSlot{epoch: n}
	}
	return s
}

// collect credits the calls made since the last reading, spread evenly
// over the time elapsed since then; only the part that falls within the
// window is kept.
func (b *Budget) collect(now int64) {
	total := b.retired
	for _, c := range b.sources {
		total += c.Load()
	}
	delta := float64(total - b.lastTotal)
	from, elapsed := b.lastNano, now-b.lastNano
	b.lastTotal, b.lastNano = total, now
	if delta == 0 {
		return
	}
	if elapsed <= 0 {
		b.at(now / b.slot).deposits += delta
		return
	}
	// Only the slots still in the ring count (the window's start is
	// rounded up to a slot boundary).
	if lo := (now/b.slot - budgetSlots + 1) * b.slot; from < lo {
		from = lo
	}
	for n := from / b.slot; n <= now/b.slot; n++ {
		lo, hi := max(from, n*b.slot), min(now, (n+1)*b.slot)
		if hi > lo {
			b.at(n).deposits += delta * float64(hi-lo) / float64(elapsed)
		}
	}
}
