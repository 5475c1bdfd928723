package redistest_test

import (
	"fmt"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// Keys of one script must share a slot on Cluster: give them one hash tag.
// The test prefix carries none, so the package's tag decides.
func ExampleSlot() {
	prefix := "bwt:TestSession:9c1e:" // what Harness.Prefix looks like
	data, lock := prefix+"{sess:42}:data", prefix+"{sess:42}:lock"
	fmt.Println(redistest.Slot(data) == redistest.Slot(lock))
	fmt.Println(redistest.Slot(prefix+"sess:42:data") == redistest.Slot(prefix+"sess:42:lock"))
	fmt.Println(redistest.Slot("123456789"))
	// Output:
	// true
	// false
	// 12739
}
