package chaos

import (
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/internal/bridge"
)

func init() {
	bridge.ChaosPick = func(inj any, method, drill string) (time.Duration, uint8, string, int, bool) {
		i := inj.(*Injector)
		if !i.enabled.Load() {
			return 0, 0, "", 0, false
		}
		p, ok := i.pick(method, "", drill, false)
		return p.delay, uint8(p.action), p.name, p.grpc, ok
	}
	bridge.ChaosHeader = func(inj any) string { return strings.ToLower(inj.(*Injector).header) }
}
