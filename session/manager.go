package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// Manager serves sessions to HTTP handlers: its [Manager.Handler] gives
// every request a session, reached through the package's functions (Get,
// Put, Remove, Clear, Keys, Renew, Destroy, SetUser, User) on the
// request's context. It is safe for concurrent use.
type Manager struct {
	store      Store
	own        *MemoryStore // created by New; closed by Close
	codec      Codec
	idle, life time.Duration
	touchAfter time.Duration
	sizeLimit  int
	cookie     Cookie
	cookieName string
	sameSite   http.SameSite
	onError    func(http.ResponseWriter, *http.Request, error)
	onStoreErr func(context.Context, StoreErrorEvent)

	loads, saves atomic.Int64
	storeErrs    [numOps]atomic.Int64
	tel          *telemetryState
	closeOnce    sync.Once
}

// New returns a Manager. It panics with a *bulwark.ConfigError if cfg is
// invalid (see Config.Validate).
func New(cfg Config) *Manager {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	m := &Manager{
		store:      cfg.Store,
		codec:      cfg.Codec,
		idle:       cfg.IdleTimeout,
		life:       cfg.Lifetime,
		touchAfter: cfg.TouchAfter,
		sizeLimit:  cfg.SizeLimit,
		cookie:     cfg.Cookie,
		cookieName: cfg.Cookie.cookieName(),
		sameSite:   cfg.Cookie.SameSite,
		onError:    cfg.ErrorHandler,
		onStoreErr: cfg.OnStoreError,
	}
	if m.life == 0 {
		m.life = DefaultLifetime
	}
	if m.idle == 0 {
		m.idle = min(DefaultIdleTimeout, m.life)
	}
	switch {
	case m.touchAfter == 0:
		m.touchAfter = m.idle / DefaultTouchDivisor
	case m.touchAfter < 0:
		m.touchAfter = 0
	}
	if m.sizeLimit == 0 {
		m.sizeLimit = DefaultSizeLimit
	}
	if m.codec == nil {
		m.codec = GobCodec{}
	}
	if m.sameSite == 0 {
		m.sameSite = http.SameSiteLaxMode
	}
	if m.onError == nil {
		m.onError = defaultErrorHandler
	}
	if m.store == nil {
		m.own = NewMemoryStore(MemoryConfig{})
		m.store = m.own
	}
	m.tel = newTelemetry(m, cfg.Name, cfg.MeterProvider)
	return m
}

func defaultErrorHandler(w http.ResponseWriter, _ *http.Request, err error) {
	if errors.Is(err, ErrTooLarge) {
		http.Error(w, ErrTooLarge.Error(), http.StatusInternalServerError)
		return
	}
	http.Error(w, "session: store unavailable", http.StatusServiceUnavailable)
}

// Close unregisters the Manager's metrics and closes the memory store New
// created when Config.Store was nil (a Store passed in Config is the
// caller's to close). Sessions keep working after Close, without the
// memory store's cleanup. It is safe to call more than once; calls after
// the first return nil.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.tel.close()
		if m.own != nil {
			_ = m.own.Close()
		}
	})
	return nil
}

// DestroyAll deletes every session bound to userID (see SetUser): "log
// out everywhere", in time proportional to that user's sessions. It
// returns how many sessions it deleted. Requests of those sessions that
// are running meanwhile cannot bring them back. It panics if ctx is nil.
func (m *Manager) DestroyAll(ctx context.Context, userID string) (int, error) {
	if ctx == nil {
		panic("session: Manager.DestroyAll called with a nil ctx")
	}
	if !validUser(userID) {
		return 0, ErrInvalidUser
	}
	n, err := m.store.DestroyUser(ctx, userID)
	if err != nil {
		serr := &StoreError{Op: "destroy_all", Err: err}
		m.storeError(ctx, opDestroyAll, serr, false)
		return n, serr
	}
	return n, nil
}

func validUser(u string) bool { return u != "" && len(u) <= MaxUserIDLen }

// storeError counts and reports a store failure, unless ctx was cancelled
// by its caller (neutral, as everywhere in bulwark).
func (m *Manager) storeError(ctx context.Context, op int, err error, wrote bool) {
	if ctx.Err() != nil {
		return
	}
	m.storeErrs[op].Add(1)
	if m.onStoreErr != nil {
		m.onStoreErr(ctx, StoreErrorEvent{Err: err, HeadersWritten: wrote})
	}
}

const (
	opLoad = iota
	opSave
	opRenew
	opDestroy
	opDestroyAll
	numOps
)

var opNames = [numOps]string{"load", "save", "renew", "destroy", "destroy_all"}

type ctxKey struct{}

// state is one request's session. Its mutex makes the package functions
// safe for a handler that shares its context with goroutines of its own.
type state struct {
	mu  sync.Mutex
	m   *Manager
	ctx context.Context

	hadCookie bool   // the request carried a cookie of our name
	token, id string // "" when the request has no live session yet
	loaded    bool
	live      bool // the session is known to exist in the store
	values    map[string][]byte
	user      string
	deadline  time.Time
	touch     bool

	// Changes not yet committed.
	set       map[string][]byte
	decoded   map[string]any
	del       map[string]struct{}
	clear     bool
	userDirty bool

	setCookie, delCookie bool
	err                  error // the session is unusable for this request
	wrote                bool  // the response's headers are written (or the handler ended)
	failed               bool  // the ErrorHandler answered the request
}

func from(ctx context.Context) *state {
	if ctx == nil {
		panic("session: called with a nil ctx")
	}
	s, _ := ctx.Value(ctxKey{}).(*state)
	return s
}

func (s *state) fail(op int, err error) {
	serr := &StoreError{Op: opNames[op], Err: err}
	if s.err == nil {
		s.err = serr
	}
	s.m.storeError(s.ctx, op, serr, s.wrote)
}

// load reads the session from the store once, if the request has a token.
func (s *state) load() {
	if s.loaded || s.err != nil {
		return
	}
	s.loaded = true
	if s.id == "" {
		return
	}
	rec, err := s.m.store.Load(s.ctx, s.id)
	s.m.loads.Add(1)
	if err != nil {
		s.fail(opLoad, err)
		return
	}
	now := clock.Real.Now()
	if rec == nil || !now.Before(rec.IdleDeadline) || !now.Before(rec.Deadline) {
		// An unknown, expired or destroyed token: never adopted. A session
		// created by this request gets a fresh one.
		s.token, s.id = "", ""
		return
	}
	s.live = true
	s.values = rec.Values
	s.user = rec.User
	s.deadline = rec.Deadline
	// Throttled touch: extend the idle deadline only when more than
	// touchAfter has passed since it was last extended, and when
	// extending can still move it.
	lastTouch := rec.IdleDeadline.Add(-s.m.idle)
	s.touch = rec.IdleDeadline.Before(rec.Deadline) && now.Sub(lastTouch) >= s.m.touchAfter
}

// get returns key's encoded value, and its value if this request put it.
func (s *state) get(key string) ([]byte, any, bool) {
	if _, ok := s.del[key]; ok {
		return nil, nil, false
	}
	if v, ok := s.set[key]; ok {
		return v, s.decoded[key], true
	}
	if s.clear {
		return nil, nil, false
	}
	s.load()
	v, ok := s.values[key]
	return v, nil, ok
}

// canCreate reports an error if a change would need a new session that the
// client could no longer be told about.
func (s *state) writable() error {
	switch {
	case s.err != nil:
		return s.err
	case s.wrote && s.id == "":
		return ErrHeadersWritten
	}
	return nil
}

func (s *state) keys() []string {
	s.load()
	var ks []string
	if !s.clear {
		for k := range s.values {
			if _, d := s.del[k]; !d {
				if _, p := s.set[k]; !p {
					ks = append(ks, k)
				}
			}
		}
	}
	for k := range s.set {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (s *state) resetPending() {
	if s.values != nil {
		if s.clear {
			clear(s.values)
		}
		for k := range s.del {
			delete(s.values, k)
		}
		for k, v := range s.set {
			s.values[k] = v
		}
	}
	s.set, s.decoded, s.del, s.clear, s.userDirty = nil, nil, nil, false, false
}

func (s *state) change(now time.Time) *Change {
	ch := &Change{Now: now, Idle: s.m.idle, Deadline: s.deadline, Clear: s.clear, Set: s.set, SizeLimit: s.m.sizeLimit}
	for k := range s.del {
		ch.Delete = append(ch.Delete, k)
	}
	if s.userDirty {
		ch.User = s.user
	}
	return ch
}

// save commits what the request changed. With canCookie, the response's
// headers are not written yet, so it may set or delete the cookie.
func (s *state) save(h http.Header, canCookie bool) {
	if s.err != nil {
		return
	}
	changed := s.clear || len(s.set) > 0 || len(s.del) > 0 || s.userDirty
	now := clock.Real.Now()
	if s.id != "" && (changed || s.touch) {
		err := s.m.store.Commit(s.ctx, s.id, s.change(now))
		switch {
		case err == nil:
			s.m.saves.Add(1)
			s.live, s.touch = true, false
			s.resetPending()
		case errors.Is(err, ErrNotFound) && s.live:
			// Destroyed, renewed elsewhere or expired while this request
			// ran: its changes are dropped, never applied to a session
			// that was ended.
			s.resetPending()
			s.token, s.id, s.live, s.values, s.user = "", "", false, nil, ""
			s.delCookie = s.hadCookie
		case errors.Is(err, ErrNotFound):
			// A blind write (nothing read) with a dead token: the
			// changes start a fresh session below, as if loaded.
			s.token, s.id, s.clear, s.del = "", "", false, nil
		case errors.Is(err, ErrTooLarge):
			s.err = fmt.Errorf("%w (Config.SizeLimit %d bytes)", ErrTooLarge, s.m.sizeLimit)
			return
		default:
			s.fail(opSave, err)
			return
		}
	}
	if s.id == "" && (len(s.set) > 0 || s.userDirty) && canCookie {
		token, id := newToken()
		ch := s.change(now)
		ch.Create, ch.Deadline, ch.Clear, ch.Delete = true, now.Add(s.m.life), false, nil
		if err := s.m.store.Commit(s.ctx, id, ch); err != nil {
			if errors.Is(err, ErrTooLarge) {
				s.err = fmt.Errorf("%w (Config.SizeLimit %d bytes)", ErrTooLarge, s.m.sizeLimit)
			} else {
				s.fail(opSave, err)
			}
			return
		}
		s.m.saves.Add(1)
		s.token, s.id, s.live, s.deadline = token, id, true, ch.Deadline
		s.values = map[string][]byte{}
		s.resetPending()
		s.setCookie, s.delCookie = true, false
	}
	if !canCookie {
		return
	}
	switch {
	case s.setCookie:
		h.Add("Set-Cookie", s.m.newCookie(s.token, s.deadline, now).String())
	case s.delCookie:
		h.Add("Set-Cookie", s.m.newCookie("", time.Time{}, now).String())
	default:
		return
	}
	s.setCookie, s.delCookie = false, false
	if !s.m.cookie.AllowCaching {
		h.Set("Cache-Control", "no-store")
	}
}

// newCookie returns the session cookie carrying token, or, for an empty
// token, the cookie that deletes it.
func (m *Manager) newCookie(token string, deadline, now time.Time) *http.Cookie {
	c := &http.Cookie{
		Name:     m.cookieName,
		Value:    token,
		Path:     m.cookie.Path,
		Domain:   m.cookie.Domain,
		Secure:   !m.cookie.Insecure,
		HttpOnly: !m.cookie.ScriptAccess,
		SameSite: m.sameSite,
	}
	if c.Path == "" {
		c.Path = "/"
	}
	switch {
	case token == "":
		c.MaxAge = -1
		c.Expires = time.Unix(0, 0)
	case m.cookie.Persistent:
		c.Expires = deadline.UTC()
		c.MaxAge = max(1, int(deadline.Sub(now)/time.Second))
	}
	return c
}
