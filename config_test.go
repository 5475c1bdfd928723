package bulwark_test

import (
	"errors"
	"math"
	"testing"

	"github.com/bulwark-go/bulwark"
)

func TestConfigErrorNamesFieldAndRange(t *testing.T) {
	var err error = &bulwark.ConfigError{Package: "breaker", Field: "FailureRate", Value: math.NaN(), Allowed: "0 (default) or a value in (0, 1]"}
	if got, want := err.Error(), "breaker: Config.FailureRate = NaN: want 0 (default) or a value in (0, 1]"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatal("a ConfigError does not match ErrInvalidConfig")
	}
	if errors.Is(errors.New("other"), bulwark.ErrInvalidConfig) {
		t.Fatal("an unrelated error matches ErrInvalidConfig")
	}
}
