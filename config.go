package bulwark

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig matches, with [errors.Is], every error that reports a
// bad Config value: a NaN, a value outside its documented range, or a size
// past its documented bound.
var ErrInvalidConfig = errors.New("bulwark: invalid config")

// ConfigError reports one Config field whose value is not allowed. Every
// package's Config has a Validate method that returns one, and its New
// panics with one: a bad Config is a programming error that must fail
// loudly at construction, not be replaced silently by a default.
type ConfigError struct {
	// Package is the package of the Config ("breaker", "retry", ...).
	Package string
	// Field is the field's path within the Config, e.g. "FailureRate" or
	// "Budget.Ratio".
	Field string
	// Value is the rejected value.
	Value any
	// Allowed says what the field accepts, e.g. "0 (default) or a value
	// in (0, 1]".
	Allowed string
}

// Error returns "<package>: Config.<Field> = <Value>: want <Allowed>".
func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s: Config.%s = %v: want %s", e.Package, e.Field, e.Value, e.Allowed)
}

// Is reports whether target is [ErrInvalidConfig].
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
