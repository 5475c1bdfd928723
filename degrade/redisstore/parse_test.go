package redisstore

import (
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/degrade"
)

func TestParseMessage(t *testing.T) {
	for in, want := range map[string]struct {
		name   string
		on, ok bool
	}{
		"1:search": {"search", true, true}, "0:a:b": {"a:b", false, true},
		"2:x": {}, "1:": {}, "search": {}, "": {}, "1:" + strings.Repeat("n", degrade.MaxSwitchName+1): {},
	} {
		name, on, ok := parseMessage(in)
		if name != want.name || on != want.on || ok != want.ok {
			t.Errorf("%q: %q %v %v", in, name, on, ok)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"1:search", "0:x", ":", "1:", "\xff:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, on, ok := parseMessage(s)
		if !ok {
			return
		}
		if name == "" || len(name) > degrade.MaxSwitchName || s != encode(on)+":"+name {
			t.Fatalf("%q parsed as %q %v", s, name, on)
		}
	})
}
