package retry

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestHedgedUpgradeLoserDoesNotHang: when two hedged attempts of an
// upgrade request both get 101 Switching Protocols, the loser's body (its
// upgraded connection) is closed, not drained: draining read from a
// connection whose peer waited for a line, and the RoundTrip never
// returned (the conformance suite's UpgradedBodyWritable hung once under
// load, when its hedge fired). The server holds every 101 until both
// attempts have arrived, so that both get one.
func TestHedgedUpgradeLoserDoesNotHang(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(2)
	var once sync.Once
	both := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		go once.Do(func() { arrived.Wait(); close(both) })
		<-both
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n') // waits for the client: the loser's never comes
		brw.WriteString(line)
		brw.Flush()
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	p := New(Config{Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Millisecond, MaxInFlight: 2}})
	defer p.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := p.RoundTripper(tr).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("status %d, body %T: want 101 with the upgraded connection", resp.StatusCode, resp.Body)
	}
	io.WriteString(rw, "hello\n")
	if got, _ := bufio.NewReader(rw).ReadString('\n'); got != "hello\n" {
		t.Fatalf("echo over the winner's connection = %q", got)
	}
}
