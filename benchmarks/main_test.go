package benchmarks

import (
	"github.com/zeromicro/go-zero/core/logx"
	"github.com/zeromicro/go-zero/core/stat"
)

// go-zero starts a resource-usage reporter when its packages load, which
// prints a JSON line every minute into the middle of benchmark output
// (breaking benchstat's parser). Silence it; its sampler keeps running for
// every benchmark alike.
func init() {
	stat.DisableLog()
	logx.Disable()
}
