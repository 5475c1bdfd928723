package idempotency

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// Store keeps idempotency records: a claim while the first request with a
// key runs, then the response to replay. Implementations are safe for
// concurrent use, and each operation on one key is atomic: of two
// concurrent Claims of a free key, exactly one gets [Claimed].
//
// Keys are opaque, fixed-size strings (see [StoreKey]). Every operation
// runs under ctx, which carries the Keeper's StoreTimeout.
//
// This package has a [MemoryStore]; package idempotency/redisstore has a
// Redis one. The conformance suite in this package's tests runs against
// both.
type Store interface {
	// Claim claims key for a request whose payload has the given
	// fingerprint, for lease, if the key is free (never used, expired, or
	// released). Otherwise it reports the key's state: InProgress with the
	// claimant's fingerprint, or Completed with the record.
	Claim(ctx context.Context, key, fingerprint string, lease time.Duration) (Claim, error)
	// Renew extends the claim held by token to lease from now. It returns
	// ErrLostClaim if token no longer holds the key.
	Renew(ctx context.Context, key, token string, lease time.Duration) error
	// Complete replaces the claim held by token with rec, kept for
	// retention. It returns ErrLostClaim if token no longer holds the key.
	Complete(ctx context.Context, key, token string, rec *Record, retention time.Duration) error
	// Release drops the claim held by token, so the next request with the
	// key runs. It returns ErrLostClaim if token no longer holds the key.
	Release(ctx context.Context, key, token string) error
}

// ClaimState is what [Store.Claim] found.
type ClaimState uint8

// The claim states.
const (
	// Claimed: the key was free and is now held by Claim.Token.
	Claimed ClaimState = iota + 1
	// InProgress: another request holds the key.
	InProgress
	// Completed: the key has a stored record.
	Completed
)

// String returns "claimed", "in-progress" or "completed".
func (s ClaimState) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case InProgress:
		return "in-progress"
	case Completed:
		return "completed"
	}
	return "unknown"
}

// Claim is the result of [Store.Claim].
type Claim struct {
	// State is what Claim found or did.
	State ClaimState
	// Token identifies the claim (State Claimed): pass it to Renew,
	// Complete and Release.
	Token string
	// Fingerprint is the fingerprint of the request that holds or
	// completed the key (InProgress, Completed).
	Fingerprint string
	// Record is the stored response (Completed).
	Record *Record
}

// Record is a stored response.
type Record struct {
	// Fingerprint is the fingerprint of the request that produced it.
	Fingerprint string
	// Status is the HTTP status code (or, for gRPC, the status code).
	Status int
	// Header holds the replayed headers (or gRPC metadata).
	Header http.Header
	// Body is the response body (or the marshalled gRPC reply).
	Body []byte
}

// Bounds on a decoded record, so that a corrupt or hostile stored value
// cannot make the decoder allocate without limit.
const (
	maxRecordHeaders = 1 << 10
	maxRecordValues  = 1 << 10
	maxRecordField   = MaxMaxResponseBytes
)

const recordVersion = 1

var errBadRecord = errors.New("idempotency: corrupt stored record")

// MarshalRecord encodes rec for a store that keeps bytes (Redis). The
// format is versioned and length-prefixed.
func MarshalRecord(rec *Record) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(rec.Fingerprint) + len(rec.Body)
	for k, vs := range rec.Header {
		n += 2*binary.MaxVarintLen64 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(rec.Status))
	b = appendBytes(b, rec.Fingerprint)
	b = binary.AppendUvarint(b, uint64(len(rec.Header)))
	for k, vs := range rec.Header {
		b = appendBytes(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendBytes(b, v)
		}
	}
	b = appendBytes(b, string(rec.Body))
	return b
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalRecord decodes what MarshalRecord encoded. It returns an error,
// never panics, on any malformed input.
func UnmarshalRecord(b []byte) (*Record, error) {
	d := decoder{b: b}
	if v := d.byte(); v != recordVersion {
		return nil, errBadRecord
	}
	rec := &Record{}
	status := d.uvarint(999)
	rec.Status = int(status)
	rec.Fingerprint = d.str()
	nh := d.uvarint(maxRecordHeaders)
	if nh > 0 {
		rec.Header = make(http.Header, nh)
	}
	for i := uint64(0); i < nh && d.err == nil; i++ {
		k := d.str()
		nv := d.uvarint(maxRecordValues)
		vs := make([]string, 0, min(nv, 16))
		for j := uint64(0); j < nv && d.err == nil; j++ {
			vs = append(vs, d.str())
		}
		rec.Header[k] = vs
	}
	body := d.str()
	if body != "" {
		rec.Body = []byte(body)
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errBadRecord
	}
	return rec, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errBadRecord
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > max {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint(maxRecordField)
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = errBadRecord
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
