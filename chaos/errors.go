package chaos

import "errors"

// ErrInjected matches, with [errors.Is], every error a fault causes.
var ErrInjected = errors.New("chaos: injected fault")

// FaultError is the error of a request that a fault aborted or whose
// response it dropped (and, in [Injector.Do], of an Error fault). Its Is
// matches [ErrInjected].
type FaultError struct {
	// Fault is the fault's Name.
	Fault string
	// Action is what the fault did: Error, Abort or Drop.
	Action Action
}

// Error returns "chaos: injected fault <name> (<action>)".
func (e *FaultError) Error() string {
	return "chaos: injected fault " + e.Fault + " (" + e.Action.String() + ")"
}

// Is reports whether target is ErrInjected.
func (e *FaultError) Is(target error) bool { return target == ErrInjected }
