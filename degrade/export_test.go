package degrade

// setRand replaces the throttler's random source (tests use a seeded one).
func (t *Throttler) setRand(f func() float64) { t.rand = f }
