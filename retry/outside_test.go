package retry_test

// Tests of package retry written from outside, against its docs, over real
// loopback servers.

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/retry"
)

// upgradeServer answers every request with 101 Switching Protocols and then
// echoes one line over the upgraded connection.
func upgradeServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString(line)
		brw.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkUpgrade sends an upgrade request through rt and talks over the
// upgraded connection: net/http makes a 101 response's body an
// io.ReadWriteCloser, which a RoundTripper must not hide.
func checkUpgrade(t *testing.T, rt http.RoundTripper, url string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("a 101 response's body is a %T, not an io.ReadWriteCloser: the upgraded connection cannot be written", resp.Body)
	}
	if _, err := io.WriteString(rw, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := bufio.NewReader(rw).ReadString('\n'); got != "hello\n" {
		t.Fatalf("echo over the upgraded connection = %q, want %q", got, "hello\n")
	}
}

func TestRoundTripperKeepsUpgradedBodyWritable(t *testing.T) {
	srv := upgradeServer(t)
	for name, cfg := range map[string]retry.Config{
		"plain":  {},
		"hedged": {Hedge: retry.HedgeConfig{Delay: time.Second}},
	} {
		t.Run(name, func(t *testing.T) {
			p := retry.New(cfg)
			defer p.Close()
			checkUpgrade(t, p.RoundTripper(nil), srv.URL)
		})
	}
}
