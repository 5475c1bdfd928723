package breaker

import (
	"slices"
	"testing"
)

func TestSetAllListsMembers(t *testing.T) {
	s := NewSet(SetConfig{})
	defer s.Close()
	for _, k := range []string{"a", "b", "c"} {
		s.Get(k)
	}
	var keys []string
	for k, b := range s.All() {
		if b != s.Get(k) {
			t.Fatalf("All yielded a breaker for %q that Get does not return", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("All yielded %v, want [a b c]", keys)
	}
	n := 0
	for range s.All() {
		n++
		break
	}
	if n != 1 {
		t.Fatal("All kept yielding after the loop broke")
	}
}
