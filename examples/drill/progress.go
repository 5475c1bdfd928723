package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress tells a person what the drill is doing while it runs. On a
// terminal it redraws one line every 100ms: a bar, the current phase,
// the time elapsed and an estimate of the time left. Anywhere else (CI
// logs, a pipe) it prints one line per finished phase, as the phase
// finishes. A nil *progress reports nothing.
//
// The estimate is by time, not by request count: in the latency-spike
// phase the bulwark client finishes in a second while the bare one waits
// out its deadline on a third of its requests, so counting requests would
// show the bar leaping to 60% and then creeping. A phase's time left is
// the larger of what its fault forces (phase.least) and what each
// client's own rate so far predicts; a phase yet to run is expected to
// take as long as the steady phase did, or what its fault forces.
type progress struct {
	w   io.Writer
	tty bool

	cfg      config
	perPhase int64 // requests per phase and client
	done     []atomic.Int64

	mu         sync.Mutex
	began      time.Time
	phase      int // current phase, -1 before the first
	phaseBegan time.Time
	took       []time.Duration
	shown      float64 // the bar's fraction: it never goes back
	stopTick   chan struct{}
	ticking    sync.WaitGroup
	stopped    bool
}

// newProgress reports to f, with a live bar if f is a terminal.
func newProgress(f *os.File) *progress {
	fi, err := f.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
	return &progress{w: f, tty: tty, phase: -1}
}

// start begins timing the drill; on a terminal it starts redrawing.
func (p *progress) start(cfg config, clients int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg, p.perPhase = cfg, int64(cfg.requests)
	p.done = make([]atomic.Int64, clients)
	p.began = time.Now()
	if p.tty {
		p.stopTick = make(chan struct{})
		p.ticking.Add(1)
		go p.tick()
	}
}

func (p *progress) tick() {
	defer p.ticking.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.mu.Lock()
			p.draw(time.Now())
			p.mu.Unlock()
		case <-p.stopTick:
			return
		}
	}
}

// step counts one finished request of client c.
func (p *progress) step(c int) {
	if p != nil {
		p.done[c].Add(1)
	}
}

func (p *progress) beginPhase(i int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.phaseBegan = i, time.Now()
	for c := range p.done {
		p.done[c].Store(0)
	}
	if p.tty {
		p.draw(p.phaseBegan)
	}
}

// endPhase records phase i's time and prints its line.
func (p *progress) endPhase(i int, row [2]stats) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	took := time.Since(p.phaseBegan)
	p.took = append(p.took, took)
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintf(p.w, "drill: phase %d/%d %-13s done in %-7s bare %s ok, bulwark %s ok\n",
		i+1, len(phases), phases[i].name, formatDuration(took)+",", formatRate(row[0].rate()), formatRate(row[1].rate()))
	switch {
	case i+1 == len(phases):
		fmt.Fprintln(p.w) // a blank line before the results
	case p.tty:
		p.draw(time.Now())
	}
}

// stop ends the redrawing and clears the bar. It may be called again.
func (p *progress) stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.stopped || p.stopTick == nil {
		p.stopped = true
		p.mu.Unlock()
		return
	}
	p.stopped = true
	close(p.stopTick)
	p.mu.Unlock()
	p.ticking.Wait()
	fmt.Fprint(p.w, "\r\x1b[K")
}

// draw redraws the terminal line; p.mu is held.
func (p *progress) draw(now time.Time) {
	if p.stopped || p.phase < 0 {
		return
	}
	elapsed := now.Sub(p.began)
	left := p.left(now)
	frac := 1.0
	if total := elapsed + left; total > 0 {
		frac = float64(elapsed) / float64(total)
	}
	p.shown = max(p.shown, min(frac, 0.99))
	// At most 72 columns, so that the line never wraps on an 80-column
	// terminal (a wrapped line cannot be redrawn with \r).
	const width = 20
	filled := int(p.shown * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %d/%d %-13s  %s elapsed, %s\x1b[K",
		strings.Repeat("#", filled), strings.Repeat(" ", width-filled), int(p.shown*100),
		p.phase+1, len(phases), phases[p.phase].name, formatSeconds(elapsed), leftText(left))
}

// left estimates the time the drill has still to run; p.mu is held.
func (p *progress) left(now time.Time) time.Duration {
	t := now.Sub(p.phaseBegan)
	least := func(i int) time.Duration {
		if phases[i].least == nil {
			return 0
		}
		return phases[i].least(p.cfg)
	}
	// The current phase: the slowest client by its own rate, but no less
	// than what the fault forces. A rate is trusted once a tenth of the
	// client's requests are done: before that, in the latency spike, it
	// counts only the fast requests each worker sent before it blocked.
	cur := max(least(p.phase)-t, 0)
	rateKnown := true
	for c := range p.done {
		d := p.done[c].Load()
		if d == 0 || d < p.perPhase/10 {
			rateKnown = false
			continue
		}
		cur = max(cur, time.Duration(float64(t)*float64(p.perPhase-d)/float64(d)))
	}
	// The phases to come.
	base := time.Duration(0)
	switch {
	case len(p.took) > 0:
		base = p.took[0]
	case rateKnown:
		base = t + cur
	default:
		base = 500 * time.Millisecond
	}
	rest := time.Duration(0)
	for i := p.phase + 1; i < len(phases); i++ {
		rest += max(base, least(i))
	}
	return cur + rest
}

// formatSeconds writes an elapsed time to a tenth of a second, so that
// the progress line does not jitter between units.
func formatSeconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func leftText(d time.Duration) string {
	if d < time.Second {
		return "<1s left"
	}
	return fmt.Sprintf("~%ds left", int(math.Ceil(d.Seconds())))
}
