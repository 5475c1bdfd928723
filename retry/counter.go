package retry

import "github.com/bulwark-go/bulwark/internal/stripe"

// counter is a striped event counter (internal/stripe): Add touches the
// cell of the current P, so goroutines on different cores do not fight over
// one cache line; Load sums the cells. It is what the success path pays for
// both the budget deposit and the attempts metric: one uncontended atomic
// add.
type counter struct{ c *stripe.Counter }

func newCounter() *counter { return &counter{c: stripe.NewCounter()} }

func (c *counter) Add(n uint64) { c.c.Add(int64(n)) }

func (c *counter) Load() uint64 { return uint64(c.c.Sum()) }
