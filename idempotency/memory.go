package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// MemoryConfig configures a [MemoryStore]. The zero value is useful.
type MemoryConfig struct {
	// MaxKeys bounds the live records (claims and completed responses).
	// When it is reached, expired records are swept; if none has
	// expired, Claim fails with ErrStoreFull (the Handler answers 503)
	// rather than forget a record that a retry may still need. Default
	// 100,000, at most MaxMemoryKeys.
	MaxKeys int
	// SweepInterval is how often a background goroutine drops expired
	// records. Default 1 minute. Close stops it.
	SweepInterval time.Duration

	clk clock.Clock // tests only; nil means clock.Real
}

// Defaults and bounds, see MemoryConfig.
const (
	DefaultMaxKeys       = 100_000
	MaxMemoryKeys        = 1 << 26
	DefaultSweepInterval = time.Minute
)

// Validate reports the first bad value in c as a *bulwark.ConfigError.
func (c MemoryConfig) Validate() error {
	v := validate.New("idempotency")
	v.Size("MaxKeys", c.MaxKeys, MaxMemoryKeys)
	v.Duration("SweepInterval", c.SweepInterval, 24*time.Hour)
	return v.Err()
}

// MemoryStore is a [Store] in the process's memory: for a single instance,
// or for tests. Records are lost when the process exits, and other
// instances do not see them; use package idempotency/redisstore to share
// them. A MemoryStore is safe for concurrent use; call Close to stop its
// sweeper.
type MemoryStore struct {
	clk     clock.Clock
	maxKeys int

	mu      sync.Mutex
	entries map[string]*memEntry

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

type memEntry struct {
	expires     int64 // clock Nanotime
	token       string
	fingerprint string
	rec         *Record // nil while claimed
}

// NewMemoryStore returns a MemoryStore. It panics with a
// *bulwark.ConfigError if cfg is invalid.
func NewMemoryStore(cfg MemoryConfig) *MemoryStore {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	s := &MemoryStore{
		clk:     clock.Or(cfg.clk),
		maxKeys: cfg.MaxKeys,
		entries: make(map[string]*memEntry),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.sweeper(cfg.SweepInterval)
	return s
}

func (s *MemoryStore) sweeper(every time.Duration) {
	defer close(s.done)
	t := s.clk.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C():
			s.mu.Lock()
			s.sweepLocked(s.clk.Nanotime())
			s.mu.Unlock()
			t.Reset(every)
		}
	}
}

func (s *MemoryStore) sweepLocked(now int64) {
	for k, e := range s.entries {
		if now >= e.expires {
			delete(s.entries, k)
		}
	}
}

// Close stops the sweeper. The store keeps working without it (expired
// records are still ignored, and swept when it fills up). Close is safe to
// call more than once.
func (s *MemoryStore) Close() error {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
	})
	return nil
}

// Len returns the number of records held, expired ones included until they
// are swept.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Claim implements [Store].
func (s *MemoryStore) Claim(ctx context.Context, key, fingerprint string, lease time.Duration) (Claim, error) {
	if err := ctx.Err(); err != nil {
		return Claim{}, context.Cause(ctx)
	}
	now := s.clk.Nanotime()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && now < e.expires {
		if e.rec == nil {
			return Claim{State: InProgress, Fingerprint: e.fingerprint}, nil
		}
		return Claim{State: Completed, Fingerprint: e.fingerprint, Record: copyRecord(e.rec)}, nil
	}
	if len(s.entries) >= s.maxKeys {
		s.sweepLocked(now)
		if len(s.entries) >= s.maxKeys {
			return Claim{}, ErrStoreFull
		}
	}
	tok := newToken()
	s.entries[key] = &memEntry{expires: now + int64(lease), token: tok, fingerprint: fingerprint}
	return Claim{State: Claimed, Token: tok}, nil
}

// held returns key's entry if token holds it; s.mu is held.
func (s *MemoryStore) held(key, token string, now int64) *memEntry {
	e, ok := s.entries[key]
	if !ok || now >= e.expires || e.rec != nil || e.token != token {
		return nil
	}
	return e
}

// Renew implements [Store].
func (s *MemoryStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	now := s.clk.Nanotime()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.held(key, token, now)
	if e == nil {
		return ErrLostClaim
	}
	e.expires = now + int64(lease)
	return nil
}

// Complete implements [Store].
func (s *MemoryStore) Complete(ctx context.Context, key, token string, rec *Record, retention time.Duration) error {
	now := s.clk.Nanotime()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.held(key, token, now)
	if e == nil {
		return ErrLostClaim
	}
	e.rec = copyRecord(rec)
	e.expires = now + int64(retention)
	e.token = ""
	return nil
}

// Release implements [Store].
func (s *MemoryStore) Release(ctx context.Context, key, token string) error {
	now := s.clk.Nanotime()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held(key, token, now) == nil {
		return ErrLostClaim
	}
	delete(s.entries, key)
	return nil
}

func copyRecord(r *Record) *Record {
	c := *r
	c.Header = http.Header(r.Header).Clone()
	if r.Body != nil {
		c.Body = append([]byte(nil), r.Body...)
	}
	return &c
}

// newToken returns 128 random bits in hex.
func newToken() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
