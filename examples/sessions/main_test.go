package main

import (
	"io"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the example as CI does, under the race detector and the
// leak check: it must succeed by itself and leave nothing running.
func TestRun(t *testing.T) {
	if err := run(io.Discard); err != nil {
		t.Fatal(err)
	}
}
