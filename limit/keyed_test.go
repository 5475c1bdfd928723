package limit

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestKeyedKeysAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := NewKeyed(KeyedConfig{Rate: RateConfig{Every: time.Second, Burst: 2}})
		defer k.Close()
		for _, key := range []string{"a", "b"} {
			if !k.Allow(key) || !k.Allow(key) {
				t.Fatalf("key %q: burst rejected", key)
			}
			if k.Allow(key) {
				t.Fatalf("key %q: admitted past its burst", key)
			}
		}
		if d := k.Decide(context.Background(), "a"); d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("Decide(a) = %+v, want rejected for 1s", d)
		}
		if k.Len() != 2 {
			t.Fatalf("Len = %d, want 2", k.Len())
		}
	})
}

func TestKeyedForgetsIdleKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := NewKeyed(KeyedConfig{Rate: RateConfig{Rate: 100}, IdleTimeout: time.Minute})
		defer k.Close()
		for i := range 100 {
			k.Allow(fmt.Sprint("idle-", i))
		}
		for range 3 { // "busy" stays in use across sweeps
			time.Sleep(time.Minute)
			k.Allow("busy")
			k.Allow(fmt.Sprint("new-", time.Now().Unix())) // an insert runs the sweep
		}
		if n := k.Len(); n > 3 {
			t.Fatalf("Len = %d after idle keys timed out, want at most 3 (busy and the newest)", n)
		}
	})
}

// A full set forgets only keys that owe nothing; keys still limited are
// kept, and newcomers share the overflow limiter instead.
func TestKeyedFullSetNeverForgetsALimitedKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := NewKeyed(KeyedConfig{Rate: RateConfig{Every: time.Hour, Burst: 1}, MaxKeys: 4, IdleTimeout: 24 * time.Hour})
		defer k.Close()
		for i := range 4 {
			if !k.Allow(fmt.Sprint("k", i)) {
				t.Fatal("first call of a key rejected")
			}
		}
		// Every tracked key is in debt for an hour: new keys go to the
		// one overflow limiter, which admits one call and then limits
		// the flood as one client.
		if !k.Allow("flood-1") {
			t.Fatal("the overflow limiter rejected its first call")
		}
		for i := range 100 {
			if k.Allow(fmt.Sprint("flood-", i+2)) {
				t.Fatal("the overflow limiter admitted a second call in its interval")
			}
		}
		for i := range 4 {
			if k.Allow(fmt.Sprint("k", i)) {
				t.Fatalf("key k%d was forgotten and admitted again within its interval", i)
			}
		}
		if k.Len() != 4 {
			t.Fatalf("Len = %d, want the bound 4", k.Len())
		}
		// Once the tracked keys owe nothing, a new key takes a place.
		time.Sleep(time.Hour + saturatedRecheck)
		if !k.Allow("late") || k.Len() != 4 {
			t.Fatalf("after the debts ran out, a new key was not tracked (Len %d)", k.Len())
		}
		if k.Allow("late") {
			t.Fatal("the new key was not limited by its own limiter")
		}
	})
}

func TestKeyedWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := NewKeyed(KeyedConfig{Rate: RateConfig{Every: time.Second, Burst: 1}})
		defer k.Close()
		ctx := context.Background()
		start := time.Now()
		for range 3 {
			if err := k.Wait(ctx, "x"); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("three Waits took %v, want 2s", d)
		}
	})
}
