package lb

import (
	"math/rand/v2"
	"sync"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// NewSeeded is New with a seeded source of randomness, so that
// distribution tests are deterministic. Time is the real clock (package
// time), which testing/synctest fakes.
func NewSeeded(cfg Config, seed uint64) *Balancer {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	var mu sync.Mutex
	src := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return newBalancer(cfg, clock.Real, func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return src.Uint64()
	})
}
