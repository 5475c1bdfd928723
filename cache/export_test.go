package cache

import "github.com/bulwark-go/bulwark/internal/clock"

// SetHTTPClock makes h read time from c (the HTTP tests run real servers,
// which a synctest bubble cannot hold, so they move a fake clock).
func SetHTTPClock(h *HTTP, c clock.Clock) { h.c.clk = c }

// WaitHTTP waits for h's background revalidations.
func WaitHTTP(h *HTTP) { h.c.wg.Wait() }
