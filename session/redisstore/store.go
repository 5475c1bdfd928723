package redisstore

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/session"
)

// Store is a [session.Store] in Redis. It is safe for concurrent use and
// holds no resources of its own: the caller owns the client.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
}

var _ session.Store = (*Store)(nil)

// New returns a Store on client. It panics if client is nil, and with a
// *bulwark.ConfigError if cfg is invalid (see Config.Validate).
func New(client redis.UniversalClient, cfg Config) *Store {
	if client == nil {
		panic("session/redisstore: New called with a nil client")
	}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Store{client: client, prefix: cfg.Prefix, timeout: cfg.Timeout}
}

// Keys of a session: its hash and its tombstone share the hash tag {id}.
func (s *Store) sessionKey(id string) string { return s.prefix + "{" + id + "}" }
func (s *Store) tombKey(id string) string    { return s.prefix + "{" + id + "}:x" }

// userKey is a user's index (a sorted set of session ids scored by their
// absolute deadlines), tagged by the user (encoded, so that no user ID can
// move the tag).
func (s *Store) userKey(user string) string {
	return s.prefix + "user:{" + base64.RawURLEncoding.EncodeToString([]byte(user)) + "}"
}

// Hash fields: "v:<key>" for values, and meta fields starting with "_".
const (
	valuePrefix = "v:"
	fAbs        = "_a" // absolute deadline, Unix ms
	fIdle       = "_e" // idle deadline, Unix ms
	fUser       = "_u"
	fSize       = "_s" // sum of len(key)+len(value)
)

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// commitScript applies one Change. KEYS: session hash, tombstone.
// ARGV: create, now, idle (ms), absolute deadline (create), size limit,
// clear, user, ndel, ndel fields, then field/value pairs.
// Returns 1 (applied), 0 (not found / tombstoned), -1 (too large).
var commitScript = redis.NewScript(`
local h, tomb = KEYS[1], KEYS[2]
local now = tonumber(ARGV[2])
local create = ARGV[1] == '1'
local exists = redis.call('EXISTS', h) == 1
local abs
if create then
  if exists or redis.call('EXISTS', tomb) == 1 then return 0 end
  abs = tonumber(ARGV[4])
else
  if not exists then return 0 end
  abs = tonumber(redis.call('HGET', h, '_a'))
  if abs == nil or abs <= now then
    redis.call('DEL', h)
    return 0
  end
  if ARGV[7] ~= '' and redis.call('EXISTS', tomb) == 1 then
    redis.call('DEL', h)
    return 0
  end
end
local clear = ARGV[6] == '1'
local keep = exists and not clear
local size = 0
if keep then size = tonumber(redis.call('HGET', h, '_s') or '0') or 0 end
local nd = tonumber(ARGV[8])
local d0, s0 = 9, 9 + nd
if keep then
  for j = d0, s0 - 1 do
    local f = ARGV[j]
    if redis.call('HEXISTS', h, f) == 1 then size = size - (#f - 2) - redis.call('HSTRLEN', h, f) end
  end
end
for j = s0, #ARGV, 2 do
  local f = ARGV[j]
  if keep and redis.call('HEXISTS', h, f) == 1 then size = size - (#f - 2) - redis.call('HSTRLEN', h, f) end
  size = size + (#f - 2) + #ARGV[j + 1]
end
local limit = tonumber(ARGV[5])
if limit > 0 and size > limit then return -1 end
if clear and exists then
  for _, f in ipairs(redis.call('HKEYS', h)) do
    if string.sub(f, 1, 2) == 'v:' then redis.call('HDEL', h, f) end
  end
end
for j = d0, s0 - 1 do redis.call('HDEL', h, ARGV[j]) end
for j = s0, #ARGV, 2 do redis.call('HSET', h, ARGV[j], ARGV[j + 1]) end
if ARGV[7] ~= '' then redis.call('HSET', h, '_u', ARGV[7]) end
local e = math.min(now + tonumber(ARGV[3]), abs)
if e <= now then
  redis.call('DEL', h)
  return 0
end
redis.call('HSET', h, '_a', string.format('%.0f', abs), '_s', string.format('%.0f', size), '_e', string.format('%.0f', e))
redis.call('PEXPIRE', h, string.format('%.0f', e - now))
return 1
`)

// indexScript adds a session to its user's index. KEYS: the index.
// ARGV: id, its absolute deadline, now (ms), an id to remove or "".
var indexScript = redis.NewScript(`
local k = KEYS[1]
redis.call('ZADD', k, ARGV[2], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZREM', k, ARGV[4]) end
redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. ARGV[3])
local top = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
if top[2] then
  local ttl = tonumber(top[2]) - tonumber(ARGV[3])
  if ttl > 0 then redis.call('PEXPIRE', k, string.format('%.0f', ttl)) end
end
return 1
`)

// takeScript deletes a session and tombstones its id, returning what it
// held; an unknown id gets no tombstone (a flood of made-up tokens must
// not fill Redis). KEYS: session hash, tombstone. ARGV: tombstone TTL (ms).
var takeScript = redis.NewScript(`
local r = redis.call('HGETALL', KEYS[1])
if #r > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
end
return r
`)

// destroyUserScript deletes a session if it is still bound to the user,
// and tombstones its id either way (so that a creation racing with
// DestroyUser fails). KEYS: session hash, tombstone. ARGV: user, TTL (ms).
var destroyUserScript = redis.NewScript(`
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
if redis.call('HGET', KEYS[1], '_u') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

var tombTTL = strconv.FormatInt(session.TombstoneTTL.Milliseconds(), 10)

// Load implements [session.Store] with one HGETALL. A record it cannot
// decode (written by something else) is treated as absent.
func (s *Store) Load(ctx context.Context, id string) (*session.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.client.HGetAll(ctx, s.sessionKey(id)).Result()
	if err != nil {
		return nil, err
	}
	rec, _ := decodeRecord(m)
	return rec, nil
}

// decodeRecord builds a Record from a session hash's fields. It reports
// false, returning nil, for an empty hash or one whose meta fields are
// missing or malformed.
func decodeRecord(m map[string]string) (*session.Record, bool) {
	if len(m) == 0 {
		return nil, false
	}
	abs, err1 := strconv.ParseInt(m[fAbs], 10, 64)
	idle, err2 := strconv.ParseInt(m[fIdle], 10, 64)
	if err1 != nil || err2 != nil || abs <= 0 || idle <= 0 || idle > abs {
		return nil, false
	}
	rec := &session.Record{
		Values:       make(map[string][]byte, len(m)),
		User:         m[fUser],
		IdleDeadline: time.UnixMilli(idle),
		Deadline:     time.UnixMilli(abs),
	}
	for f, v := range m {
		if k, ok := strings.CutPrefix(f, valuePrefix); ok {
			rec.Values[k] = []byte(v)
		}
	}
	return rec, true
}

// Commit implements [session.Store] with one script call (EVALSHA), plus
// one more, before it, on the user's index when ch.User is set.
func (s *Store) Commit(ctx context.Context, id string, ch *session.Change) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if ch.User != "" {
		// The index first: a DestroyUser that runs between the two
		// scripts sees the id and tombstones it, so the commit fails
		// rather than leaving a bound session behind.
		deadline := ch.Deadline
		if deadline.IsZero() {
			deadline = ch.Now.Add(session.MaxLifetime)
		}
		if err := indexScript.Run(ctx, s.client, []string{s.userKey(ch.User)},
			id, ms(deadline), ms(ch.Now), ch.Unindex).Err(); err != nil {
			return err
		}
	}
	args := make([]any, 0, 8+len(ch.Delete)+2*len(ch.Set))
	args = append(args, flag(ch.Create), ms(ch.Now), strconv.FormatInt(ch.Idle.Milliseconds(), 10), ms(ch.Deadline),
		strconv.Itoa(ch.SizeLimit), flag(ch.Clear), ch.User, strconv.Itoa(len(ch.Delete)))
	for _, k := range ch.Delete {
		args = append(args, valuePrefix+k)
	}
	for k, v := range ch.Set {
		args = append(args, valuePrefix+k, v)
	}
	n, err := commitScript.Run(ctx, s.client, []string{s.sessionKey(id), s.tombKey(id)}, args...).Int()
	switch {
	case err != nil:
		return err
	case n == 0:
		return session.ErrNotFound
	case n < 0:
		return session.ErrTooLarge
	}
	return nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Take implements [session.Store] with one script call.
func (s *Store) Take(ctx context.Context, id string) (*session.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := takeScript.Run(ctx, s.client, []string{s.sessionKey(id), s.tombKey(id)}, tombTTL).StringSlice()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		m[vals[i]] = vals[i+1]
	}
	rec, _ := decodeRecord(m)
	return rec, nil
}

// DestroyUser implements [session.Store]: it reads the user's index, then
// deletes each of its sessions with a script on that session's own keys
// (sent in one pipeline, so no command spans two hash tags on Cluster),
// then removes those ids from the index: three round trips on a single
// server, whatever the number of sessions.
func (s *Store) DestroyUser(ctx context.Context, user string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	idx := s.userKey(user)
	ids, err := s.client.ZRange(ctx, idx, 0, -1).Result()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		cmds[i] = destroyUserScript.Eval(ctx, pipe, []string{s.sessionKey(id), s.tombKey(id)}, user, tombTTL)
	}
	_, err = pipe.Exec(ctx)
	n := 0
	for _, c := range cmds {
		if v, e := c.Int(); e == nil {
			n += v
		}
	}
	if err != nil {
		return n, err
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.client.ZRem(ctx, idx, members...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return n, err
	}
	return n, nil
}

// LoadScripts loads the store's Lua scripts into Redis (into every master
// of a Cluster), so that the first commit on each server costs one round
// trip rather than two. Calling it is optional: a script the server does
// not have (a new node, a restart, a failover) is sent again by itself
// (EVALSHA, then EVAL on NOSCRIPT).
func (s *Store) LoadScripts(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for _, sc := range []*redis.Script{commitScript, indexScript, takeScript, destroyUserScript} {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return err
		}
	}
	return nil
}
