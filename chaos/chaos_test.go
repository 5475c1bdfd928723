package chaos

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	bad := map[string]Fault{
		"Faults[0].Probability":   {Action: Error, Probability: math.NaN()},
		"Faults[0].HTTPStatus":    {Action: Error, HTTPStatus: 200},
		"Faults[0].GRPCCode":      {Action: Error, GRPCCode: 17},
		"Faults[0].Action":        {},
		"Faults[0].Latency.Delay": {Latency: Latency{Delay: 2 * MaxDelay}},
		"Faults[0].Latency.Shape": {Latency: Latency{Dist: Pareto, Delay: 1, Shape: math.Inf(1)}},
		"Faults[0].Latency.Dist":  {Latency: Latency{Dist: 9, Delay: 1}},
	}
	for field, f := range bad {
		err := Config{Faults: []Fault{f}}.Validate()
		var ce *bulwark.ConfigError
		if !errors.As(err, &ce) || ce.Field != field || !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want a ConfigError for %s", field, err, field)
		}
	}
	if err := (Config{Faults: make([]Fault, MaxFaults+1)}).Validate(); err == nil {
		t.Error("a fault set past MaxFaults was accepted")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Errorf("New with a bad Config panicked with %v, want a ConfigError", err)
			}
		}()
		New(Config{Faults: []Fault{{}}})
	}()
	i := New(Config{Faults: []Fault{{Name: "a", Action: Abort}}})
	defer i.Close()
	if err := i.SetFaults([]Fault{{HTTPStatus: 42, Action: Error}}); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("SetFaults(bad) = %v", err)
	}
	if fs := i.Faults(); len(fs) != 1 || fs[0].Name != "a" {
		t.Errorf("a rejected SetFaults changed the set: %+v", fs)
	}
}

func TestDefaultsFilledIn(t *testing.T) {
	i := New(Config{Faults: []Fault{{Action: Error}, {Latency: Latency{Delay: time.Millisecond}}}})
	defer i.Close()
	fs := i.Faults()
	if f := fs[0]; f.Name != "error" || f.Probability != 1 || f.HTTPStatus != 503 || f.GRPCCode != 14 {
		t.Errorf("defaults = %+v", f)
	}
	if fs[1].Name != "latency" {
		t.Errorf("latency-only fault named %q", fs[1].Name)
	}
}

// TestDoAddsLatencyInFakeTime proves that the latency follows synctest's
// fake time, that a cancelled caller is released at once, and what each
// action does to fn.
func TestDoAddsLatencyInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		i := New(Config{Enabled: true, Faults: []Fault{{AllTraffic: true, PathPrefix: "/slow", Latency: Latency{Delay: 3 * time.Second}}}})
		defer i.Close()
		start := time.Now()
		ran := false
		if err := i.Do(context.Background(), "/slow", func(context.Context) error { ran = true; return nil }); err != nil || !ran {
			t.Fatalf("Do = %v, ran %v", err, ran)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("latency = %v, want 3s", d)
		}

		ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errors.New("caller gave up"))
		defer cancel()
		start = time.Now()
		err := i.Do(ctx, "/slow", func(context.Context) error { t.Error("fn ran after its caller gave up"); return nil })
		if err == nil || err.Error() != "caller gave up" || time.Since(start) != time.Second {
			t.Fatalf("Do with a 1s deadline = %v after %v", err, time.Since(start))
		}
	})
}

func TestDoActions(t *testing.T) {
	for _, a := range []Action{Error, Abort, Drop} {
		i := New(Config{Enabled: true, Faults: []Fault{{Name: "f", AllTraffic: true, Action: a}}})
		ran := false
		err := i.Do(context.Background(), "/x", func(context.Context) error { ran = true; return nil })
		var fe *FaultError
		if !errors.As(err, &fe) || fe.Action != a || fe.Fault != "f" || !errors.Is(err, ErrInjected) {
			t.Errorf("%v: Do = %v", a, err)
		}
		if ran != (a == Drop) {
			t.Errorf("%v: fn ran = %v", a, ran)
		}
		i.Close()
	}
}

func TestDoPanicsOnNil(t *testing.T) {
	i := New(Config{})
	defer i.Close()
	for name, f := range map[string]func(){
		"ctx": func() { i.Do(nil, "/", func(context.Context) error { return nil }) }, //nolint:staticcheck
		"fn":  func() { i.Do(context.Background(), "/", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Do with a nil %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// TestDistributions checks each distribution's draws against its
// definition on a seeded source.
func TestDistributions(t *testing.T) {
	i := New(Config{Seed: 42})
	defer i.Close()
	const n = 20000
	draw := func(l Latency) []float64 {
		out := make([]float64, n)
		for k := range out {
			out[k] = float64(i.delay(&l))
		}
		return out
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	ms := float64(time.Millisecond)

	for _, x := range draw(Latency{Delay: 7 * time.Millisecond}) {
		if x != 7*ms {
			t.Fatalf("Fixed drew %v", time.Duration(x))
		}
	}
	u := draw(Latency{Dist: Uniform, Delay: 10 * time.Millisecond, Spread: 20 * time.Millisecond})
	for _, x := range u {
		if x < 10*ms || x >= 30*ms {
			t.Fatalf("Uniform drew %v outside [10ms, 30ms)", time.Duration(x))
		}
	}
	// Mean 20ms, sd 20/sqrt(12) ms: the mean of n draws is within 5 of its
	// standard errors.
	if m := mean(u); math.Abs(m-20*ms) > 5*(20*ms/math.Sqrt(12))/math.Sqrt(n) {
		t.Errorf("Uniform mean %v, want 20ms", time.Duration(m))
	}
	nd := draw(Latency{Dist: Normal, Delay: 100 * time.Millisecond, Spread: 10 * time.Millisecond})
	if m := mean(nd); math.Abs(m-100*ms) > 5*10*ms/math.Sqrt(n) {
		t.Errorf("Normal mean %v, want 100ms", time.Duration(m))
	}
	within := 0
	for _, x := range nd {
		if math.Abs(x-100*ms) <= 10*ms {
			within++
		}
	}
	if f := float64(within) / n; math.Abs(f-0.6827) > 0.02 {
		t.Errorf("Normal: %.3f of draws within one sd, want 0.683", f)
	}
	p := draw(Latency{Dist: Pareto, Delay: 10 * time.Millisecond, Shape: 2, Max: time.Second})
	over := 0
	for _, x := range p {
		if x < 10*ms || x > 1000*ms {
			t.Fatalf("Pareto drew %v outside [10ms, Max]", time.Duration(x))
		}
		if x > 20*ms {
			over++
		}
	}
	// P(X > 2·scale) = 2^-α = 1/4.
	if f := float64(over) / n; math.Abs(f-0.25) > 0.02 {
		t.Errorf("Pareto: P(X > 2·scale) = %.3f, want 0.25", f)
	}
	// A normal draw below zero is clamped.
	for _, x := range draw(Latency{Dist: Normal, Delay: time.Millisecond, Spread: time.Second}) {
		if x < 0 {
			t.Fatalf("Normal drew a negative delay %v", time.Duration(x))
		}
	}
}

// TestSeedRepeatable: the same seed hits the same requests.
func TestSeedRepeatable(t *testing.T) {
	hits := func(seed uint64) []bool {
		i := New(Config{Enabled: true, Seed: seed, Faults: []Fault{{AllTraffic: true, Probability: 0.5, Action: Abort}}})
		defer i.Close()
		out := make([]bool, 200)
		for k := range out {
			out[k] = i.Do(context.Background(), "/", func(context.Context) error { return nil }) != nil
		}
		return out
	}
	a, b, c := hits(7), hits(7), hits(8)
	same := func(x, y []bool) bool {
		for k := range x {
			if x[k] != y[k] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("two injectors with one seed hit different requests")
	}
	if same(a, c) {
		t.Error("two seeds hit the same 200 requests")
	}
}

// TestSwitchAtRunTime flips the injector and swaps its faults while
// requests run (for the race detector), then checks each state's effect.
func TestSwitchAtRunTime(t *testing.T) {
	i := New(Config{Faults: []Fault{{AllTraffic: true, Action: Abort}}})
	defer i.Close()
	ok := func(context.Context) error { return nil }
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 500; k++ {
				_ = i.Do(context.Background(), "/", ok)
			}
		}()
	}
	for k := 0; k < 100; k++ {
		i.Enable()
		_ = i.SetFaults([]Fault{{AllTraffic: true, Action: Error}})
		i.Disable()
		_ = i.SetFaults([]Fault{{AllTraffic: true, Action: Abort}})
	}
	wg.Wait()

	if err := i.Do(context.Background(), "/", ok); err != nil {
		t.Fatalf("disabled injector injected %v", err)
	}
	i.Enable()
	if !i.Enabled() || !errors.Is(i.Do(context.Background(), "/", ok), ErrInjected) {
		t.Fatal("enabled injector did not inject")
	}
	_ = i.SetFaults(nil)
	if err := i.Do(context.Background(), "/", ok); err != nil {
		t.Fatalf("empty fault set injected %v", err)
	}
}
