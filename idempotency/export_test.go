package idempotency

import (
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// NewMemoryStoreForTest returns a MemoryStore on a fake clock and the
// function that advances it.
func NewMemoryStoreForTest(cfg MemoryConfig) (*MemoryStore, func(time.Duration)) {
	fk := clock.NewFake(time.Time{})
	cfg.clk = fk
	return NewMemoryStore(cfg), fk.Advance
}
