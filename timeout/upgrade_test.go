package timeout

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/conformance"
)

// A 101 Switching Protocols response's body is an io.ReadWriteCloser (the
// upgraded connection); the RoundTripper's body wrappers must keep Write.
func TestRoundTripperKeepsUpgradedBodyWritable(t *testing.T) {
	srv := httptest.NewServer(conformance.UpgradeEcho(t))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := (&http.Client{Transport: mk(t, Config{Timeout: 10 * time.Second}).RoundTripper(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("status %d: body %T is not an io.ReadWriteCloser", resp.StatusCode, resp.Body)
	}
	io.WriteString(rw, "hello\n")
	if got, _ := bufio.NewReader(rw).ReadString('\n'); got != "hello\n" {
		t.Fatalf("echo = %q", got)
	}
}
