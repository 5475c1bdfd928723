package idempotency_test

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/idempotency/internal/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	var advance func(time.Duration)
	storetest.Run(t, storetest.Subject{
		New: func(t *testing.T) idempotency.Store {
			st, adv := idempotency.NewMemoryStoreForTest(idempotency.MemoryConfig{})
			t.Cleanup(func() { st.Close() })
			advance = adv
			return st
		},
		Advance: func(t *testing.T, d time.Duration) { advance(d) },
	})
}

func TestMemoryStoreFull(t *testing.T) {
	st, advance := idempotency.NewMemoryStoreForTest(idempotency.MemoryConfig{MaxKeys: 2})
	defer st.Close()
	ctx := t.Context()
	st.Claim(ctx, "a", "", time.Second)
	st.Claim(ctx, "b", "", time.Second)
	if _, err := st.Claim(ctx, "c", "", time.Second); err != idempotency.ErrStoreFull {
		t.Fatalf("Claim past MaxKeys = %v, want ErrStoreFull", err)
	}
	if got, _ := st.Claim(ctx, "a", "", time.Second); got.State != idempotency.InProgress {
		t.Fatalf("a full store forgot a live claim: %+v", got)
	}
	advance(2 * time.Second)
	if got, err := st.Claim(ctx, "c", "", time.Second); err != nil || got.State != idempotency.Claimed {
		t.Fatalf("Claim once the others expired = %+v, %v; want Claimed (expired records swept)", got, err)
	}
	if st.Len() != 1 {
		t.Fatalf("Len = %d after the sweep, want 1", st.Len())
	}
}

func TestRecordRoundTrip(t *testing.T) {
	recs := []*idempotency.Record{
		{Status: 200},
		{Status: 201, Fingerprint: "abc", Header: http.Header{"A": {"1", "2"}, "B": {""}}, Body: []byte{0, 1, 2, 255}},
		{Status: 599, Body: bytes.Repeat([]byte("x"), 100_000)},
	}
	for _, r := range recs {
		got, err := idempotency.UnmarshalRecord(idempotency.MarshalRecord(r))
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(%+v)): %v", r, err)
		}
		if got.Status != r.Status || got.Fingerprint != r.Fingerprint || !bytes.Equal(got.Body, r.Body) ||
			(len(r.Header) > 0 || len(got.Header) > 0) && !reflect.DeepEqual(got.Header, r.Header) {
			t.Fatalf("round trip = %+v, want %+v", got, r)
		}
	}
	for _, bad := range [][]byte{nil, {}, {2}, {1}, {1, 200}, append(idempotency.MarshalRecord(recs[1]), 0)} {
		if _, err := idempotency.UnmarshalRecord(bad); err == nil {
			t.Errorf("UnmarshalRecord(%x) accepted a corrupt record", bad)
		}
	}
}

// FuzzUnmarshalRecord: a stored value, corrupt or hostile, never panics the
// decoder, and whatever it accepts encodes back to the same bytes' meaning.
func FuzzUnmarshalRecord(f *testing.F) {
	f.Add(idempotency.MarshalRecord(&idempotency.Record{Status: 200, Header: http.Header{"K": {"v"}}, Body: []byte("b")}))
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := idempotency.UnmarshalRecord(b)
		if err != nil {
			return
		}
		again, err := idempotency.UnmarshalRecord(idempotency.MarshalRecord(rec))
		if err != nil || again.Status != rec.Status || !bytes.Equal(again.Body, rec.Body) || again.Fingerprint != rec.Fingerprint {
			t.Fatalf("re-encoding an accepted record changed it: %+v vs %+v (%v)", rec, again, err)
		}
	})
}
