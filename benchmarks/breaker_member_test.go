package benchmarks

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/bulwark-go/bulwark/breaker"
)

// BenchmarkBreakerSetMember measures what one key costs a breaker.Set with
// the default Config and the global (no-op) meter provider: ns/op is the
// time to create a member (Get of a new key, the set's copy-on-write shard
// included), and B/member the heap the set retains per member after a GC,
// measured over sets of memberRound keys. Run it with -cpu=1,2,4,8 to see
// how a member grows with GOMAXPROCS (its per-P counter cells).
func BenchmarkBreakerSetMember(b *testing.B) {
	const memberRound = 5000
	keys := make([]string, memberRound)
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(i)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var retained, measured float64
	round := func(n int, measure bool) {
		var before uint64
		if measure {
			b.StopTimer()
			before = heap()
			b.StartTimer()
		}
		s := breaker.NewSet(breaker.SetConfig{})
		for _, k := range keys[:n] {
			s.Get(k)
		}
		if measure {
			b.StopTimer()
			if after := heap(); after > before {
				retained += float64(after - before)
			}
			measured += float64(n)
			b.StartTimer()
		}
		runtime.KeepAlive(s)
		s.Close()
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i += memberRound {
		n := min(memberRound, b.N-i)
		round(n, n == memberRound)
	}
	if measured == 0 { // b.N below one round: measure one, untimed
		b.StopTimer()
		round(memberRound, true)
	}
	b.ReportMetric(retained/measured, "B/member")
}
