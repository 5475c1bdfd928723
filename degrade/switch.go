package degrade

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Switch is a named feature switch. On reports whether the feature is
// on; reading it is one atomic load, so it can guard every request. Get
// one from [Switches.Switch]; a Switch is safe for concurrent use.
type Switch struct {
	name string
	on   atomic.Bool
}

// Name returns the switch's name.
func (s *Switch) Name() string { return s.name }

// On reports whether the feature is on.
func (s *Switch) On() bool { return s.on.Load() }

// SwitchStore keeps switch values outside the process, so that a switch
// flipped on one instance flips on all of them (degrade/redisstore
// implements it over Redis). Implementations are safe for concurrent use.
type SwitchStore interface {
	// Set stores a switch's value and tells every watcher.
	Set(ctx context.Context, name string, on bool) error
	// Watch calls apply with every stored value at once, then with each
	// change as it happens, and again with every stored value each time
	// it has reconnected after losing the store (changes may have been
	// missed meanwhile). It returns when ctx is done. apply is never
	// called concurrently with itself.
	Watch(ctx context.Context, apply func(values map[string]bool)) error
}

// SwitchesConfig configures [Switches]. The zero SwitchesConfig is useful:
// in-process switches, on by default.
type SwitchesConfig struct {
	// Store, if set, makes the switches cluster-wide: Set writes through
	// it and every instance applies what it watches. Default nil:
	// in-process only.
	Store SwitchStore
	// Defaults gives the value of a switch until one is set (or stored).
	// A switch not listed starts on. At most MaxSwitches entries.
	Defaults map[string]bool
	// OnChange, if set, is called after a switch changes value, with
	// context.Background() for changes that come from the Store. It runs
	// synchronously in the goroutine that applied the change (Set's
	// caller, or the Store's watcher), never concurrently with itself,
	// and may read the switches but not Set them.
	OnChange func(ctx context.Context, ev SwitchEvent)
}

// SwitchEvent is a switch's change of value.
type SwitchEvent struct {
	// Name is the switch's name.
	Name string
	// On is its new value.
	On bool
}

// Bounds of the switch registry.
const (
	// MaxSwitches bounds the number of switches, so that names taken from
	// requests or from the store cannot grow memory without bound.
	MaxSwitches = 4096
	// MaxSwitchName bounds a switch name's length in bytes.
	MaxSwitchName = 128
	// storeRetry is the pause between two Watch calls after the store
	// failed.
	storeRetry = time.Second
)

// ErrTooManySwitches is the error of a new switch past MaxSwitches, or
// of a name that is empty or longer than MaxSwitchName.
var ErrTooManySwitches = errors.New("degrade: too many switches or bad switch name")

// Switches is a registry of named feature switches. Create it with
// [NewSwitches]; the zero Switches is not usable. It is safe for
// concurrent use; with a Store, call Close to stop watching it.
type Switches struct {
	cfg    SwitchesConfig
	mu     sync.Mutex // registry changes; OnChange order
	all    atomic.Pointer[map[string]*Switch]
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewSwitches returns a registry. With a Store it starts a goroutine that
// applies the stored values until Close (Watch errors are retried every
// second). It panics with a *bulwark.ConfigError if cfg is not valid.
func NewSwitches(cfg SwitchesConfig) *Switches {
	v := validate.New("degrade")
	v.Check(len(cfg.Defaults) <= MaxSwitches, "SwitchesConfig.Defaults", len(cfg.Defaults), fmt.Sprintf("at most %d switches", MaxSwitches))
	for _, k := range slices.Sorted(maps.Keys(cfg.Defaults)) {
		v.Check(k != "" && len(k) <= MaxSwitchName, "SwitchesConfig.Defaults", k, fmt.Sprintf("names of 1 to %d bytes", MaxSwitchName))
	}
	if err := v.Err(); err != nil {
		panic(err)
	}
	s := &Switches{cfg: cfg, done: make(chan struct{})}
	m := map[string]*Switch{}
	for k, on := range cfg.Defaults {
		sw := &Switch{name: k}
		sw.on.Store(on)
		m[k] = sw
	}
	s.all.Store(&m)
	if cfg.Store == nil {
		close(s.done)
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.watch(ctx)
	return s
}

func (s *Switches) watch(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		err := s.cfg.Store.Watch(ctx, func(values map[string]bool) {
			for k, on := range values {
				s.set(context.Background(), k, on)
			}
		})
		if ctx.Err() != nil {
			return
		}
		_ = err // a failed Watch is retried; the switches keep their values meanwhile
		_ = clock.Sleep(ctx, clock.Real, storeRetry)
	}
}

// Switch returns the switch called name, registering it (on, or as
// Defaults says) on first use. Past MaxSwitches, or for a name that is
// empty or longer than MaxSwitchName, it returns a detached switch that is
// always on and never listed: the registry stays bounded and the feature
// keeps working.
func (s *Switches) Switch(name string) *Switch {
	if sw := (*s.all.Load())[name]; sw != nil {
		return sw
	}
	sw, err := s.register(name)
	if err != nil {
		sw = &Switch{name: name}
		sw.on.Store(true)
	}
	return sw
}

func (s *Switches) register(name string) (*Switch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.all.Load()
	if sw := old[name]; sw != nil {
		return sw, nil
	}
	if name == "" || len(name) > MaxSwitchName || len(old) >= MaxSwitches {
		return nil, ErrTooManySwitches
	}
	sw := &Switch{name: name}
	sw.on.Store(true)
	m := make(map[string]*Switch, len(old)+1)
	maps.Copy(m, old)
	m[name] = sw
	s.all.Store(&m)
	return sw, nil
}

// Set turns the switch called name on or off (registering it if needed).
// With a Store it writes there first, and returns its error without
// changing anything if the write fails; every instance watching the store
// (this one included) then applies it. It returns [ErrTooManySwitches]
// for a name the registry cannot hold. Set panics if ctx is nil.
func (s *Switches) Set(ctx context.Context, name string, on bool) error {
	if ctx == nil {
		panic("degrade: Switches.Set called with a nil ctx")
	}
	if _, err := s.register(name); err != nil {
		return err
	}
	if s.cfg.Store != nil {
		if err := s.cfg.Store.Set(ctx, name, on); err != nil {
			return err
		}
	}
	s.set(ctx, name, on)
	return nil
}

func (s *Switches) set(ctx context.Context, name string, on bool) {
	sw, err := s.register(name)
	if err != nil {
		return // the registry is full: a stored name past the bound is ignored
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sw.on.Swap(on) != on && s.cfg.OnChange != nil {
		s.cfg.OnChange(ctx, SwitchEvent{Name: name, On: on})
	}
}

// List returns every registered switch's value, by name.
func (s *Switches) List() map[string]bool {
	m := *s.all.Load()
	out := make(map[string]bool, len(m))
	for k, sw := range m {
		out[k] = sw.On()
	}
	return out
}

// Close stops watching the Store (if any) and waits for the watcher to
// end. The switches keep their values and Set still works in-process
// (and writes to the Store, which this instance no longer watches).
// Close is safe to call more than once; it returns nil.
func (s *Switches) Close() error {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
	})
	<-s.done
	return nil
}
