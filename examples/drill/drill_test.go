package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDrill runs a small drill end to end over real loopback servers and
// checks what the demo claims: with an instance down, the bare client loses
// exactly the requests sent to it, and bulwark's client loses fewer.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers for a few seconds")
	}
	var out bytes.Buffer
	report := filepath.Join(t.TempDir(), "report.html")
	rows, err := run(&out, config{requests: 30, concurrency: 3, deadline: time.Second}, report)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(phases) {
		t.Fatalf("%d rows for %d phases", len(rows), len(phases))
	}
	steady, down := rows[0], rows[1]
	// Real servers on a shared machine: allow a slow request or two in the
	// healthy phase, but not the loss of a whole instance.
	if steady[0].ok < 27 || steady[1].ok < 27 {
		t.Errorf("steady phase: bare %d, bulwark %d of 30 ok", steady[0].ok, steady[1].ok)
	}
	if down[0].ok > 20 {
		t.Errorf("instance down: bare %d of 30 ok, want at most 20 (round-robin over 3, one refusing)", down[0].ok)
	}
	if down[1].ok <= down[0].ok {
		t.Errorf("instance down: bulwark %d ok, not better than bare %d", down[1].ok, down[0].ok)
	}
	for _, ph := range phases {
		if !strings.Contains(out.String(), ph.name) {
			t.Errorf("output lacks phase %q:\n%s", ph.name, out.String())
		}
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(html, []byte("<svg")) || !bytes.Contains(html, []byte("instance down")) {
		t.Errorf("report lacks its charts or phases")
	}
}
