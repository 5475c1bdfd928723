// Package bridge lets grpcx (and later adapters) reach what they need of a
// primitive's core without the core exporting accessors for them, as
// grpc-go's internal package does: the core package sets a function
// variable here in its init, and the adapter calls it.
//
// Each primitive declares its variables in a file of its own name
// (bridge/breaker.go, bridge/retry.go, ...). The variables take and return
// any (or root-package types), since this package cannot import the
// primitives; the adapter type-asserts, and a test in the adapter checks
// that every variable it uses is set. Nothing here is API: users never see
// it.
package bridge
