package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/telemetry"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Config configures a [Store]. The zero Config is useful.
type Config struct {
	// Prefix is prepended to the store's keys and channel. Default
	// "bulwark:degrade:". It must not hold a hash tag ("{" or "}").
	Prefix string
	// Timeout bounds each Redis operation. Default 1 s; at most 1 min.
	Timeout time.Duration
	// MeterProvider receives the store's error counter,
	// bulwark.degrade.store.errors ({error}, by bulwark.degrade.store.op:
	// set, load, receive); nil means the global provider.
	MeterProvider metric.MeterProvider
}

// Defaults, see Config.
const (
	DefaultPrefix  = "bulwark:degrade:"
	DefaultTimeout = time.Second
	maxBackoff     = time.Second
	minBackoff     = 50 * time.Millisecond
)

// Validate reports the first bad value of c as a *bulwark.ConfigError.
func (c Config) Validate() error {
	v := validate.New("degrade/redisstore")
	v.Check(!strings.ContainsAny(c.Prefix, "{}"), "Prefix", c.Prefix, "a prefix without '{' or '}'")
	v.Duration("Timeout", c.Timeout, time.Minute)
	return v.Err()
}

// Store is a [degrade.SwitchStore] over Redis. Create it with [New]; it is
// safe for concurrent use. The caller owns the client: the store never
// closes it.
type Store struct {
	rdb     redis.UniversalClient
	hash    string
	channel string
	timeout time.Duration
	errs    [numOps]atomic.Int64
	reg     metric.Registration
	once    sync.Once
}

// The operations whose errors are counted.
const (
	opSet = iota
	opLoad
	opReceive
	numOps
)

var opNames = [numOps]string{"set", "load", "receive"}

var _ degrade.SwitchStore = (*Store)(nil)

// New returns a store on rdb. It panics with a *bulwark.ConfigError if cfg
// is not valid, and if rdb is nil.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if rdb == nil {
		panic("degrade/redisstore: New called with a nil client")
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
	hash := cfg.Prefix + "{switches}"
	s := &Store{rdb: rdb, hash: hash, channel: hash + ":changes", timeout: cfg.Timeout}
	s.reg = s.register(cfg.MeterProvider)
	return s
}

func (s *Store) register(mp metric.MeterProvider) metric.Registration {
	m := telemetry.Meter(mp, "degrade")
	c, err := m.Int64ObservableCounter(telemetry.Name("degrade", "store.errors"), metric.WithUnit("{error}"),
		metric.WithDescription("Failed Redis operations of the feature-switch store, by operation."))
	if err != nil {
		return nil
	}
	op := attribute.Key(telemetry.Name("degrade", "store.op"))
	reg, _ := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i := range numOps {
			o.ObserveInt64(c, s.errs[i].Load(), metric.WithAttributes(op.String(opNames[i])))
		}
		return nil
	}, c)
	return reg
}

// count counts err, unless it is nil or the caller's cancellation.
func (s *Store) count(ctx context.Context, op int, err error) error {
	if err != nil && ctx.Err() != context.Canceled {
		s.errs[op].Add(1)
	}
	return err
}

// Close unregisters the store's metrics; it does not close the client,
// and the store keeps working. Close is safe to call more than once; it
// returns nil.
func (s *Store) Close() error {
	s.once.Do(func() {
		if s.reg != nil {
			_ = s.reg.Unregister()
		}
	})
	return nil
}

// setScript stores a value and announces it in one step.
var setScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[3] .. ':' .. ARGV[2])
return 1`)

// ErrBadName is the error of Set for a name degrade would not hold.
var ErrBadName = errors.New("degrade/redisstore: switch name empty or too long")

// Set stores the switch's value and announces it to every watcher.
func (s *Store) Set(ctx context.Context, name string, on bool) error {
	if name == "" || len(name) > degrade.MaxSwitchName {
		return ErrBadName
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.count(ctx, opSet, setScript.Run(octx, s.rdb, []string{s.hash}, s.channel, name, encode(on)).Err())
}

func encode(on bool) string {
	if on {
		return "1"
	}
	return "0"
}

// Load returns every stored value.
func (s *Store) Load(ctx context.Context) (map[string]bool, error) {
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	all, err := s.rdb.HGetAll(octx, s.hash).Result()
	if err != nil {
		return nil, s.count(ctx, opLoad, err)
	}
	out := make(map[string]bool, len(all))
	for k, v := range all {
		if on, ok := decodeValue(v); ok {
			out[k] = on
		}
	}
	return out, nil
}

func decodeValue(v string) (bool, bool) {
	switch v {
	case "1":
		return true, true
	case "0":
		return false, true
	}
	return false, false
}

// parseMessage parses a change announcement, "1:name" or "0:name". It
// reports false for anything else (the channel is shared with whoever can
// publish on it: untrusted).
func parseMessage(p string) (name string, on bool, ok bool) {
	v, name, found := strings.Cut(p, ":")
	if !found || name == "" || len(name) > degrade.MaxSwitchName {
		return "", false, false
	}
	on, ok = decodeValue(v)
	if !ok {
		return "", false, false
	}
	return name, on, true
}

// Watch subscribes to the changes and calls apply: with every stored value
// each time the subscription is (re)established, then with each change.
// It returns nil when ctx is done, and the error of a failed read of the
// stored values (the caller, degrade.Switches, calls Watch again after a
// pause). A lost connection is retried here, with a backoff from 50 ms up
// to 1 s.
func (s *Store) Watch(ctx context.Context, apply func(map[string]bool)) error {
	ps := s.rdb.Subscribe(ctx, s.channel)
	defer ps.Close()
	// Receive blocks in a socket read that ctx does not reach: closing the
	// subscription is what ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	backoff := minBackoff
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.count(ctx, opReceive, err)
			if clock.Sleep(ctx, clock.Real, backoff) != nil {
				return nil
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			all, err := s.Load(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			apply(all)
		case *redis.Message:
			if name, on, ok := parseMessage(m.Payload); ok {
				apply(map[string]bool{name: on})
			}
		}
	}
}
