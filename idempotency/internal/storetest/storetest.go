// Package storetest is the conformance suite every idempotency.Store
// runs: the memory store in package idempotency's tests, the Redis store
// (on miniredis, a real server and a Cluster) in redisstore's.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/idempotency"
)

// Subject is a store under test.
type Subject struct {
	// New returns an empty store for one subtest.
	New func(t *testing.T) idempotency.Store
	// Advance, if set, moves the store's time forward by d, so leases and
	// retention expire without waiting. Without it the expiry checks are
	// skipped.
	Advance func(t *testing.T, d time.Duration)
}

// Run runs the suite.
func Run(t *testing.T, s Subject) {
	ctx := context.Background()
	const lease = 10 * time.Second

	t.Run("ClaimOnceThenInProgress", func(t *testing.T) {
		st := s.New(t)
		c, err := st.Claim(ctx, "k1", "fp1", lease)
		if err != nil || c.State != idempotency.Claimed || c.Token == "" {
			t.Fatalf("first Claim = %+v, %v; want Claimed with a token", c, err)
		}
		c2, err := st.Claim(ctx, "k1", "fp2", lease)
		if err != nil || c2.State != idempotency.InProgress || c2.Fingerprint != "fp1" {
			t.Fatalf("second Claim = %+v, %v; want InProgress with the first fingerprint", c2, err)
		}
		if c3, err := st.Claim(ctx, "k2", "fp1", lease); err != nil || c3.State != idempotency.Claimed {
			t.Fatalf("Claim of another key = %+v, %v; want Claimed", c3, err)
		}
	})

	t.Run("CompleteThenReplay", func(t *testing.T) {
		st := s.New(t)
		c, _ := st.Claim(ctx, "k", "fp", lease)
		rec := &idempotency.Record{
			Fingerprint: "fp",
			Status:      201,
			Header:      http.Header{"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}},
			Body:        []byte("{\"id\":42}\x00\xff"),
		}
		if err := st.Complete(ctx, "k", c.Token, rec, time.Hour); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		got, err := st.Claim(ctx, "k", "fp", lease)
		if err != nil || got.State != idempotency.Completed || got.Fingerprint != "fp" || got.Record == nil {
			t.Fatalf("Claim after Complete = %+v, %v; want Completed with the record", got, err)
		}
		if got.Record.Status != 201 || !bytes.Equal(got.Record.Body, rec.Body) || !reflect.DeepEqual(got.Record.Header, rec.Header) {
			t.Fatalf("stored record = %+v, want %+v", got.Record, rec)
		}
		if err := st.Complete(ctx, "k", c.Token, rec, time.Hour); !errors.Is(err, idempotency.ErrLostClaim) {
			t.Fatalf("second Complete = %v, want ErrLostClaim", err)
		}
		if err := st.Release(ctx, "k", c.Token); !errors.Is(err, idempotency.ErrLostClaim) {
			t.Fatalf("Release of a completed key = %v, want ErrLostClaim (the record must survive)", err)
		}
		if again, _ := st.Claim(ctx, "k", "fp", lease); again.State != idempotency.Completed {
			t.Fatalf("record lost after a stray Release: %+v", again)
		}
	})

	t.Run("EmptyRecord", func(t *testing.T) {
		st := s.New(t)
		c, _ := st.Claim(ctx, "k", "", lease)
		if err := st.Complete(ctx, "k", c.Token, &idempotency.Record{Status: 204}, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := st.Claim(ctx, "k", "", lease)
		if err != nil || got.State != idempotency.Completed || got.Record.Status != 204 || len(got.Record.Body) != 0 || len(got.Record.Header) != 0 {
			t.Fatalf("Claim = %+v, %v; want the empty 204 record", got, err)
		}
	})

	t.Run("ReleaseFreesTheKey", func(t *testing.T) {
		st := s.New(t)
		c, _ := st.Claim(ctx, "k", "fp", lease)
		if err := st.Release(ctx, "k", "not-the-token"); !errors.Is(err, idempotency.ErrLostClaim) {
			t.Fatalf("Release with a wrong token = %v, want ErrLostClaim", err)
		}
		if again, _ := st.Claim(ctx, "k", "fp", lease); again.State != idempotency.InProgress {
			t.Fatalf("a wrong-token Release freed the key: %+v", again)
		}
		if err := st.Release(ctx, "k", c.Token); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if again, _ := st.Claim(ctx, "k", "fp", lease); again.State != idempotency.Claimed || again.Token == c.Token {
			t.Fatalf("Claim after Release = %+v, want a new claim", again)
		}
	})

	t.Run("WrongTokenCannotRenewOrComplete", func(t *testing.T) {
		st := s.New(t)
		st.Claim(ctx, "k", "fp", lease)
		if err := st.Renew(ctx, "k", "bogus", lease); !errors.Is(err, idempotency.ErrLostClaim) {
			t.Fatalf("Renew with a wrong token = %v, want ErrLostClaim", err)
		}
		if err := st.Complete(ctx, "k", "bogus", &idempotency.Record{Status: 200}, time.Hour); !errors.Is(err, idempotency.ErrLostClaim) {
			t.Fatalf("Complete with a wrong token = %v, want ErrLostClaim", err)
		}
		if err := st.Renew(ctx, "missing", "bogus", lease); !errors.Is(err, idempotency.ErrLostClaim) {
			t.Fatalf("Renew of a missing key = %v, want ErrLostClaim", err)
		}
	})

	t.Run("ConcurrentClaimsOneWinner", func(t *testing.T) {
		st := s.New(t)
		var wins, progress atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := st.Claim(ctx, "hot", "fp", lease)
				switch {
				case err != nil:
					t.Error(err)
				case c.State == idempotency.Claimed:
					wins.Add(1)
				case c.State == idempotency.InProgress:
					progress.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || progress.Load() != 49 {
			t.Fatalf("50 concurrent Claims: %d claimed, %d in progress; want 1 and 49", wins.Load(), progress.Load())
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		st := s.New(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := st.Claim(cctx, "k", "fp", lease); err == nil {
			t.Fatal("Claim with a cancelled context succeeded")
		}
	})

	t.Run("LeaseExpiry", func(t *testing.T) {
		if s.Advance == nil {
			t.Skip("the store's time cannot be moved")
		}
		st := s.New(t)
		c, _ := st.Claim(ctx, "k", "fp", lease)
		s.Advance(t, lease/2)
		if err := st.Renew(ctx, "k", c.Token, lease); err != nil {
			t.Fatalf("Renew within the lease: %v", err)
		}
		s.Advance(t, lease*3/4)
		if again, _ := st.Claim(ctx, "k", "fp", lease); again.State != idempotency.InProgress {
			t.Fatalf("a renewed claim expired early: %+v", again)
		}
		s.Advance(t, lease)
		again, err := st.Claim(ctx, "k", "fp2", lease)
		if err != nil || again.State != idempotency.Claimed {
			t.Fatalf("Claim after the lease expired = %+v, %v; want Claimed", again, err)
		}
		if err := st.Complete(ctx, "k", c.Token, &idempotency.Record{Status: 200}, time.Hour); !errors.Is(err, idempotency.ErrLostClaim) {
			t.Fatalf("the expired claimant completed over the new claim: %v", err)
		}
	})

	t.Run("RetentionExpiry", func(t *testing.T) {
		if s.Advance == nil {
			t.Skip("the store's time cannot be moved")
		}
		st := s.New(t)
		c, _ := st.Claim(ctx, "k", "fp", lease)
		st.Complete(ctx, "k", c.Token, &idempotency.Record{Status: 200}, time.Minute)
		s.Advance(t, 59*time.Second)
		if got, _ := st.Claim(ctx, "k", "fp", lease); got.State != idempotency.Completed {
			t.Fatalf("record gone before its retention: %+v", got)
		}
		s.Advance(t, 2*time.Second)
		if got, _ := st.Claim(ctx, "k", "fp", lease); got.State != idempotency.Claimed {
			t.Fatalf("record kept past its retention: %+v", got)
		}
	})

	t.Run("ManyKeys", func(t *testing.T) {
		st := s.New(t)
		for i := range 100 {
			k := fmt.Sprintf("key-%d", i)
			c, err := st.Claim(ctx, k, "fp", lease)
			if err != nil || c.State != idempotency.Claimed {
				t.Fatalf("Claim %s = %+v, %v", k, c, err)
			}
			if err := st.Complete(ctx, k, c.Token, &idempotency.Record{Status: 200 + i%3, Body: []byte(k)}, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 100 {
			k := fmt.Sprintf("key-%d", i)
			c, _ := st.Claim(ctx, k, "fp", lease)
			if c.State != idempotency.Completed || string(c.Record.Body) != k || c.Record.Status != 200+i%3 {
				t.Fatalf("record %s = %+v", k, c.Record)
			}
		}
	})
}
