package degrade

import (
	"context"
	"strings"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/clock"
)

func init() {
	bridge.DegradeCriticality = func(sh any, method, hdr string) uint8 {
		s := sh.(*Shedder)
		if c, ok := s.route(method); ok {
			return uint8(c)
		}
		if !s.cfg.IgnoreHeader {
			if c, ok := ParseCriticality(hdr); ok {
				return uint8(c)
			}
		}
		return uint8(Default)
	}
	bridge.DegradeHeader = func(sh any) string { return strings.ToLower(sh.(*Shedder).cfg.Header) }
	bridge.DegradeOnShed = func(sh any, ctx any, c uint8, err error) {
		sh.(*Shedder).onShed(ctx.(context.Context), Criticality(c), err)
	}
	bridge.DegradeSetClock = func(sh any, clk any) {
		s := sh.(*Shedder)
		s.clk = clk.(clock.Clock)
		s.cur.Store(s.clk.Nanotime() / s.bucketNs)
	}
	bridge.DegradeThrottleClassify = func(th any) bulwark.Classifier { return th.(*Throttler).cfg.Classify }
}
