package session

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults and bounds of [MemoryConfig].
const (
	DefaultMaxSessions     = 100_000
	MaxMaxSessions         = 1 << 24
	DefaultCleanupInterval = time.Minute
	MaxCleanupInterval     = 24 * time.Hour
	// TombstoneTTL is how long a destroyed session's id stays tombstoned
	// (refused by Commit with Create) in the memory store and the Redis
	// store.
	TombstoneTTL = 10 * time.Minute
)

// MemoryConfig configures a [MemoryStore]. The zero value is useful.
type MemoryConfig struct {
	// MaxSessions bounds how many sessions the store holds; creating one
	// more fails with ErrFull (which the Manager answers with its
	// ErrorHandler) rather than evicting a live session. 0 means
	// DefaultMaxSessions (100,000); at most MaxMaxSessions.
	MaxSessions int
	// CleanupInterval is how often a background goroutine deletes
	// expired sessions and tombstones (expired sessions are invisible at
	// once; the loop only frees their memory). 0 means
	// DefaultCleanupInterval (1 minute); at most MaxCleanupInterval.
	CleanupInterval time.Duration
}

// Validate reports the first bad field of c as a *bulwark.ConfigError.
func (c MemoryConfig) Validate() error {
	v := validate.New("session")
	v.Size("MemoryConfig.MaxSessions", c.MaxSessions, MaxMaxSessions)
	v.Duration("MemoryConfig.CleanupInterval", c.CleanupInterval, MaxCleanupInterval)
	return v.Err()
}

// MemoryStore is a [Store] in the process's memory, for a single instance
// and for tests. It is safe for concurrent use. Its cleanup goroutine runs
// until Close; after Close the store keeps working, without the cleanup.
type MemoryStore struct {
	mu       sync.Mutex
	max      int
	sessions map[string]*memRecord
	tombs    map[string]time.Time
	users    map[string]map[string]struct{}

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type memRecord struct {
	values       map[string][]byte
	size         int
	user         string
	idle, expiry time.Time
}

// NewMemoryStore returns a memory store. It panics with a
// *bulwark.ConfigError if cfg is invalid (see MemoryConfig.Validate).
func NewMemoryStore(cfg MemoryConfig) *MemoryStore {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = DefaultCleanupInterval
	}
	s := &MemoryStore{
		max:      cfg.MaxSessions,
		sessions: make(map[string]*memRecord),
		tombs:    make(map[string]time.Time),
		users:    make(map[string]map[string]struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go s.cleanup(cfg.CleanupInterval)
	return s
}

func (s *MemoryStore) cleanup(every time.Duration) {
	defer close(s.done)
	t := clock.Real.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C():
			s.sweep()
			t.Reset(every)
		}
	}
}

// sweep deletes expired sessions and tombstones.
func (s *MemoryStore) sweep() {
	now := clock.Real.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
}

func (s *MemoryStore) sweepLocked(now time.Time) {
	for id, r := range s.sessions {
		if !now.Before(r.idle) {
			s.remove(id, r)
		}
	}
	for id, until := range s.tombs {
		if !now.Before(until) {
			delete(s.tombs, id)
		}
	}
}

// Close stops the cleanup goroutine and waits for it to end. It is safe to
// call more than once; calls after the first return nil.
func (s *MemoryStore) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
	})
	return nil
}

// Len returns the number of live sessions in the store.
func (s *MemoryStore) Len() int {
	now := clock.Real.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.sessions {
		if now.Before(r.idle) {
			n++
		}
	}
	return n
}

// live returns the session id if it has not expired, deleting it if it
// has. s.mu is held.
func (s *MemoryStore) live(id string, now time.Time) *memRecord {
	r := s.sessions[id]
	if r != nil && !now.Before(r.idle) {
		s.remove(id, r)
		return nil
	}
	return r
}

func (s *MemoryStore) remove(id string, r *memRecord) {
	delete(s.sessions, id)
	if r.user != "" {
		if ids := s.users[r.user]; ids != nil {
			delete(ids, id)
			if len(ids) == 0 {
				delete(s.users, r.user)
			}
		}
	}
}

func (r *memRecord) export() *Record {
	vals := make(map[string][]byte, len(r.values))
	for k, v := range r.values {
		vals[k] = append([]byte(nil), v...)
	}
	return &Record{Values: vals, User: r.user, IdleDeadline: r.idle, Deadline: r.expiry}
}

// Load implements [Store].
func (s *MemoryStore) Load(ctx context.Context, id string) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := clock.Real.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.live(id, now)
	if r == nil {
		return nil, nil
	}
	return r.export(), nil
}

// Commit implements [Store].
func (s *MemoryStore) Commit(ctx context.Context, id string, ch *Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := clock.Real.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.live(id, now)
	if ch.Create {
		if until, ok := s.tombs[id]; r != nil || ok && now.Before(until) {
			return ErrNotFound
		}
		if len(s.sessions) >= s.max {
			s.sweepLocked(now)
			if len(s.sessions) >= s.max {
				return ErrFull
			}
		}
		r = &memRecord{values: map[string][]byte{}, expiry: ch.Deadline, idle: ch.Deadline}
	} else if r == nil {
		return ErrNotFound
	}
	// Size after the change, before touching anything.
	size := r.size
	if ch.Clear {
		size = 0
	}
	for _, k := range ch.Delete {
		if v, ok := r.values[k]; ok && !ch.Clear {
			size -= len(k) + len(v)
		}
	}
	for k, v := range ch.Set {
		if old, ok := r.values[k]; ok && !ch.Clear {
			size -= len(k) + len(old)
		}
		size += len(k) + len(v)
	}
	if ch.SizeLimit > 0 && size > ch.SizeLimit {
		return ErrTooLarge
	}
	if ch.Create {
		s.sessions[id] = r
	}
	if ch.Clear {
		clear(r.values)
	}
	for _, k := range ch.Delete {
		delete(r.values, k)
	}
	for k, v := range ch.Set {
		r.values[k] = append([]byte(nil), v...)
	}
	r.size = size
	if ch.Unindex != "" && ch.User != "" {
		delete(s.users[ch.User], ch.Unindex)
	}
	if ch.User != "" && ch.User != r.user {
		if r.user != "" {
			delete(s.users[r.user], id)
		}
		r.user = ch.User
		ids := s.users[ch.User]
		if ids == nil {
			ids = make(map[string]struct{})
			s.users[ch.User] = ids
		}
		ids[id] = struct{}{}
	}
	r.idle = now.Add(ch.Idle)
	if r.idle.After(r.expiry) {
		r.idle = r.expiry
	}
	return nil
}

// Take implements [Store].
func (s *MemoryStore) Take(ctx context.Context, id string) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := clock.Real.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.live(id, now)
	if r == nil {
		return nil, nil // no tombstone: a flood of unknown ids must not grow the store
	}
	s.tombs[id] = now.Add(TombstoneTTL)
	s.remove(id, r)
	return r.export(), nil
}

// DestroyUser implements [Store].
func (s *MemoryStore) DestroyUser(ctx context.Context, user string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := clock.Real.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range maps.Clone(s.users[user]) {
		if r := s.live(id, now); r != nil {
			s.remove(id, r)
			n++
		}
		s.tombs[id] = now.Add(TombstoneTTL)
	}
	delete(s.users, user)
	return n, nil
}
