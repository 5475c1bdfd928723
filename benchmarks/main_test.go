package benchmarks

import (
	"testing"

	"github.com/zeromicro/go-zero/core/logx"
	"github.com/zeromicro/go-zero/core/stat"
	"go.uber.org/goleak"
)

// go-zero starts a resource-usage reporter when its packages load, which
// prints a JSON line every minute into the middle of benchmark output
// (breaking benchstat's parser). Silence it; its sampler keeps running for
// every benchmark alike.
func init() {
	stat.DisableLog()
	logx.Disable()
}

// TestMain checks that no goroutine outlives the tests, except the
// resource sampler and signal handler that go-zero starts at package load
// and never stops.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/zeromicro/go-zero/core/stat.init.1.func1"),
		goleak.IgnoreAnyFunction("github.com/zeromicro/go-zero/core/proc.init.1.func1"),
		// scs.New always starts a memory store's cleanup goroutine, and its
		// StopCleanup is a no-op until that goroutine has made its channel.
		goleak.IgnoreAnyFunction("github.com/alexedwards/scs/v2/memstore.(*MemStore).startCleanup"),
	)
}
