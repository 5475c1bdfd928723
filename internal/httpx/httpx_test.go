package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recording is the smallest middleware built on Recorder; the conformance
// suite checks that it hides nothing from the handler.
type counter struct{ succ, fail atomic.Int64 }

func recording(counts *counter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := NewRecorder(w)
			done := false
			defer func() {
				if !done {
					counts.fail.Add(1)
				}
			}()
			next.ServeHTTP(rec.Writer(), r)
			done = true
			switch ServerOutcome(r, rec.Status(), w.Header(), nil) {
			case bulwark.Success:
				counts.succ.Add(1)
			case bulwark.Failure:
				counts.fail.Add(1)
			}
		})
	}
}

func TestRecorderConformance(t *testing.T) {
	var c *counter
	conformance.Handler(t, conformance.Server{
		Wrap: func(next http.Handler) http.Handler { c = new(counter); return recording(c)(next) },
		Counts: func() conformance.Counts {
			return conformance.Counts{Successes: c.succ.Load(), Failures: c.fail.Load()}
		},
	})
}

func TestRecorderStatus(t *testing.T) {
	cases := []struct {
		name string
		h    func(w http.ResponseWriter)
		want int
	}{
		{"nothing written", func(http.ResponseWriter) {}, 0},
		{"body only", func(w http.ResponseWriter) { io.WriteString(w, "x") }, 200},
		{"explicit 503", func(w http.ResponseWriter) { w.WriteHeader(503); w.WriteHeader(200) }, 503},
		{"early hints then 500", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(500) }, 500},
		{"flush only", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 200},
		{"ReadFrom", func(w http.ResponseWriter) { w.(io.ReaderFrom).ReadFrom(strings.NewReader("x")) }, 200},
	}
	for _, c := range cases {
		rec := NewRecorder(httptest.NewRecorder())
		c.h(rec.Writer())
		if rec.Status() != c.want {
			t.Errorf("%s: Status() = %d, want %d", c.name, rec.Status(), c.want)
		}
	}
}

func TestWriterIsHijackerOnlyWhenUnderlyingIs(t *testing.T) {
	rec := NewRecorder(httptest.NewRecorder()) // not a Hijacker
	if _, ok := rec.Writer().(http.Hijacker); ok {
		t.Fatal("Writer() claims http.Hijacker over a writer that has none")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = rec.Writer() }); allocs != 0 {
		t.Fatalf("Writer() allocates %v times", allocs)
	}
}

func TestServerOutcome(t *testing.T) {
	live := httptest.NewRequest("GET", "/", nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("client left"))
	gone := live.WithContext(ctx)
	cases := []struct {
		r    *http.Request
		code int
		want bulwark.Outcome
	}{
		{live, 0, bulwark.Success},
		{live, 200, bulwark.Success},
		{live, 404, bulwark.Success},
		{live, 501, bulwark.Success},
		{live, 503, bulwark.Failure},
		{live, 429, bulwark.Failure},
		{gone, 200, bulwark.Neutral},
		{gone, 503, bulwark.Failure},
	}
	for _, c := range cases {
		if got := ServerOutcome(c.r, c.code, nil, nil); got != c.want {
			t.Errorf("ServerOutcome(%d, ctx err %v) = %v, want %v", c.code, c.r.Context().Err(), got, c.want)
		}
	}
	custom := func(ctx context.Context, resp *http.Response, err error) bulwark.Outcome {
		if resp.StatusCode == 429 && resp.Header.Get("X-Upstream") == "1" {
			return bulwark.Neutral
		}
		return bulwark.Failure
	}
	if got := ServerOutcome(live, 429, http.Header{"X-Upstream": {"1"}}, custom); got != bulwark.Neutral {
		t.Errorf("custom classifier: got %v, want neutral", got)
	}
}

func TestSetRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "", -time.Second: "", time.Nanosecond: "1", time.Second: "1",
		1500 * time.Millisecond: "2", time.Minute: "60",
	} {
		h := http.Header{}
		SetRetryAfter(h, d)
		if got := h.Get("Retry-After"); got != want {
			t.Errorf("SetRetryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

type trackBody struct {
	io.Reader
	closed bool
	read   int64
}

func (b *trackBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.read += int64(n)
	return n, err
}
func (b *trackBody) Close() error { b.closed = true; return nil }

func TestDrainCloseBoundsTheRead(t *testing.T) {
	b := &trackBody{Reader: strings.NewReader(strings.Repeat("x", 3*MaxDrain))}
	DrainClose(&http.Response{Body: b})
	if !b.closed || b.read != MaxDrain {
		t.Fatalf("closed=%v read=%d, want closed after reading %d bytes", b.closed, b.read, MaxDrain)
	}
	DrainClose(nil)
	DrainClose(&http.Response{})
}

// TestDrainCloseDoesNotReadAnUpgradedConnection: a 101 response's body is
// the upgraded connection; reading it to drain it would wait for the peer
// (forever, if the peer waits for us: a hedge's losing upgrade once hung
// the retry tests). DrainClose closes it without a read.
func TestDrainCloseDoesNotReadAnUpgradedConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ours, peer := net.Pipe()
		defer peer.Close()
		done := make(chan struct{})
		go func() {
			DrainClose(&http.Response{StatusCode: http.StatusSwitchingProtocols, Body: ours})
			close(done)
		}()
		synctest.Wait()
		select {
		case <-done:
		default:
			ours.Close() // let the blocked read return, so the bubble can end
			<-done
			t.Fatal("DrainClose read a 101 response's body, the upgraded connection, and waited for the peer")
		}
		if _, err := peer.Write([]byte("x")); err == nil {
			t.Fatal("the upgraded connection is still open after DrainClose")
		}
	})
}

func TestCancelOnClose(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := &trackBody{Reader: strings.NewReader("x")}
	resp := &http.Response{Body: b}
	CancelOnClose(resp, cancel)
	if ctx.Err() != nil {
		t.Fatal("cancelled before Close")
	}
	resp.Body.Close()
	if ctx.Err() == nil || !b.closed {
		t.Fatal("Close did not close the body and cancel the attempt")
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	CancelOnClose(nil, cancel2)
	if ctx2.Err() == nil {
		t.Fatal("a nil response did not cancel at once")
	}
}

// TestHeaderWith pins HeaderWith's promises: the copy has every other
// key's values and the key's new ones, in place of any spelling of the key
// in h; Set, Add, Del or an append on the copy never reaches h or another
// key's values; and it costs its map alone, less than http.Header.Clone.
func TestHeaderWith(t *testing.T) {
	h := http.Header{"X-A": {"1", "2"}, "X-B": {"3"}, "X-Nil": nil, "X-Empty": {}, "idempotency-key": {"lower"}}
	before := h.Clone()
	out := HeaderWith(h, "Idempotency-Key", []string{"k1"})
	if got := out["Idempotency-Key"]; len(got) != 1 || got[0] != "k1" {
		t.Fatalf("key %q, want [k1]", got)
	}
	if _, ok := out["idempotency-key"]; ok {
		t.Fatalf("another spelling of the key was kept: %v", out)
	}
	delete(out, "Idempotency-Key")
	want := before.Clone()
	delete(want, "idempotency-key")
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("copy %v, want %v", out, want)
	}
	out = HeaderWith(h, "Idempotency-Key", []string{"k1"})
	out["X-A"] = append(out["X-A"], "appended")
	out.Add("X-B", "added")
	out.Set("X-Empty", "set")
	out.Del("X-Nil")
	if !reflect.DeepEqual(h, before) {
		t.Fatalf("caller's header changed to %v", h)
	}
	if fmt.Sprint(out["X-A"], out["X-B"], out["Idempotency-Key"]) != "[1 2 appended] [3 added] [k1]" {
		t.Fatalf("an append overwrote another key's values: %v", out)
	}
	ref := testing.AllocsPerRun(100, func() { headerSink = h.Clone() })
	vs := []string{"k1"}
	mapOnly := testing.AllocsPerRun(100, func() {
		m := make(http.Header, len(h)+1)
		for k, v := range h {
			m[k] = v
		}
		headerSink = m
	})
	n := testing.AllocsPerRun(100, func() { headerSink = HeaderWith(h, "Idempotency-Key", vs) })
	if n != mapOnly || n >= ref {
		t.Errorf("%v allocations, want the map's alone, %v (http.Header.Clone: %v)", n, mapOnly, ref)
	}
}

var headerSink http.Header

// TestIsToken: RFC 9110's token, checked against its definition, visible
// ASCII but the delimiters, byte by byte.
func TestIsToken(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c > ' ' && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
		if got := IsTchar(byte(c)); got != want {
			t.Errorf("IsTchar(%#x) = %v, want %v", c, got, want)
		}
	}
	for s, want := range map[string]bool{"": false, "Request-Timeout-Ms": true, "X_a.b~1": true, "a b": false, "a:b": false, "é": false} {
		if got := IsToken(s); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", s, got, want)
		}
	}
}
