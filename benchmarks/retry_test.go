package benchmarks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/bulwark-go/bulwark/retry"
)

// Success on the first attempt: what a retry layer costs on every call
// when nothing fails. Each library's policy object is built once, outside
// the loop, as a service would.
func BenchmarkRetryDoSuccess(b *testing.B) {
	ctx := context.Background()
	b.Run("bulwark", func(b *testing.B) {
		p := retry.New(retry.Config{})
		defer p.Close()
		fn := func(context.Context) error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := p.Do(ctx, fn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bulwark-parallel", func(b *testing.B) {
		p := retry.New(retry.Config{})
		defer p.Close()
		fn := func(context.Context) error { return nil }
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := p.Do(ctx, fn); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[any](retrypolicy.NewWithDefaults[any]())
		fn := func() (any, error) { return nil, nil }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ex.Get(fn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cenkalti-backoff", func(b *testing.B) {
		bo := backoff.NewExponentialBackOff()
		fn := func() error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := backoff.Retry(fn, bo); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// retryCannedTransport returns a canned 200 response without any I/O, so
// that a RoundTripper's own cost shows without network noise.
type retryCannedTransport struct{}

func (retryCannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req,
		Header: http.Header{}, ProtoMajor: 1, ProtoMinor: 1}, nil
}

func BenchmarkRetryRoundTripper(b *testing.B) {
	base := retryCannedTransport{}
	p := retry.New(retry.Config{})
	defer p.Close()
	rhc := retryablehttp.NewClient()
	rhc.HTTPClient = &http.Client{Transport: base}
	rhc.Logger = nil
	transports := []struct {
		name string
		rt   http.RoundTripper
	}{
		{"bare", base},
		{"bulwark", p.RoundTripper(base)},
		{"failsafehttp", failsafehttp.NewRoundTripper(base, failsafehttp.NewRetryPolicyBuilder().Build())},
		{"go-retryablehttp", &retryablehttp.RoundTripper{Client: rhc}},
	}
	for _, tc := range transports {
		b.Run(tc.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, "http://backend.test/items/1", nil)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tc.rt.RoundTrip(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

// A real server on 127.0.0.1: the retry layer should vanish in the cost
// of a round trip.
func BenchmarkRetryLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p := retry.New(retry.Config{})
	defer p.Close()
	tr := srv.Client().Transport.(*http.Transport)
	clients := []struct {
		name string
		c    *http.Client
	}{
		{"bare", &http.Client{Transport: tr}},
		{"bulwark", &http.Client{Transport: p.RoundTripper(tr)}},
	}
	for _, tc := range clients {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tc.c.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
	tr.CloseIdleConnections()
}

// A hedged call whose first attempt succeeds before the hedge delay: the
// cost of hedging's bookkeeping (a goroutine, a context and a timer per
// call) when it is not needed.
func BenchmarkRetryHedgedSuccess(b *testing.B) {
	ctx := context.Background()
	b.Run("bulwark", func(b *testing.B) {
		p := retry.New(retry.Config{Hedge: retry.HedgeConfig{Delay: time.Hour}})
		defer p.Close()
		fn := func(context.Context) error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := p.Do(ctx, fn); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// One failure, then success at once (zero backoff): the cost of the retry
// path itself.
func BenchmarkRetryOneRetry(b *testing.B) {
	ctx := context.Background()
	errOnce := errors.New("once")
	b.Run("bulwark", func(b *testing.B) {
		p := retry.New(retry.Config{Budget: retry.UnlimitedBudget(),
			NewBackOff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
		defer p.Close()
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			if err := p.Do(ctx, func(context.Context) error {
				if n++; n == 1 {
					return errOnce
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
