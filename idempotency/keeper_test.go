package idempotency_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

func ok(status int, body string) func(context.Context) (*idempotency.Record, error) {
	return func(context.Context) (*idempotency.Record, error) {
		return &idempotency.Record{Status: status, Body: []byte(body)}, nil
	}
}

// TestLeaseExpiresWhenTheClaimantDies: a claim whose instance died (never
// renewed, never completed) frees the key after Lease, so a crashed
// request does not lock it for ever.
func TestLeaseExpiresWhenTheClaimantDies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
		defer st.Close()
		k := idempotency.New(idempotency.Config{Store: st, Lease: 10 * time.Second})
		defer k.Close()
		req := idempotency.Request{Key: "k", Fingerprint: "fp"}
		// The dead instance's claim: made, then abandoned.
		if c, err := st.Claim(t.Context(), idempotency.StoreKey("", "k"), "fp", 10*time.Second); err != nil || c.State != idempotency.Claimed {
			t.Fatal(c, err)
		}
		_, _, err := k.Do(t.Context(), req, ok(200, "x"))
		if !errors.Is(err, idempotency.ErrInProgress) {
			t.Fatalf("within the lease: %v, want ErrInProgress", err)
		}
		time.Sleep(10*time.Second + time.Millisecond)
		rec, replayed, err := k.Do(t.Context(), req, ok(200, "second"))
		if err != nil || replayed || string(rec.Body) != "second" {
			t.Fatalf("after the lease: %+v %v %v; want the request to run", rec, replayed, err)
		}
	})
}

// TestLeaseRenewedWhileRunning: a request that runs for many leases keeps
// its claim: a duplicate meanwhile is in progress, never run.
func TestLeaseRenewedWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := idempotency.New(idempotency.Config{Lease: 3 * time.Second})
		defer k.Close()
		req := idempotency.Request{Key: "k"}
		var runs atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			k.Do(t.Context(), req, func(context.Context) (*idempotency.Record, error) {
				runs.Add(1)
				time.Sleep(time.Minute) // twenty leases
				return &idempotency.Record{Status: 200}, nil
			})
		}()
		for range 10 {
			time.Sleep(5 * time.Second)
			_, _, err := k.Do(t.Context(), req, ok(200, "dup"))
			if !errors.Is(err, idempotency.ErrInProgress) {
				t.Fatalf("duplicate during a long request: %v, want ErrInProgress", err)
			}
		}
		<-done
		if runs.Load() != 1 {
			t.Fatalf("runs = %d", runs.Load())
		}
	})
}

func TestWaitGivesUpAt409(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := idempotency.New(idempotency.Config{Wait: 2 * time.Second})
		defer k.Close()
		req := idempotency.Request{Key: "k"}
		release := make(chan struct{})
		go k.Do(t.Context(), req, func(context.Context) (*idempotency.Record, error) {
			<-release
			return &idempotency.Record{Status: 200}, nil
		})
		synctest.Wait()
		start := time.Now()
		_, _, err := k.Do(t.Context(), req, ok(200, "dup"))
		var ip *idempotency.InProgressError
		if !errors.As(err, &ip) || ip.RetryAfter() != time.Second || time.Since(start) != 2*time.Second {
			t.Fatalf("err %v after %v; want an InProgressError after exactly Wait (2s)", err, time.Since(start))
		}
		close(release)
	})
}

func TestDoErrorsAndNilRecordRelease(t *testing.T) {
	k := idempotency.New(idempotency.Config{})
	defer k.Close()
	req := idempotency.Request{Key: "k"}
	boom := errors.New("boom")
	if _, _, err := k.Do(t.Context(), req, func(context.Context) (*idempotency.Record, error) { return nil, boom }); err != boom {
		t.Fatalf("fn's error = %v, want it returned as is", err)
	}
	if _, _, err := k.Do(t.Context(), req, func(context.Context) (*idempotency.Record, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	rec, replayed, err := k.Do(t.Context(), req, ok(200, "third"))
	if err != nil || replayed || string(rec.Body) != "third" {
		t.Fatalf("after an error and a nil record the key must be free: %+v %v %v", rec, replayed, err)
	}
}

func TestDoCancelledCallerIsNotAStoreError(t *testing.T) {
	k := idempotency.New(idempotency.Config{})
	defer k.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	gone := errors.New("client went away")
	cancel(gone)
	_, _, err := k.Do(ctx, idempotency.Request{Key: "k"}, ok(200, "x"))
	if !errors.Is(err, gone) || errors.Is(err, idempotency.ErrStoreUnavailable) {
		t.Fatalf("Do with a cancelled ctx = %v, want the caller's cause, not ErrStoreUnavailable", err)
	}
}

func TestDoNilArgumentsPanic(t *testing.T) {
	k := idempotency.New(idempotency.Config{})
	defer k.Close()
	for name, f := range map[string]func(){
		"nil ctx": func() { k.Do(nil, idempotency.Request{}, ok(200, "")) }, //nolint:staticcheck
		"nil fn":  func() { k.Do(context.Background(), idempotency.Request{}, nil) },
	} {
		func() {
			defer func() {
				if p := recover(); p == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestBadConfigFailsLoudly(t *testing.T) {
	bad := []idempotency.Config{
		{MaxKeyLength: -1}, {MaxKeyLength: math.MaxInt}, {MaxRequestBytes: math.MaxInt},
		{MaxResponseBytes: -5}, {Retention: -time.Second}, {Retention: 365 * 24 * time.Hour},
		{Lease: -1}, {Wait: time.Hour}, {Methods: []string{"post"}}, {Header: "Bad Header"},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig", c, err)
		}
		func() {
			defer func() {
				if p, _ := recover().(error); !errors.Is(p, bulwark.ErrInvalidConfig) {
					t.Errorf("New(%+v) did not panic with the ConfigError (got %v)", c, p)
				}
			}()
			idempotency.New(c)
		}()
	}
	if err := (idempotency.MemoryConfig{MaxKeys: math.MaxInt}).Validate(); err == nil {
		t.Error("MemoryConfig{MaxKeys: MaxInt} accepted")
	}
}

func TestInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	k := idempotency.New(idempotency.Config{MeterProvider: mp})
	defer k.Close()
	k.Do(t.Context(), idempotency.Request{Key: "k"}, ok(200, "x"))
	conformance.Instruments(t, reader)
	_ = http.StatusOK
}
